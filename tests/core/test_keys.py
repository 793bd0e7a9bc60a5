"""Store key validation and dependency-key spelling (cachedeps.keys)."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

from cachedeps import keys
from cachedeps.errors import InvalidKey


def test_check_key_returns_utf8():
    assert keys.check_key("book:42") == b"book:42"
    assert keys.check_key("ключ") == "ключ".encode()
    assert keys.check_key("k" * 250) == b"k" * 250


@pytest.mark.parametrize("key, words", [
    ("", ["empty"]),
    ("k" * 251, ["251", "250", "safe_key"]),
    ("я" * 126, ["252", "250"]),  # 126 characters, 252 bytes
    ("a b", ["whitespace", "'a b'"]),
    ("a\nb", ["control", "'a\\nb'"]),
    ("a\x00b", ["control"]),
    ("a\u2028b", ["control"]),
    (b"bytes", ["str", "bytes"]),
    (42, ["str", "int"]),
])
def test_check_key_rejects_with_the_rule(key, words):
    with pytest.raises(InvalidKey) as info:
        keys.check_key(key)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)


def test_safe_key_hashes_only_what_it_must():
    assert keys.safe_key("q:", "short") == "q:short"
    long = keys.safe_key("q:", "x" * 400)
    spaced = keys.safe_key("q:", "a b")
    assert long.startswith("q:#") and len(long) < 250 and keys.check_key(long)
    assert spaced != keys.safe_key("q:", "a  b")
    assert keys.safe_key("q:", "x" * 400) == long


def test_dependency_key_spelling():
    assert keys.oid("book", 42) == "book:42"
    assert keys.table_key("book") == "book"
    assert keys.all_rows_key("book") == "book:*"
    assert keys.field_key("book", "author_id", 7) == "book.author_id=7"
    assert keys.field_key("book", "flag", True) == keys.field_key("book", "flag", 1) == "book.flag=1"
    assert keys.field_key("book", "x", None) == "book.x=null"
    assert keys.field_key("book", "price", decimal.Decimal("3.00")) == "book.price=3"
    assert keys.field_key("book", "d", datetime.date(2024, 1, 2)) == "book.d=2024-01-02"
    assert keys.canonical_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert keys.canonical_value(b"\x01") == "01"
    assert keys.canonical_value("a b").startswith("#")
    assert keys.canonical_value("x" * 65).startswith("#")


def test_row_keys_cover_old_and_new_values_once():
    out = keys.row_keys("book", 1, {"author_id": 7, "title": "A"}, {"author_id": 8, "title": "A"})
    assert out == [
        "book", "book:1", "book/author_id",
        "book.author_id=7", "book.author_id=7/author_id", "book.title=A", "book.title=A/author_id",
        "book.author_id=8", "book.author_id=8/author_id",
    ]
    assert keys.row_keys("book", 1, None, None) == ["book", "book:1"]


def test_row_keys_name_the_changed_columns():
    old = {"id": 1, "author_id": 7, "title": "A", "pages": 10}
    out = keys.row_keys("book", 1, old, {**old, "title": "B"})
    # Every value of both versions, qualified by the one column that changed.
    assert "book.author_id=7/title" in out and "book.pages=10/title" in out
    assert "book.title=A/title" in out and "book.title=B/title" in out
    assert not any(k.endswith("/author_id") or k.endswith("/pages") or k.endswith("/*") for k in out)
    # An update that changes nothing emits no change keys; inserts and deletes emit "*".
    assert not any("/" in k for k in keys.row_keys("book", 1, old, dict(old)))
    inserted = keys.row_keys("book", 1, None, old)
    assert "book.author_id=7/*" in inserted and "book.id=1/*" in inserted
    assert "book.author_id=7/*" in keys.row_keys("book", 1, old, None)
    # A column present on one side only counts as changed.
    assert "book.author_id=7/extra" in keys.row_keys("book", 1, old, {**old, "extra": 1})
    assert keys.change_key("book", "author_id", True, "title") == "book.author_id=1/title"
    assert keys.implied("book.author_id=7/title") == ("book.author_id=7/title", "book:*")


def test_row_keys_name_the_changed_columns_table_wide():
    old = {"id": 1, "author_id": 7, "title": "A", "pages": 10}
    updated = keys.row_keys("book", 1, old, {**old, "title": "B", "pages": 11})
    assert [k for k in updated if k.startswith("book/")] == ["book/title", "book/pages"]
    assert keys.table_change_key("book", "title") == "book/title"
    for inserted_or_deleted in (keys.row_keys("book", 1, None, old), keys.row_keys("book", 1, old, None)):
        assert [k for k in inserted_or_deleted if k.startswith("book/")] == ["book/*"]
    assert not any(k.startswith("book/") for k in keys.row_keys("book", 1, old, dict(old)))


def test_implied_and_expand():
    assert keys.table_of("book.author_id=7") == "book"
    assert keys.table_of("book:1") == "book"
    assert keys.implied("book:1") == ("book:1", "book:*")
    assert keys.implied("book.author_id=7") == ("book.author_id=7", "book:*")
    assert keys.implied("book") == ("book",)
    assert keys.implied("book:*") == ("book:*",)
    assert keys.table_of("book/title") == "book"
    assert keys.implied("book/title") == ("book/title", "book:*")
    assert keys.implied("book/*") == ("book/*", "book:*")
    assert keys.expand(["book:1", "book:2", "book"]) == ["book:1", "book:*", "book:2", "book"]


def test_keyable():
    assert all(keys.keyable(v) for v in (None, True, 3, "x"))
    assert not any(keys.keyable(v) for v in (1.5, decimal.Decimal(1), datetime.date.today(), b"x"))
