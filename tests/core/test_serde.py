"""Serializers: round trips that keep types, and bad bytes that never decode."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import logging
import pickle
import uuid
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachedeps.api import NO_VALUE
from cachedeps.errors import CorruptValue, SerializationError
from cachedeps.serde import MsgpackSerializer, Serializer, SignedPickleSerializer, loads_or_miss

msgpack_serde = MsgpackSerializer()


class Color(enum.IntEnum):
    RED = 1


class Marked(str):
    """A str subclass, as Django's SafeString is."""


def test_serializers_follow_the_protocol():
    assert isinstance(msgpack_serde, Serializer)
    assert isinstance(SignedPickleSerializer("s"), Serializer)


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63, 1.5, "text", "ключ", b"\x00bytes",
    [1, [2, 3]], (1, (2, "x")), {"a": 1}, {1: "int key", (1, 2): "tuple key", None: 0},
    datetime.datetime(2024, 1, 31, 12, 30, 5, 123456),
    datetime.datetime(2024, 1, 31, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))),
    datetime.date(1999, 12, 31), datetime.time(23, 59, 1, 5), datetime.timedelta(days=-3, seconds=5, microseconds=7),
    decimal.Decimal("12.3400"), decimal.Decimal("-1E+5"), uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {1, 2, (3, 4)}, frozenset({"a"}), [(), [], {}],
])
def test_msgpack_round_trip_keeps_type(value):
    out = msgpack_serde.loads(msgpack_serde.dumps(value))
    assert out == value
    assert type(out) is type(value)


def test_tuples_and_lists_stay_distinct():
    out = msgpack_serde.loads(msgpack_serde.dumps({"t": (1, [2, (3,)]), "l": [(1,)]}))
    assert out == {"t": (1, [2, (3,)]), "l": [(1,)]}
    assert isinstance(out["t"], tuple) and isinstance(out["t"][1], list) and isinstance(out["t"][1][1], tuple)


def test_aware_datetime_keeps_its_offset():
    when = datetime.datetime(2024, 7, 14, 9, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    out = msgpack_serde.loads(msgpack_serde.dumps(when))
    assert out == when and out.utcoffset() == when.utcoffset()
    naive = msgpack_serde.loads(msgpack_serde.dumps(datetime.datetime(2024, 1, 1)))
    assert naive.tzinfo is None


def test_subclasses_become_their_plain_base():
    out = msgpack_serde.loads(msgpack_serde.dumps([Marked("safe"), Color.RED, collections.OrderedDict(a=1)]))
    assert out == ["safe", 1, {"a": 1}]
    assert [type(v) for v in out] == [str, int, dict]


def test_unencodable_value_names_its_type():
    with pytest.raises(SerializationError, match="object.*SignedPickleSerializer"):
        msgpack_serde.dumps(object())


@settings(max_examples=30, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text() | st.binary()
    | st.floats(allow_nan=False) | st.decimals(allow_nan=False, allow_infinity=False) | st.datetimes(),
    lambda children: st.lists(children) | st.tuples(children, children) | st.dictionaries(st.text(), children),
    max_leaves=20,
))
def test_msgpack_round_trip_property(value):
    assert msgpack_serde.loads(msgpack_serde.dumps(value)) == value


@pytest.mark.parametrize("data", [b"", b"X123", b"M\xc1", b"M\x92\x01", b"P" + b"0" * 40])
def test_msgpack_rejects_bad_bytes(data):
    with pytest.raises(CorruptValue):
        msgpack_serde.loads(data)


def test_signed_pickle_round_trip_and_rotation():
    old = SignedPickleSerializer("old-secret")
    new = SignedPickleSerializer("new-secret", fallback_secrets=["old-secret"])
    value = {"obj": Color.RED, "when": datetime.date(2024, 1, 1)}
    assert new.loads(new.dumps(value)) == value
    assert new.loads(old.dumps(value)) == value
    with pytest.raises(CorruptValue):
        old.loads(new.dumps(value))


class _Boom:
    def __reduce__(self):
        raise AssertionError("unpickled a value whose signature was not checked")


def test_signed_pickle_never_unpickles_unsigned_or_altered_bytes():
    serde = SignedPickleSerializer(b"secret")
    raw = pickle.dumps([1, 2, 3])
    with pytest.raises(CorruptValue):
        serde.loads(raw)
    with pytest.raises(CorruptValue):
        serde.loads(b"P" + b"\x00" * 32 + raw)
    good = serde.dumps([1, 2, 3])
    altered = good[:-2] + bytes([good[-2] ^ 1]) + good[-1:]
    with pytest.raises(CorruptValue, match="signature"):
        serde.loads(altered)


def test_formats_reject_each_other():
    pickled = SignedPickleSerializer("s").dumps([1])
    with pytest.raises(CorruptValue, match="tag"):
        msgpack_serde.loads(pickled)
    with pytest.raises(CorruptValue, match="tag"):
        SignedPickleSerializer("s").loads(msgpack_serde.dumps([1]))


def test_loads_or_miss_logs_once_and_misses(caplog):
    with caplog.at_level(logging.WARNING, logger="cachedeps"):
        assert loads_or_miss(msgpack_serde, b"junk", key="k:1") is NO_VALUE
        assert loads_or_miss(msgpack_serde, None) is NO_VALUE
        assert loads_or_miss(msgpack_serde, msgpack_serde.dumps(0)) == 0
    assert len(caplog.records) == 1 and "'k:1'" in caplog.records[0].getMessage()


def test_empty_secret_rejected():
    with pytest.raises(SerializationError, match="secret"):
        SignedPickleSerializer("")
