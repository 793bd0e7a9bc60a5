"""A lock-free double-ended queue in any memcache store, built on :mod:`cachedeps.mcas`.

Several processes, on several machines, can push and pop at both ends of one deque; it
can grow large (each element is a separate entry) and hold values nearly as large as the
store's item limit. It suits work queues and channels between processes that can afford
to lose an element when the cache loses it (eviction, a restarted server); it never hands
the same element out twice.

Layout, for a deque named ``jobs``:

- ``deque:jobs`` (the anchor): ``[lo, hi]``, the elements live in slots ``lo .. hi-1``;
- ``deque:jobs:<i>`` (slot ``i``): ``None`` when empty, else the element inline (small
  values) or the key of a separate value entry ``deque:jobs:v:<uuid>`` (large ones).

A push claims the slot just outside ``[lo, hi)`` and moves the anchor with one MCAS over
both entries; a pop empties the slot at its end and moves the anchor the same way. Large
values are written to their own entry before the push and read after the pop, so only
keys go through MCAS descriptors.

Every entry is written with the deque's ``ttl`` (30 days by default): an element expires
``ttl`` seconds after it was pushed, and an abandoned deque vanishes ``ttl`` seconds after
its last operation. An element lost to eviction or expiry is skipped by pops.

Example::

    >>> from cachedeps.deque import Deque
    >>> jobs = Deque.create(store, "jobs")
    >>> jobs.append({"id": 1}); jobs.appendleft({"id": 0})
    >>> Deque.bind(store, "jobs").popleft()
    {'id': 0}
"""

from __future__ import annotations

import uuid
from typing import Any

from .api import RELATIVE_EXPIRY_LIMIT, Store
from .errors import ConfigurationError
from .keys import check_key
from .mcas import Entry, McasError, decode_value, encode_value, mcas, mcas_add, mcas_get

__all__ = ["Deque", "DequeNotFound", "DequeExists", "DEFAULT_TTL", "DEFAULT_INLINE_LIMIT"]

#: seconds an element (and an untouched deque) lives: memcached's longest relative expiry
DEFAULT_TTL = RELATIVE_EXPIRY_LIMIT
#: encoded values up to this many bytes are stored in their slot, larger ones apart
DEFAULT_INLINE_LIMIT = 512

_EMPTY = encode_value(None)
_INLINE, _SEPARATE = 0, 1


class DequeNotFound(McasError, LookupError):
    """The deque does not exist (never created, expired, or evicted)."""


class DequeExists(McasError, ValueError):
    """A deque of that name exists already."""


class Deque:
    """A handle on a deque in a store; cheap, holds no state but names, thread-safe.

    Build one with :meth:`create` or :meth:`bind`. The interface follows
    :class:`collections.deque`: :meth:`append`, :meth:`appendleft`, :meth:`pop`,
    :meth:`popleft` (these raise :class:`IndexError` when the deque is empty) and ``len()``.
    Values are anything :class:`~cachedeps.serde.MsgpackSerializer` encodes.
    """

    __slots__ = ("_store", "_name", "_anchor", "_ttl", "_inline_limit")

    def __init__(self, store: Store, name: str, *, ttl: float, inline_limit: int) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"A deque name must be a non-empty str, got {name!r}")
        # The longest key the deque builds must be a valid store key.
        check_key(f"deque:{name}:v:{uuid.uuid4().hex}")
        if not 0 < ttl <= RELATIVE_EXPIRY_LIMIT:
            raise ConfigurationError(
                f"Deque ttl must be between 1 and {RELATIVE_EXPIRY_LIMIT} seconds, got {ttl!r}"
            )
        if inline_limit < 0:
            raise ConfigurationError(f"Deque inline_limit must be >= 0 bytes, got {inline_limit!r}")
        self._store = store
        self._name = name
        self._anchor = f"deque:{name}"
        self._ttl = ttl
        self._inline_limit = inline_limit

    @classmethod
    def create(
        cls,
        store: Store,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> Deque:
        """Create an empty deque called ``name`` in ``store``.

        Args:
            ttl: seconds each element lives after its push, and the deque after its last
                operation.
            inline_limit: encoded values up to this size go in the slot itself; larger
                ones in their own entry (two more round trips per push and pop).

        Raises:
            DequeExists: a deque of that name exists; use :meth:`bind`.
            ConfigurationError, InvalidKey: a bad name, ttl or inline_limit.
        """
        deque = cls(store, name, ttl=ttl, inline_limit=inline_limit)
        if not mcas_add(store, deque._anchor, [0, 0], expire=ttl):
            raise DequeExists(f"A deque named {name!r} exists already in {store.name}; use Deque.bind()")
        return deque

    @classmethod
    def bind(
        cls,
        store: Store,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> Deque:
        """Return a handle on the existing deque ``name`` (arguments as for :meth:`create`).

        Raises:
            DequeNotFound: there is no such deque; create it with :meth:`create`.
        """
        deque = cls(store, name, ttl=ttl, inline_limit=inline_limit)
        deque._read_anchor()
        return deque

    @property
    def name(self) -> str:
        """The deque's name."""
        return self._name

    def __repr__(self) -> str:
        return f"<Deque {self._name!r} in {self._store.name}>"

    def __len__(self) -> int:
        """Return the number of elements (lost elements count until a pop skips them)."""
        lo, hi = self._read_anchor().value
        return hi - lo

    def append(self, value: Any) -> None:
        """Add ``value`` at the right end."""
        self._push(value, right=True)

    def appendleft(self, value: Any) -> None:
        """Add ``value`` at the left end."""
        self._push(value, right=False)

    def pop(self) -> Any:
        """Remove and return the rightmost element.

        Raises:
            IndexError: the deque is empty.
        """
        return self._pop(right=True)

    def popleft(self) -> Any:
        """Remove and return the leftmost element.

        Raises:
            IndexError: the deque is empty.
        """
        return self._pop(right=False)

    def _slot_key(self, index: int) -> str:
        return f"{self._anchor}:{index}"

    def _read_anchor(self) -> Entry:
        anchor = mcas_get(self._store, self._anchor)
        if anchor is None:
            raise DequeNotFound(
                f"No deque named {self._name!r} in {self._store.name} (never created, expired "
                "or evicted); create it with Deque.create()"
            )
        return anchor

    def _push(self, value: Any, *, right: bool) -> None:
        encoded = encode_value(value)
        if len(encoded) <= self._inline_limit:
            payload: list[Any] = [_INLINE, value]
        else:
            value_key = f"{self._anchor}:v:{uuid.uuid4().hex}"
            self._store.add(value_key, encoded, expire=self._ttl)
            payload = [_SEPARATE, value_key]
        store, ttl = self._store, self._ttl
        while True:
            anchor = self._read_anchor()
            lo, hi = anchor.value
            index = hi if right else lo - 1
            slot_key = self._slot_key(index)
            slot = mcas_get(store, slot_key)
            if slot is None:
                mcas_add(store, slot_key, None, expire=ttl)
                slot = mcas_get(store, slot_key)
            if slot is None or slot.value is not None:
                continue  # the anchor moved since we read it; read it again
            moved = [lo, hi + 1] if right else [lo - 1, hi]
            if mcas(store, [(anchor, moved), (slot, payload)], expire=ttl):
                return

    def _pop(self, *, right: bool) -> Any:
        store, ttl = self._store, self._ttl
        while True:
            anchor = self._read_anchor()
            lo, hi = anchor.value
            if lo >= hi:
                raise IndexError("pop from an empty deque")
            index = hi - 1 if right else lo
            moved = [lo, hi - 1] if right else [lo + 1, hi]
            slot = mcas_get(store, self._slot_key(index))
            if slot is None or slot.value is None:
                # The element was evicted or expired (or our anchor is stale, and then this
                # fails): step over it.
                mcas(store, [(anchor, moved)], expire=ttl)
                continue
            if not mcas(store, [(anchor, moved), (slot, None)], expire=ttl):
                continue
            self._drop_slot(index)
            kind, data = slot.value
            if kind == _INLINE:
                return data
            raw = store.get(data)
            if raw is None:
                continue  # the separate value was evicted or expired: lost, take the next
            store.delete(data)
            return decode_value(data, raw)

    def _drop_slot(self, index: int) -> None:
        """Delete an emptied slot unless a push has claimed it meanwhile."""
        key = self._slot_key(index)
        got = self._store.gets(key)
        if got is not None and got[0] == _EMPTY:
            self._store.cas(key, b"", got[1], expire=-1)
