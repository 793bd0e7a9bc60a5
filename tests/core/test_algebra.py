"""The key algebra's type table, change detection and key derivation, without a framework."""

from __future__ import annotations

import decimal
import uuid

import pytest

from cachedeps import algebra
from cachedeps.keys import canonical_value, row_keys

U = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(("kind", "bound", "stored", "spelled"), [
    (algebra.INTEGER, 7, 7, "7"),
    (algebra.BOOLEAN, True, 1, "1"),  # SQLite stores booleans as integers
    (algebra.BOOLEAN, False, False, "0"),  # PostgreSQL returns bool
    (algebra.TEXT, "RED", "RED", "RED"),
    (algebra.TEXT, U.hex, U.hex, U.hex),  # a UUID on SQLite
    (algebra.UUID, U, U, str(U)),
    (algebra.UUID, str(U), U, str(U)),
    (algebra.TEXT, None, None, "null"),
    (algebra.OTHER, None, None, "null"),
])
def test_a_bound_value_spells_like_a_write_of_the_stored_value(kind, bound, stored, spelled):
    assert algebra.spell(kind, bound) == spelled
    assert canonical_value(stored) == spelled


@pytest.mark.parametrize(("kind", "value"), [
    (algebra.INTEGER, "1"), (algebra.INTEGER, 1.0), (algebra.TEXT, 1), (algebra.BOOLEAN, 2),
    (algebra.UUID, "not a uuid"), (algebra.OTHER, 1), (algebra.OTHER, "x"), (algebra.TEXT, b"x"),
    (algebra.INTEGER, decimal.Decimal(1)),
])
def test_values_without_an_exact_spelling(kind, value):
    assert algebra.spell(kind, value) is None


def test_text_kind_by_collation():
    assert algebra.text_kind(None) == algebra.TEXT
    assert algebra.text_kind("BINARY") == algebra.TEXT
    assert algebra.text_kind('"C"') == algebra.TEXT
    for collation in ("NOCASE", "RTRIM", "und-x-icu", "cachedeps_ci", "en_US"):
        assert algebra.text_kind(collation) == algebra.OTHER


def test_text_kind_on_mysql_is_exact_only_for_a_declared_no_pad_binary_collation():
    # The default (unknown to the ORM) is _ci on almost every server; _bin is PAD SPACE.
    for collation in (None, "", "utf8mb4_general_ci", "utf8mb4_unicode_ci", "utf8mb4_bin",
                      "utf8mb4_uca1400_ai_ci", "latin1_swedish_ci", "NOCASE"):
        assert algebra.text_kind(collation, "mysql") == algebra.OTHER, collation
        assert algebra.text_kind(collation, "mariadb") == algebra.OTHER, collation
    for collation in ("utf8mb4_nopad_bin", "`utf8mb4_nopad_bin`", "UTF8MB4_0900_BIN"):
        assert algebra.text_kind(collation, "mysql") == algebra.TEXT, collation



def test_same_stored_is_stricter_than_equality():
    assert not algebra.same_stored(1, True)
    assert not algebra.same_stored(1, 1.0)
    assert not algebra.same_stored({"a": 1}, {"a": True})
    assert not algebra.same_stored([1], [True])
    assert not algebra.same_stored(decimal.Decimal("1.0"), decimal.Decimal("1.00"))
    assert not algebra.same_stored(0.0, -0.0)
    assert algebra.same_stored({"a": [1, "x"]}, {"a": [1, "x"]})
    assert algebra.same_stored(float("nan"), float("nan"))


def test_json_one_to_true_emits_change_keys():
    keys = row_keys("t", 1, {"id": 1, "data": {"a": 1}}, {"id": 1, "data": {"a": True}})
    assert "t/data" in keys
    assert "t.id=1/data" in keys


def test_outer_joined_tables_depend_on_their_table_key():
    read = algebra.TableRead("book", "id", algebra.INTEGER, (None,), nullable=True)
    assert algebra.table_deps(read) == ["book"]
    assert algebra.change_deps(read, ["id"]) is None
    inner = algebra.TableRead("book", "id", algebra.INTEGER, (None,))
    assert algebra.table_deps(inner) == ["book.id=null"]


def test_unspellable_anchor_depends_on_the_table():
    assert algebra.table_deps(algebra.TableRead("t", "data", algebra.OTHER, ({"a": 1},))) == ["t"]
    assert algebra.change_deps(algebra.TableRead("t", "data", algebra.OTHER, ({"a": 1},)), ["x"]) is None
    assert algebra.change_deps(algebra.TableRead("t"), ["x"]) == ["t/x", "t/*"]
    assert algebra.change_deps(algebra.TableRead("t", "k", algebra.INTEGER, (7,)), ["x"]) == [
        "t.k=7/x", "t.k=7/k", "t.k=7/*"]


def test_oid_needs_an_exact_spelling():
    assert algebra.oid("t", algebra.INTEGER, 3) == "t:3"
    assert algebra.oid("t", algebra.TEXT, U.hex) == f"t:{U.hex}"
    assert algebra.oid("t", algebra.OTHER, 3) is None
    assert algebra.oid("t", algebra.INTEGER, None) is None
