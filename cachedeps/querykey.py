"""Query cache keys: an exact, typed encoding of a query's SQL and parameters.

Two reads share a cached result only if they share a key, so the key must be *injective*:
reads the database may answer differently must get different keys. A ``repr`` is not: the
repr of psycopg's ``Jsonb`` is cut short, a ``memoryview``'s is its address, and ``1``,
``1.0``, ``True`` and ``Decimal("1")`` compare equal in Python while the database may tell
them apart (JSON ``1`` is not ``true``).

:func:`query_key` encodes every part with a type tag and an exact payload (lengths
prefixed), then digests it:

========================  ===============================================================
``None``, ``bool``        their own tags (``True`` is not ``1``)
``int``                   decimal text; ``float``: ``float.hex`` (``-0.0``, NaN, inf exact)
``Decimal``               ``str`` (its exponent kept: ``1.0`` and ``1.00`` differ)
``str``                   UTF-8 (surrogates kept); ``bytes``/``bytearray``/``memoryview``: content
``datetime``, ``date``,   ``isoformat()`` (offset kept, naive differs from aware);
``time``                  ``timedelta``: days, seconds, microseconds
``UUID``                  hex; ``Enum`` members: module, class and member name
``list``, ``tuple``       their own tags, items encoded in order
``dict``                  items in order (a driver sends them as they iterate)
JSON wrappers             psycopg ``Json``/``Jsonb``: the text its ``dumps`` produces, or the
                          typed encoding of the wrapped object when it uses the driver's
                          default; psycopg ``Binary``: its bytes
========================  ===============================================================

Subclasses of ``str``/``int``/``float`` (Django's ``TextChoices``) are encoded by their base
value, which is what drivers bind. Any other type raises :class:`Unencodable` inside and
makes :func:`query_key` return ``None``: the read is then not cached (a lost hit, never a
shared key). Both adapters build their query keys here.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import uuid
from typing import Any

__all__ = ["query_key", "encode_parts", "Unencodable"]

_MAX_DEPTH = 32


class Unencodable(Exception):
    """A query part whose exact value the key cannot spell."""


def _text(out: list[bytes], tag: bytes, text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    out.append(b"%s%d:" % (tag, len(data)))
    out.append(data)


def _enc(out: list[bytes], v: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise Unencodable("nesting too deep")
    t = type(v)
    if v is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if v else b"F")
    elif t is str:
        _text(out, b"s", v)
    elif t is int:
        _text(out, b"i", str(v))
    elif t is float:
        _text(out, b"f", float.hex(v))
    elif t is decimal.Decimal:
        _text(out, b"D", str(v))
    elif t in (bytes, bytearray, memoryview):
        data = bytes(v)
        out.append(b"y%d:" % len(data))
        out.append(data)
    elif t is list or t is tuple:
        out.append(b"%s%d[" % (b"L" if t is list else b"U", len(v)))
        for item in v:
            _enc(out, item, depth + 1)
        out.append(b"]")
    elif t is dict:
        out.append(b"M%d{" % len(v))
        for k, item in v.items():
            _enc(out, k, depth + 1)
            _enc(out, item, depth + 1)
        out.append(b"}")
    elif t is datetime.datetime:
        _text(out, b"z" if v.tzinfo is not None else b"w", v.isoformat())
    elif t is datetime.date:
        _text(out, b"d", v.isoformat())
    elif t is datetime.time:
        _text(out, b"h", v.isoformat())
    elif t is datetime.timedelta:
        _text(out, b"e", f"{v.days},{v.seconds},{v.microseconds}")
    elif t is uuid.UUID:
        _text(out, b"u", v.hex)
    elif isinstance(v, enum.Enum) and not isinstance(v, (str, int, float)):
        _text(out, b"E", f"{t.__module__}.{t.__qualname__}.{v.name}")
    elif isinstance(v, bool):  # a bool subclass (numpy-like) would bind as its truth value
        raise Unencodable(f"a bool subclass {t.__qualname__}")
    elif isinstance(v, str):
        _text(out, b"s", str.__str__(v))
    elif isinstance(v, int):
        _text(out, b"i", str(int.__index__(v)))
    elif isinstance(v, float):
        _text(out, b"f", float.hex(float(v)))
    elif t.__module__.startswith("psycopg") and t.__name__ == "Binary" and isinstance(
        getattr(v, "obj", None), (bytes, bytearray, memoryview)
    ):
        data = bytes(v.obj)  # bound as bytea, like plain bytes
        out.append(b"y%d:" % len(data))
        out.append(data)
    elif t.__module__.startswith("psycopg") and t.__name__ in ("Json", "Jsonb") and hasattr(v, "obj"):
        dumps = getattr(v, "dumps", None)
        if dumps is None:
            out.append(b"J" if t.__name__ == "Json" else b"B")
            _enc(out, v.obj, depth + 1)
        else:
            text = dumps(v.obj)
            if isinstance(text, (bytes, bytearray, memoryview)):
                text = bytes(text).decode("utf-8", "surrogatepass")
            if not isinstance(text, str):
                raise Unencodable(f"{t.__name__} dumps returned {type(text).__name__}")
            _text(out, b"j" if t.__name__ == "Json" else b"b", text)
    else:
        raise Unencodable(f"a query parameter of type {t.__module__}.{t.__qualname__}")


def encode_parts(*parts: Any) -> bytes:
    """Return the exact typed encoding of ``parts`` (see the module docstring).

    Raises:
        Unencodable: a part holds a value whose exact encoding is unknown.
    """
    out: list[bytes] = []
    for part in parts:
        _enc(out, part)
    return b"".join(out)


def query_key(prefix: str, *parts: Any) -> str | None:
    """Return ``prefix`` + a digest of the exact encoding of ``parts``, or None if one cannot be encoded.

    Example::

        query_key("q:", "default", sql, params, "multi", 3)   # None: do not cache this read
    """
    try:
        data = encode_parts(*parts)
    except Unencodable:
        return None
    return prefix + hashlib.blake2b(data, digest_size=20).hexdigest()
