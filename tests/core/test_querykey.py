"""cachedeps.querykey: one exact, typed encoding of a query's SQL and parameters."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid

import pytest

from cachedeps.querykey import Unencodable, encode_parts, query_key


class Color(enum.Enum):
    RED = 1


class Size(str, enum.Enum):
    S = "s"


@pytest.mark.parametrize(
    "a, b",
    [
        (1, True), (1, 1.0), (0.0, -0.0), (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
        ("1", 1), (b"a", "a"), ([1], (1,)), ({"a": 1}, {"a": True}), (None, "None"),
        (datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
        (datetime.date(2024, 1, 1), "2024-01-01"), ("x" * 200 + "A", "x" * 200 + "B"),
        (memoryview(b"one"), memoryview(b"two")), (Color.RED, 1), (["a", "b"], ["a,b"]),
    ],
)
def test_values_the_database_may_tell_apart_get_different_keys(a, b):
    assert query_key("q:", "SELECT %s", (a,)) != query_key("q:", "SELECT %s", (b,))


def test_equal_values_get_one_key():
    assert query_key("q:", "s", (memoryview(b"one"),)) == query_key("q:", "s", (b"one",))
    assert query_key("q:", "s", (Size.S,)) == query_key("q:", "s", ("s",))  # bound as its str value
    u = uuid.uuid4()
    assert query_key("q:", "s", (u, float("nan"))) == query_key("q:", "s", (uuid.UUID(u.hex), float("nan")))


def test_parts_do_not_run_into_each_other():
    assert encode_parts("ab", "c") != encode_parts("a", "bc")
    assert encode_parts(["a", "b"]) != encode_parts(["a"], "b")


def test_psycopg_wrappers_are_spelled_by_what_they_send():
    psycopg = pytest.importorskip("psycopg")
    from psycopg.types.json import Jsonb

    long_a, long_b = {"k": "x" * 100 + "A"}, {"k": "x" * 100 + "B"}
    assert repr(Jsonb(long_a)) == repr(Jsonb(long_b))  # what repr() keys confused
    assert query_key("q:", "s", (Jsonb(long_a),)) != query_key("q:", "s", (Jsonb(long_b),))
    import json

    assert query_key("q:", "s", (Jsonb(1, dumps=json.dumps),)) != query_key("q:", "s", (Jsonb(True, dumps=json.dumps),))
    assert query_key("q:", "s", (psycopg.Binary(b"a"),)) != query_key("q:", "s", (psycopg.Binary(b"b"),))


def test_an_unknown_type_makes_no_key():
    class Point:
        pass

    assert query_key("q:", "s", (Point(),)) is None
    with pytest.raises(Unencodable):
        encode_parts([Point()])
