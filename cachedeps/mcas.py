"""Multi-entry compare-and-set (MCAS) over any memcache store.

:func:`mcas` changes several entries atomically: either every entry moves from the snapshot
the caller read to its new value, or none does. It is built only from ``gets``, ``cas``,
``add`` and ``delete``, so it works on one memcached, a pool of them behind consistent
hashing, the embedded store and ``cachedeps serve`` alike.

Every entry that takes part holds one of two things, told apart by the first byte:

- ``V`` followed by the encoding of a plain value by
  :class:`~cachedeps.serde.MsgpackSerializer` (portable, safe to decode);
- ``M`` followed by the key of an in-progress *descriptor*, a record stored under its own
  key (``mcas:<uuid>``) that lists, for each entry of one operation, the key, the CAS id the
  caller read, the old and the new encoded value, and the operation's status
  (undecided, succeeded, failed).

An operation writes its descriptor, then replaces each entry (in key order) by a reference
to it with ``cas`` against the CAS id the caller read; if every entry took the reference the
descriptor is marked succeeded, otherwise failed, by one ``cas`` on the descriptor; then each
entry still holding the reference is set to its new (or old) value. A reader that meets a
reference finishes that work itself before it reads on, so a caller that dies half-way
blocks nobody. memcached never reuses a CAS id, so a reference can be installed in an entry
at most once and there is no ABA problem.

Faults: an entry evicted (or deleted) before the decision makes the operation fail. A
descriptor is written with a TTL (``descriptor_ttl``); if it vanishes while entries still
refer to it, a reader drops those entries (they read as missing, as if evicted) rather than
guess the outcome. The caller whose descriptor vanished before it learned the outcome gets
:class:`McasOutcomeUnknown`.

Example::

    >>> from cachedeps.mcas import mcas, mcas_add, mcas_get
    >>> mcas_add(store, "acct:a", 100)
    True
    >>> mcas_add(store, "acct:b", 0)
    True
    >>> a, b = mcas_get(store, "acct:a"), mcas_get(store, "acct:b")
    >>> mcas(store, [(a, a.value - 30), (b, b.value + 30)])
    True
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .api import Store
from .errors import BackendError, CachedepsError, ValueTooLarge
from .serde import MsgpackSerializer

__all__ = [
    "Entry",
    "McasError",
    "McasFormatError",
    "McasOutcomeUnknown",
    "DEFAULT_DESCRIPTOR_TTL",
    "FINISHED_TTL",
    "DESCRIPTOR_PREFIX",
    "encode_value",
    "decode_value",
    "mcas_add",
    "mcas_get",
    "mcas_get_many",
    "mcas",
]

#: seconds a descriptor lives: far longer than any operation, short enough that a caller
#: that died mid-operation leaves nothing behind for long
DEFAULT_DESCRIPTOR_TTL = 3600
#: seconds the descriptor of a failed operation is kept after its caller finished it
FINISHED_TTL = 60
#: the key prefix of descriptors
DESCRIPTOR_PREFIX = "mcas:"

_VALUE_TAG = b"V"
_REF_TAG = b"M"
_UNDECIDED, _SUCCEEDED, _FAILED = 0, 1, 2
_RECORD_VERSION = 1
# Every participant must encode alike, so the format is fixed rather than configurable;
# the serializer keeps no state between calls.
_SERDE = MsgpackSerializer()


class McasError(CachedepsError):
    """Root of the errors raised by :mod:`cachedeps.mcas` and :mod:`cachedeps.deque`."""


class McasFormatError(McasError, ValueError):
    """An entry does not hold an MCAS value, or an operation is malformed."""


class McasOutcomeUnknown(McasError, BackendError):
    """The descriptor of an operation vanished (evicted) before its caller learned the outcome.

    Entries that still refer to it read as missing from then on; the others hold either all
    old or all new values of that operation.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """A snapshot of one MCAS entry: its key, decoded value and the CAS id it was read at.

    Pass it back to :func:`mcas` with a new value; the operation fails if the entry changed
    since this snapshot. ``raw`` is the stored form of ``value``, put back if the
    operation fails.
    """

    key: str
    value: Any
    cas: int
    raw: bytes = field(repr=False, compare=False)


def encode_value(value: Any) -> bytes:
    """Return the stored form of a plain MCAS value.

    Use it to create entries in bulk (``store.set_many({k: encode_value(v)})``) while no
    operation can be running on them; otherwise create them with :func:`mcas_add`.

    Raises:
        SerializationError: :class:`~cachedeps.serde.MsgpackSerializer` cannot encode it.
    """
    return _VALUE_TAG + _SERDE.dumps(value)


def decode_value(key: str, raw: bytes) -> Any:
    """Decode the stored form of a plain MCAS value read from ``key``.

    Raises:
        McasFormatError: ``raw`` is not a plain MCAS value.
        CorruptValue: its encoding is damaged.
    """
    if raw[:1] != _VALUE_TAG:
        raise McasFormatError(
            f"Entry {key!r} does not hold a plain MCAS value (starts with {raw[:8]!r}); "
            "create MCAS entries with mcas_add() or encode_value() and read them with mcas_get()"
        )
    return _SERDE.loads(raw[1:])


@dataclass(frozen=True, slots=True)
class _Record:
    """A decoded descriptor."""

    status: int
    items: list[tuple[str, int, bytes, bytes]]  # (key, cas, old raw, new raw), by key
    expire: float
    ttl: float

    def pack(self, status: int | None = None) -> bytes:
        return _SERDE.dumps([_RECORD_VERSION, self.status if status is None else status,
                      [list(item) for item in self.items], self.expire, self.ttl])

    @classmethod
    def unpack(cls, dkey: str, raw: bytes) -> _Record:
        data = _SERDE.loads(raw)
        if not (isinstance(data, list) and len(data) == 5 and data[0] == _RECORD_VERSION):
            raise McasFormatError(f"Descriptor {dkey!r} has an unknown format: {data!r:.80}")
        _, status, items, expire, ttl = data
        return cls(status, [(k, c, o, n) for k, c, o, n in items], expire, ttl)


def mcas_add(store: Store, key: str, value: Any, expire: float = 0) -> bool:
    """Create an MCAS entry holding ``value`` unless ``key`` already exists.

    Returns:
        ``True`` when created, ``False`` when the key was already there.

    Raises:
        InvalidKey, SerializationError, ValueTooLarge, BackendError: as the store does.
    """
    return store.add(key, encode_value(value), expire=expire)


def mcas_get(store: Store, key: str) -> Entry | None:
    """Read an MCAS entry, finishing first any operation caught half-way on it.

    Returns:
        The entry snapshot, or ``None`` when the key is missing.

    Raises:
        McasFormatError: the key holds something that is not an MCAS value.
    """
    while True:
        got = store.gets(key)
        if got is None:
            return None
        raw, cas = got
        if raw[:1] == _REF_TAG:
            _help_referent(store, key, raw, cas)
            continue
        return Entry(key, decode_value(key, raw), cas, raw)


def mcas_get_many(store: Store, keys: Iterable[str]) -> dict[str, Entry]:
    """Read several MCAS entries in one round trip (more only to finish caught operations).

    Each entry is a snapshot of its own: the set is not read atomically (on a pool it
    spans servers), but an :func:`mcas` over them checks every one, so acting on a
    mixed set fails instead of applying. An operation met in flight is finished first,
    and then every key is read again.

    Returns:
        A dict from key to entry snapshot; missing keys are left out.
    """
    wanted = list(dict.fromkeys(keys))
    while True:
        got = store.gets_many(wanted)
        referents = {raw: (key, cas) for key, (raw, cas) in got.items() if raw[:1] == _REF_TAG}
        if not referents:
            return {key: Entry(key, decode_value(key, raw), cas, raw) for key, (raw, cas) in got.items()}
        for raw, (key, cas) in referents.items():
            _help_referent(store, key, raw, cas)


def mcas(
    store: Store,
    updates: Sequence[tuple[Entry, Any]],
    *,
    expire: float = 0,
    descriptor_ttl: float = DEFAULT_DESCRIPTOR_TTL,
) -> bool:
    """Set every entry to its new value if none changed since it was read, atomically.

    Args:
        store: the store holding the entries.
        updates: ``(entry, new_value)`` pairs; each entry is a snapshot from :func:`mcas_get`
            or :func:`mcas_get_many`, each key at most once.
        expire: the expiry given to every entry written (new values, and old values put
            back when the operation fails).
        descriptor_ttl: seconds the operation's descriptor may live; a caller stalled longer
            than this loses its operation (see :class:`McasOutcomeUnknown`).

    Returns:
        ``True`` when every entry now holds its new value, ``False`` when nothing changed
        because some entry had changed (or vanished) since its snapshot.

    Raises:
        McasFormatError: a key appears twice, or an update is not an ``(Entry, value)`` pair.
        SerializationError: a new value cannot be encoded by
            :class:`~cachedeps.serde.MsgpackSerializer`.
        ValueTooLarge: the descriptor (every old and new value together) is over the item
            size limit.
        McasOutcomeUnknown: the descriptor vanished before the outcome was known.
        BackendError: the store failed; if the descriptor had been written, the operation
            may or may not take effect (the next reader of its entries decides), so read
            them again to find out.
    """
    items: dict[str, tuple[str, int, bytes, bytes]] = {}
    for update in updates:
        if not (isinstance(update, tuple) and len(update) == 2 and isinstance(update[0], Entry)):
            raise McasFormatError(f"An MCAS update must be an (Entry, new_value) pair, got {update!r:.80}")
        entry, new_value = update
        if entry.key in items:
            raise McasFormatError(f"Key {entry.key!r} appears twice in one MCAS; merge the updates")
        items[entry.key] = (entry.key, entry.cas, entry.raw, encode_value(new_value))
    if not items:
        return True
    if len(items) == 1:
        # One entry needs no descriptor: a plain cas is already atomic against other MCAS
        # operations, whose references change the CAS id.
        ((key, cas, _, new),) = items.values()
        return bool(store.cas(key, new, cas, expire=expire))

    # Sorted by key, every operation claims shared entries in the same order.
    record = _Record(_UNDECIDED, [items[k] for k in sorted(items)], expire, descriptor_ttl)
    dkey = DESCRIPTOR_PREFIX + uuid.uuid4().hex
    try:
        if not store.add(dkey, record.pack(), expire=descriptor_ttl):
            raise BackendError(f"MCAS descriptor key {dkey!r} already exists in {store.name}")
    except ValueTooLarge as exc:
        raise ValueTooLarge(
            f"MCAS descriptor over keys {sorted(items)!r:.120} is too large for {store.name}: "
            "it holds every old and new value; keep large data in separate entries and "
            "put only their keys under MCAS"
        ) from exc
    status = _help(store, dkey, record)
    if status is None:
        raise McasOutcomeUnknown(
            f"The MCAS descriptor {dkey!r} vanished from {store.name} before the outcome was "
            f"decided or read (evicted, or older than descriptor_ttl={descriptor_ttl}s); "
            "re-read the entries to see their state"
        )
    if status == _SUCCEEDED:
        # Every entry was claimed before the decision, so no late helper can claim one
        # now (its CAS ids are spent): the descriptor is of no further use.
        store.delete(dkey)
    else:
        # A helper that read the descriptor before the decision may still claim an entry
        # the operation never reached; it needs the record to put the old value back.
        store.touch(dkey, min(descriptor_ttl, FINISHED_TTL))
    return status == _SUCCEEDED


def _help_referent(store: Store, key: str, raw: bytes, cas: int) -> None:
    """Finish the operation that ``key`` (read as ``raw`` at ``cas``) refers to."""
    dkey = raw[1:].decode("utf-8", "replace")
    got = store.gets(dkey)
    record = None if got is None else _Record.unpack(dkey, got[0])
    if record is None or all(item[0] != key for item in record.items):
        # Descriptor gone (or not about this entry, which only damage can cause): the
        # outcome is unknowable, so drop the entry instead of guessing. The delete is
        # conditional: a cas with an expiry in the past.
        store.cas(key, b"", cas, expire=-1)
        return
    _help(store, dkey, record)


def _help(store: Store, dkey: str, record: _Record) -> int | None:
    """Carry an operation to its end; return its status, ``None`` if the descriptor vanished."""
    ref = _REF_TAG + dkey.encode("utf-8")
    status: int | None = record.status
    if status == _UNDECIDED:
        status = _decide(store, dkey, _claim_all(store, ref, record))
        if status is None:
            return None
    _release(store, ref, record, status == _SUCCEEDED)
    return status


def _claim_all(store: Store, ref: bytes, record: _Record) -> int:
    """Point every entry at the descriptor; return the status this warrants."""
    for key, cas, _, _ in record.items:
        if store.cas(key, ref, cas, expire=record.expire):
            continue
        # Not stored: another helper may have claimed the entry for us already; anything
        # else means the entry changed (or vanished) after the snapshot, and we fail.
        got = store.gets(key)
        if got is None or got[0] != ref:
            return _FAILED
    return _SUCCEEDED


def _decide(store: Store, dkey: str, outcome: int) -> int | None:
    """Record ``outcome`` unless the operation is decided already; return the decision."""
    while True:
        got = store.gets(dkey)
        if got is None:
            return None
        raw, cas = got
        current = _Record.unpack(dkey, raw)
        if current.status != _UNDECIDED:
            return current.status
        stored = store.cas(dkey, current.pack(outcome), cas, expire=current.ttl)
        if stored is None:
            return None
        if stored:
            return outcome


def _release(store: Store, ref: bytes, record: _Record, succeeded: bool) -> None:
    """Replace the reference in every entry by the new (or old) value."""
    got = store.gets_many([key for key, _, _, _ in record.items])
    for key, _, old, new in record.items:
        current = got.get(key)
        while current is not None and current[0] == ref:
            if store.cas(key, new if succeeded else old, current[1], expire=record.expire) is not False:
                break
            current = store.gets(key)
