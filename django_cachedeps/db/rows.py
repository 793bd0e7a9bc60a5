"""Encode raw database rows (before Django's converters) into msgpack-native values.

Drivers return more than msgpack knows (psycopg: ``datetime``, ``Decimal``, ``UUID``, lists
for arrays, dicts for JSON). Each such value becomes a two-item list ``[tag, payload]``;
plain values (None, bool, int, float, str, bytes) stay as they are. Every list in the encoded
form is a tagged value, so decoding is unambiguous. A value of another type raises
:class:`Unencodable` and the read is simply not cached.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Iterable

__all__ = ["Unencodable", "encode_rows", "decode_rows", "encode_row", "decode_row"]

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class Unencodable(Exception):
    """A row value has a type the codec does not carry; the read runs uncached."""


def _enc(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, float, bytes)):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        return ["I", str(value)]
    if isinstance(value, datetime.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, datetime.date):
        return ["d", value.isoformat()]
    if isinstance(value, datetime.time):
        return ["t", value.isoformat()]
    if isinstance(value, datetime.timedelta):
        return ["td", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, decimal.Decimal):
        return ["D", str(value)]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, memoryview):
        return ["m", value.tobytes()]
    if isinstance(value, bytearray):
        return ["ba", bytes(value)]
    if isinstance(value, list):
        return ["l", [_enc(v) for v in value]]
    if isinstance(value, tuple):
        return ["T", [_enc(v) for v in value]]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return ["j", {k: _enc(v) for k, v in value.items()}]
    raise Unencodable(f"cannot cache a row value of type {type(value).__name__}")


def _dec(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    tag, payload = value
    if tag == "dt":
        return datetime.datetime.fromisoformat(payload)
    if tag == "d":
        return datetime.date.fromisoformat(payload)
    if tag == "t":
        return datetime.time.fromisoformat(payload)
    if tag == "D":
        return decimal.Decimal(payload)
    if tag == "u":
        return uuid.UUID(hex=payload)
    if tag == "l":
        return [_dec(v) for v in payload]
    if tag == "T":
        return tuple(_dec(v) for v in payload)
    if tag == "j":
        return {k: _dec(v) for k, v in payload.items()}
    if tag == "td":
        return datetime.timedelta(days=payload[0], seconds=payload[1], microseconds=payload[2])
    if tag == "I":
        return int(payload)
    if tag == "m":
        return memoryview(payload)
    if tag == "ba":
        return bytearray(payload)
    raise ValueError(f"unknown tag {tag!r} in a cached row")


def encode_row(row: Iterable[Any]) -> list[Any]:
    """Return ``row`` as a list of msgpack-native values.

    Raises:
        Unencodable: a value's type is not carried.
    """
    return [_enc(v) for v in row]


def decode_row(row: list[Any]) -> tuple[Any, ...]:
    """Return the row :func:`encode_row` encoded, as a tuple."""
    if list not in map(type, row):  # no tagged value: the common row costs one pass in C
        return tuple(row)
    return tuple(map(_dec, row))


def encode_rows(rows: Iterable[Iterable[Any]]) -> list[list[Any]]:
    """Encode every row (see :func:`encode_row`)."""
    return [encode_row(r) for r in rows]


def decode_rows(rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    """Decode every row (see :func:`decode_row`)."""
    return [decode_row(r) for r in rows]
