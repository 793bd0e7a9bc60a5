"""The stored layout of a derived entry: a fixed header, its dependency keys, its payload.

A derived entry (a query result, a view, a fragment) is read far more often than written,
and most reads only need to know whether it is still current. So the bytes start with
what validation needs, in a layout read with one ``struct`` call, and the payload comes
last, decoded only after the entry proved current::

    offset  size  field
    0       1     tag: 0xD1, layout version 1 (0xD1 is neither serializer's tag, so entries
                  of another layout or foreign values read as misses)
    1       8     stamp: signed 64-bit big-endian, the tid the value was computed at
    9       1     kind: ``b`` the payload is the value itself (``bytes``: rendered views and
                  fragments, returned without decoding), ``s`` the serializer's encoding
    10      4     n: length of the dependency block, unsigned 32-bit big-endian
    14      n     dependency keys, UTF-8, separated by NUL (a key never holds one)
    14+n    ...   payload

The header is not covered by :class:`~cachedeps.serde.SignedPickleSerializer`'s signature:
a writer to the store can change an entry's stamp, as it can delete or replace it, but
nothing it writes there is ever unpickled.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Sequence

from .errors import CorruptValue, InvalidKey

__all__ = [
    "ENTRY_TAG",
    "HEADER",
    "HEADER_SIZE",
    "KIND_BYTES",
    "KIND_SERIALIZED",
    "encode_entry",
    "decode_entry",
    "decode_payload",
    "entry_deps",
    "inherited_deps",
]

#: the first byte of every derived entry of this layout
ENTRY_TAG = 0xD1
#: tag, stamp, kind, length of the dependency block
HEADER = struct.Struct(">BqBI")
HEADER_SIZE = HEADER.size
#: the payload is the ``bytes`` value itself
KIND_BYTES = ord("b")
#: the payload is the serializer's encoding of the value
KIND_SERIALIZED = ord("s")

_SEP = "\x00"


def encode_entry(stamp: int, deps: Sequence[str], value: Any, serializer: Any) -> bytes:
    """Return the stored bytes of an entry stamped ``stamp`` depending on ``deps``.

    Raises:
        InvalidKey: a dependency key holds a NUL character.
        SerializationError: the serializer cannot encode ``value``.
    """
    block = _SEP.join(deps)
    if block.count(_SEP) != max(len(deps) - 1, 0):
        bad = next(d for d in deps if _SEP in d)
        raise InvalidKey(f"Dependency key {bad!r} holds a NUL character; spell it without one")
    if not block and deps:  # a single empty key: keep it distinct from "no dependencies"
        raise InvalidKey("Dependency keys must not be empty")
    deps_raw = block.encode("utf-8")
    if type(value) is bytes:
        kind, payload = KIND_BYTES, value
    else:
        kind, payload = KIND_SERIALIZED, serializer.dumps(value)
    return b"".join((HEADER.pack(ENTRY_TAG, stamp, kind, len(deps_raw)), deps_raw, payload))


def entry_deps(raw: bytes, n: int) -> list[str]:
    """Return the dependency keys of an entry whose header gave block length ``n``.

    Raises:
        CorruptValue: the block is not UTF-8 or is cut short.
    """
    if not n:
        return []
    end = HEADER_SIZE + n
    if len(raw) < end:
        raise CorruptValue(f"Entry is {len(raw)} bytes, shorter than its header says ({end})")
    try:
        return raw[HEADER_SIZE:end].decode("utf-8").split(_SEP)
    except UnicodeDecodeError as exc:
        raise CorruptValue(f"Entry's dependency keys are not UTF-8: {exc}") from exc


def decode_entry(raw: bytes, serializer: Any) -> tuple[int, list[str], Any]:
    """Return ``(stamp, deps, value)`` from stored bytes (no validation against the feed).

    Raises:
        CorruptValue: the bytes are not an entry of this layout, or the payload does not decode.
    """
    try:
        tag, stamp, kind, n = HEADER.unpack_from(raw)
    except struct.error as exc:
        raise CorruptValue(f"Value is {len(raw)} bytes, too short for an entry header") from exc
    if tag != ENTRY_TAG:
        raise CorruptValue(f"Value does not start with the entry tag 0x{ENTRY_TAG:X}: {bytes(raw[:8])!r}")
    deps = entry_deps(raw, n)
    return stamp, deps, decode_payload(raw, kind, HEADER_SIZE + n, serializer)


def decode_payload(raw: bytes, kind: int, start: int, serializer: Any) -> Any:
    """Return the value held in ``raw[start:]`` for payload ``kind``.

    Raises:
        CorruptValue: an unknown kind, or a payload the serializer refuses.
    """
    if kind == KIND_BYTES:
        return raw[start:]
    if kind == KIND_SERIALIZED:
        try:
            return serializer.loads(raw[start:])
        except CorruptValue:
            raise
        except Exception as exc:
            raise CorruptValue(f"Entry payload does not decode: {exc}") from exc
    raise CorruptValue(f"Unknown entry payload kind {kind!r}")


def inherited_deps(
    sources: Sequence[bytes | None],
    valid: Callable[[int, list[str]], bool],
    stamp: int,
    given: Sequence[str],
) -> list[str] | None:
    """Return the dependency keys an entry built from ``sources`` (their stored bytes) inherits.

    An entry built from other entries (``"@<key>"`` references) is validated on their keys
    too, never through the dependency trees, which are only an optimisation (an emulated
    tree links at most ``MAX_EMULATED_LINKS`` parents). None (do not store) when a source is
    gone or foreign, no longer ``valid``, or stamped after ``stamp`` with keys not in
    ``given``: the value may have been built from an older version of it.
    """
    wanted = set(given)
    out: list[str] = []
    for raw in sources:
        if raw is None:
            return None
        try:
            tag, s_stamp, _, n = HEADER.unpack_from(raw)
            if tag != ENTRY_TAG:
                return None
            deps = entry_deps(raw, n)
        except (struct.error, CorruptValue):
            return None
        if deps and not valid(s_stamp, deps):
            return None
        if s_stamp > stamp and not wanted.issuperset(deps):
            return None
        out.extend(deps)
    return out
