"""The contracts every other module implements or consumes.

- :class:`Store`: the memcache command set over bytes values with 32-bit flags, implemented
  by the embedded store, the remote (pymemcache) store and, over TCP, ``cachedeps serve``.
- :class:`DependencyStore`: the optional native write-time dependency tree (embedded store,
  ``cachedeps serve``, the Redis store). Stores without it get an emulation from :mod:`cachedeps.deps`.
- :data:`NO_VALUE`: the marker for "nothing cached", distinct from a cached ``None``.
- :class:`Item`: a value with its flags and CAS id.

Expiry follows memcached: ``0`` never expires; up to 30 days (2,592,000 s) is relative
seconds; larger is an absolute unix time; negative means already expired.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "NO_VALUE",
    "NoValue",
    "Item",
    "Store",
    "DependencyStore",
    "Oid",
    "Tid",
    "DepKey",
    "MAX_KEY_LENGTH",
    "RELATIVE_EXPIRY_LIMIT",
]

Tid = int
"""A position in the change feed: increasing, fixed by the writer's transaction."""
Oid = str
"""One row: ``"<table>:<pk>"``."""
DepKey = str
"""A dependency key: an oid, a table key ``"<table>"``, ``"<table>:*"`` (every row) or a
field-value key ``"<table>.<column>=<value>"``; build them with :mod:`cachedeps.keys`."""

MAX_KEY_LENGTH = 250
RELATIVE_EXPIRY_LIMIT = 60 * 60 * 24 * 30


class NoValue:
    """The type of :data:`NO_VALUE`; falsy, a singleton, survives copy and pickle."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = NoValue()


class Item(NamedTuple):
    """A stored value with its client flags and CAS id."""

    value: bytes
    flags: int
    cas: int


@runtime_checkable
class Store(Protocol):
    """The memcache command set. Keys are ``str`` (validated by :func:`cachedeps.keys.check_key`),
    values ``bytes``.

    Reads of missing keys return ``None`` (or leave the key out of a dict); they never raise
    for a miss. Writes that the server refuses for size raise :class:`~cachedeps.errors.ValueTooLarge`;
    an unreachable server raises :class:`~cachedeps.errors.BackendUnavailable`.
    """

    #: a short description for logs and errors: ``embedded://default``, ``memcache://h:p``
    name: str

    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...
    def get_item(self, key: str) -> Item | None: ...
    def gets(self, key: str) -> tuple[bytes, int] | None:
        """Return ``(value, cas_id)`` or ``None``."""
    def gets_many(self, keys: Iterable[str]) -> dict[str, tuple[bytes, int]]: ...

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None: ...
    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        """Store every pair; return the keys that were not stored."""
    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool: ...
    def replace(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool: ...
    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        """Store only if the item's CAS id is still ``cas``.

        Returns ``True`` when stored, ``False`` when the item changed since (EXISTS), ``None``
        when there is no such item (NOT_FOUND).
        """
    def append(self, key: str, value: bytes) -> bool: ...
    def prepend(self, key: str, value: bytes) -> bool: ...

    def delete(self, key: str) -> bool: ...
    def delete_many(self, keys: Iterable[str]) -> None: ...
    def incr(self, key: str, delta: int = 1) -> int | None:
        """Add to a decimal counter (64-bit unsigned, wrapping); ``None`` if missing."""
    def decr(self, key: str, delta: int = 1) -> int | None:
        """Subtract from a decimal counter, stopping at 0; ``None`` if missing."""
    def touch(self, key: str, expire: float = 0) -> bool: ...
    def flush_all(self, delay: float = 0) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


@runtime_checkable
class DependencyStore(Protocol):
    """Native write-time dependency trees (reference 002).

    ``link(parent, children)`` records that each child key depends on ``parent``;
    ``invalidate(keys)`` deletes every key in ``keys`` and, recursively, everything that
    depends on them, atomically, and returns how many items were deleted.
    """

    def link(self, parent: str, children: Iterable[str], expire: float = 0) -> None: ...
    def invalidate(self, keys: Iterable[str]) -> int: ...
