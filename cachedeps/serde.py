"""Serializers: Python values to the bytes a store holds, and back.

Every encoded value starts with a one-byte format tag (``M`` msgpack, ``P`` signed
pickle), so a reader configured for one format rejects the other instead of guessing.

- :class:`MsgpackSerializer` (the default) is safe to read from any source: it builds only
  plain values. It keeps tuples distinct from lists, dict keys of any hashable type, and
  encodes datetime (naive or aware, offset kept), date, time, timedelta, Decimal, UUID,
  set and frozenset.
- :class:`SignedPickleSerializer` encodes anything pickle can, signed with HMAC-SHA256;
  bytes without a valid signature are never unpickled.

A value that fails to decode raises :class:`~cachedeps.errors.CorruptValue`; readers treat
it as a miss with :func:`loads_or_miss`.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import hmac
import logging
import pickle
import uuid
from typing import Any, Iterable, Protocol, runtime_checkable

from .api import NO_VALUE
from .errors import CorruptValue, PicklingFailed, SerializationError

__all__ = [
    "Serializer",
    "MsgpackSerializer",
    "SignedPickleSerializer",
    "loads_or_miss",
    "MSGPACK_TAG",
    "PICKLE_TAG",
]

MSGPACK_TAG = b"M"
PICKLE_TAG = b"P"

_EXT_DATETIME = 1
_EXT_DATE = 2
_EXT_TIME = 3
_EXT_TIMEDELTA = 4
_EXT_DECIMAL = 5
_EXT_UUID = 6
_EXT_TUPLE = 7
_EXT_SET = 8
_EXT_FROZENSET = 9


@runtime_checkable
class Serializer(Protocol):
    """Turn values into bytes and back."""

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj``; raise :class:`~cachedeps.errors.SerializationError` if impossible."""

    def loads(self, data: bytes) -> Any:
        """Decode ``data``; raise :class:`~cachedeps.errors.CorruptValue` if it is not valid."""


class MsgpackSerializer:
    """Encode plain values with msgpack, plus dates, decimals, UUIDs, tuples and sets.

    Example::

        serde = MsgpackSerializer()
        serde.loads(serde.dumps({"when": datetime.date(2024, 1, 31), (1, 2): [3]}))
    """

    def __init__(self) -> None:
        import msgpack

        self._msgpack = msgpack
        self._packer_options = {"use_bin_type": True, "strict_types": True, "default": self._default}

    def dumps(self, obj: Any) -> bytes:
        """Return ``b"M"`` + the msgpack encoding of ``obj``."""
        try:
            return MSGPACK_TAG + self._pack(obj)
        except SerializationError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"Cannot encode {type(obj).__name__} with msgpack: {exc}; convert it to plain "
                "values or configure SignedPickleSerializer"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`."""
        if data[:1] != MSGPACK_TAG:
            raise CorruptValue(f"Value does not start with the msgpack tag {MSGPACK_TAG!r}: {bytes(data[:8])!r}")
        try:
            return self._unpack(memoryview(data)[1:])
        except CorruptValue:
            raise
        except Exception as exc:
            raise CorruptValue(f"Value is not valid msgpack: {exc}") from exc

    def _pack(self, obj: Any) -> bytes:
        return self._msgpack.packb(obj, **self._packer_options)

    def _unpack(self, data: Any) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=self._ext_hook,
                                     use_list=True)

    def _default(self, obj: Any) -> Any:
        ext = self._msgpack.ExtType
        # strict_types sends subclasses here: unwrap them to their plain base.
        if isinstance(obj, bool):
            return bool(obj)
        if isinstance(obj, tuple):
            return ext(_EXT_TUPLE, self._pack(list(obj)))
        if isinstance(obj, str):
            return str(obj)
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj)
        if isinstance(obj, (bytearray, memoryview)):
            return bytes(obj)
        if isinstance(obj, dict):
            return dict(obj)
        if isinstance(obj, list):
            return list(obj)
        if isinstance(obj, datetime.datetime):
            return ext(_EXT_DATETIME, obj.isoformat().encode())
        if isinstance(obj, datetime.date):
            return ext(_EXT_DATE, obj.isoformat().encode())
        if isinstance(obj, datetime.time):
            return ext(_EXT_TIME, obj.isoformat().encode())
        if isinstance(obj, datetime.timedelta):
            return ext(_EXT_TIMEDELTA, self._pack([obj.days, obj.seconds, obj.microseconds]))
        if isinstance(obj, decimal.Decimal):
            return ext(_EXT_DECIMAL, str(obj).encode())
        if isinstance(obj, uuid.UUID):
            return ext(_EXT_UUID, obj.bytes)
        if isinstance(obj, frozenset):
            return ext(_EXT_FROZENSET, self._pack(list(obj)))
        if isinstance(obj, set):
            return ext(_EXT_SET, self._pack(list(obj)))
        raise SerializationError(
            f"Cannot encode {type(obj).__name__} {obj!r:.60} with msgpack; accepted: None, bool, "
            "int, float, str, bytes, list, tuple, dict, set, datetime/date/time/timedelta, Decimal, "
            "UUID. Convert it first or configure SignedPickleSerializer"
        )

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == _EXT_TUPLE:
            return tuple(self._unpack(data))
        if code == _EXT_DATETIME:
            return datetime.datetime.fromisoformat(data.decode())
        if code == _EXT_DATE:
            return datetime.date.fromisoformat(data.decode())
        if code == _EXT_TIME:
            return datetime.time.fromisoformat(data.decode())
        if code == _EXT_TIMEDELTA:
            days, seconds, micro = self._unpack(data)
            return datetime.timedelta(days, seconds, micro)
        if code == _EXT_DECIMAL:
            return decimal.Decimal(data.decode())
        if code == _EXT_UUID:
            return uuid.UUID(bytes=bytes(data))
        if code == _EXT_SET:
            return set(self._unpack(data))
        if code == _EXT_FROZENSET:
            return frozenset(self._unpack(data))
        raise CorruptValue(f"Unknown msgpack extension type {code}")


class SignedPickleSerializer:
    """Pickle values and sign them with HMAC-SHA256; unsigned or altered bytes are refused.

    Only use it when every writer to the store is trusted with ``secret``: the signature
    keeps out bytes from anyone else, and a value whose signature fails is never unpickled.

    Args:
        secret: the signing key (``str`` or ``bytes``), e.g. Django's ``SECRET_KEY``.
        fallback_secrets: older keys still accepted for reading, for key rotation.
        protocol: the pickle protocol.

    Example::

        serde = SignedPickleSerializer(secret=settings.SECRET_KEY)
    """

    _DIGEST = 32

    def __init__(self, secret: str | bytes, *, fallback_secrets: Iterable[str | bytes] = (),
                 protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        keys = [secret, *fallback_secrets]
        if not secret:
            raise SerializationError("SignedPickleSerializer needs a non-empty secret")
        self._keys = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        self._protocol = protocol

    def _sign(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()

    def dumps(self, obj: Any) -> bytes:
        """Return ``b"P"`` + signature + pickle of ``obj``."""
        try:
            payload = pickle.dumps(obj, protocol=self._protocol)
        except Exception as exc:
            raise PicklingFailed(f"Cannot pickle {type(obj).__name__}: {exc}") from exc
        return PICKLE_TAG + self._sign(self._keys[0], payload) + payload

    def loads(self, data: bytes) -> Any:
        """Verify the signature, then unpickle."""
        data = bytes(data)
        if data[:1] != PICKLE_TAG or len(data) < 1 + self._DIGEST:
            raise CorruptValue(f"Value does not start with the signed pickle tag {PICKLE_TAG!r}: {data[:8]!r}")
        signature, payload = data[1:1 + self._DIGEST], data[1 + self._DIGEST:]
        if not any(hmac.compare_digest(signature, self._sign(k, payload)) for k in self._keys):
            raise CorruptValue("Value's signature does not match the configured secret; not unpickled")
        try:
            return pickle.loads(payload)
        except Exception as exc:
            raise CorruptValue(f"Signed value does not unpickle: {exc}") from exc


def loads_or_miss(serializer: Serializer, data: bytes | None, logger: logging.Logger | None = None,
                  key: str = "") -> Any:
    """Decode ``data``, or return ``NO_VALUE`` (logging one warning) when it is corrupt.

    ``None`` data (a miss) also gives ``NO_VALUE``, silently.
    """
    if data is None:
        return NO_VALUE
    try:
        return serializer.loads(data)
    except CorruptValue as exc:
        (logger or logging.getLogger("cachedeps")).warning(
            "Treating cached value %s as a miss: %s", repr(key) if key else "", exc
        )
        return NO_VALUE
