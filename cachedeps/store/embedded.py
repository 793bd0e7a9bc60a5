"""The embedded store: an in-process, thread-safe, memory-bounded memcache.

Example::

    from cachedeps.store.embedded import EmbeddedStore

    store = EmbeddedStore("default", max_memory=64 * 2**20)
    store.set("book:42", b"...", expire=300)
    store.get("book:42")

Design (see docs/storage.md):

- one ``OrderedDict`` in LRU order under one lock; an entry is a small list
  ``[value, flags, deadline, cas, size, access, prefix_record]`` where ``access`` is the
  coarse clock at the last read (negative: the last store, never read since);
- memory counted as key + value + a fixed per-item overhead; above the high water mark a
  writer evicts synchronously down to it, and a sweeper thread keeps usage near the low
  water mark, so a write up to ``max_memory - high_water`` never waits for eviction;
- expiry is lazy on access and, for items with a deadline, in the sweeper (a heap);
- CAS ids come from one counter that never goes back, so an id is never reused;
- long operations (fold, metadump, sweeping) work on snapshots or in small chunks,
  releasing the lock in between, so readers never wait behind them.
"""

from __future__ import annotations

import heapq
import threading
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..api import RELATIVE_EXPIRY_LIMIT, Item
from ..errors import ConfigurationError, NonNumericValue, ValueTooLarge
from ..keys import check_key
from ._deps import DependencyGraph
from ._expiry import NEVER, deadline
from ._prefix import PrefixTable
from ._scan import ItemInfo, ScanMixin
from ._sweeper import SweeperMixin, sweep_loop

if TYPE_CHECKING:
    from ..config import EmbeddedConfig

__all__ = ["EmbeddedStore", "ItemInfo", "ITEM_OVERHEAD"]

#: bytes counted per item on top of its key and value (the entry's own bookkeeping)
ITEM_OVERHEAD = 64
_MAX_U64 = 2**64 - 1
_MAX_FLAGS = 2**32 - 1
_monotonic = time.monotonic


def _check(key: Any) -> None:
    if not (key.__class__ is str and 0 < len(key) <= 250 and key.isprintable() and " " not in key
            and (key.isascii() or len(key.encode("utf-8")) <= 250)):
        check_key(key)


def _as_bytes(value: Any, key: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"Store values are bytes, got {type(value).__name__} for key {key!r}; "
                    "serialize first (cachedeps.serde)")


class EmbeddedStore(ScanMixin, SweeperMixin):
    """An in-process memcache: the :class:`~cachedeps.api.Store` and
    :class:`~cachedeps.api.DependencyStore` contracts over one LRU dictionary.

    Args:
        name: the store's name (``embedded://NAME``).
        max_memory: bytes of keys, values and per-item overhead to hold at most.
        item_max: the largest item in bytes (default 1 MiB).
        low_water, high_water: fractions of ``max_memory``; the sweeper evicts down to
            ``low_water``, a writer down to ``high_water``.
        sweep_interval: seconds between sweeper runs (expiry and eviction).
        max_dependents: the length of one dependents list; older links are dropped.
        max_dependency_keys: how many parent keys keep dependents lists.
        background: run the sweeper thread (without it, call :meth:`sweep` yourself).
    """

    def __init__(
        self,
        name: str = "default",
        *,
        max_memory: int = 64 * 2**20,
        item_max: int = 2**20,
        low_water: float = 0.80,
        high_water: float = 0.90,
        sweep_interval: float = 1.0,
        max_dependents: int = 1000,
        max_dependency_keys: int = 100_000,
        background: bool = True,
    ) -> None:
        if not 0 < low_water <= high_water <= 1:
            raise ConfigurationError(
                f"Water marks must satisfy 0 < low_water <= high_water <= 1, got "
                f"low_water={low_water!r}, high_water={high_water!r}"
            )
        if item_max <= 0 or max_memory <= 0 or sweep_interval <= 0:
            raise ConfigurationError(
                f"max_memory ({max_memory!r}), item_max ({item_max!r}) and sweep_interval "
                f"({sweep_interval!r}) must be positive"
            )
        self.name = f"embedded://{name}"
        self.store_name = name
        self.item_max = item_max
        self.low_water = low_water
        self.high_water = high_water
        self.sweep_interval = sweep_interval
        self._lock = threading.Lock()
        self._data: OrderedDict[str, list] = OrderedDict()
        self._bytes = 0
        self._cas = 0
        self._prefixes = PrefixTable()
        self._deps = DependencyGraph(max_dependents, max_dependency_keys)
        self._expiring: list[tuple[float, str]] = []
        self._flush_at = 0.0
        self._tick = int(_monotonic()) + 1
        self._tick_interval = min(sweep_interval, 1.0)
        self._started = time.time()
        self._closed = False
        self._wake_pending = False
        self._wake = threading.Event()
        self._c: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._get_hits = 0
        self._get_misses = 0
        self._cas_skipped = 0
        self._cas_reused = 0
        self.set_memory_limit(max_memory)
        self._configured_memory = max_memory
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=sweep_loop, args=(weakref.ref(self), self._wake),
                name=f"cachedeps-sweeper-{name}", daemon=True,
            )
            self._thread.start()

    # -- configuration -------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: EmbeddedConfig) -> EmbeddedStore:
        """Open a store from an :class:`~cachedeps.config.EmbeddedConfig`."""
        return cls(config.name, max_memory=config.max_memory, item_max=config.item_max,
                   low_water=config.low_water, high_water=config.high_water,
                   sweep_interval=config.sweep_interval, max_dependents=config.max_dependents,
                   max_dependency_keys=config.max_dependency_keys)

    @property
    def config(self) -> EmbeddedConfig:
        """Return the settings this store was opened with."""
        from ..config import EmbeddedConfig

        return EmbeddedConfig(self.store_name, self._configured_memory, self.item_max,
                              self.low_water, self.high_water, self.sweep_interval,
                              self._deps.max_dependents, self._deps.max_parents)

    def set_memory_limit(self, max_memory: int) -> None:
        """Change the memory limit (memcached's ``cache_memlimit``), evicting to fit."""
        if max_memory <= 0:
            raise ConfigurationError(f"max_memory must be positive, got {max_memory!r}")
        with self._lock:
            self.max_memory = max_memory
            self._low_mark = int(max_memory * self.low_water)
            self._high_mark = int(max_memory * self.high_water)
            self._item_limit = min(self.item_max, max_memory)
            self._evict_locked(self._high_mark)
        self._wake.set()

    def stats_settings(self) -> dict[str, Any]:
        """Return the settings, as memcached's ``stats settings`` does."""
        return {
            "maxbytes": self.max_memory,
            "item_size_max": self.item_max,
            "low_water_bytes": self._low_mark,
            "high_water_bytes": self._high_mark,
            "sweep_interval": self.sweep_interval,
            "max_dependents": self._deps.max_dependents,
            "max_dependency_keys": self._deps.max_parents,
            "evictions": "on",
            "cas_enabled": "yes",
            "item_overhead": ITEM_OVERHEAD,
        }

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None``."""
        with self._lock:
            if self._flush_at:
                self._flush_due()
            try:
                e = self._data.get(key)
            except TypeError:  # unhashable: reported by _check below
                e = None
            if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
                # Only a miss needs the key checked: every stored key was checked when stored.
                _check(key)
                self._miss(key)
                return None
            self._data.move_to_end(key)
            e[5] = self._tick
            e[6][0] += 1
            self._get_hits += 1
            return e[0]

    def _live(self, key: str) -> list | None:
        # Caller holds the lock; counts a hit or a miss.
        if self._flush_at:
            self._flush_due()
        e = self._data.get(key)
        if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
            self._miss(key)
            return None
        self._data.move_to_end(key)
        e[5] = self._tick
        e[6][0] += 1
        self._get_hits += 1
        return e

    def get_item(self, key: str) -> Item | None:
        """Return the value with its flags and CAS id, or ``None``."""
        _check(key)
        with self._lock:
            e = self._live(key)
            return None if e is None else Item(e[0], e[1], e[3])

    def peek_item(self, key: str) -> Item | None:
        """Return the item like :meth:`get_item` (a hit or a miss counted) without moving it
        in the LRU or marking it fetched (memcached's ``mg ... u``)."""
        _check(key)
        with self._lock:
            if self._flush_at:
                self._flush_due()
            e = self._data.get(key)
            if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
                self._miss(key)
                return None
            self._get_hits += 1
            return Item(e[0], e[1], e[3])

    def get_items(self, keys: Iterable[str]) -> dict[str, Item]:
        """Return ``{key: Item}`` for the keys that are present."""
        keys = list(keys)
        for key in keys:
            _check(key)
        out: dict[str, Item] = {}
        with self._lock:
            for key in keys:
                e = self._live(key)
                if e is not None:
                    out[key] = Item(e[0], e[1], e[3])
        return out

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys that are present."""
        return {k: item.value for k, item in self.get_items(keys).items()}

    def gets(self, key: str) -> tuple[bytes, int] | None:
        """Return ``(value, cas_id)`` or ``None``."""
        item = self.get_item(key)
        return None if item is None else (item.value, item.cas)

    def gets_many(self, keys: Iterable[str]) -> dict[str, tuple[bytes, int]]:
        """Return ``{key: (value, cas_id)}`` for the keys that are present."""
        return {k: (item.value, item.cas) for k, item in self.get_items(keys).items()}

    def gat(self, key: str, expire: float) -> Item | None:
        """Get an item and change its expiry in one step (memcached ``gat``/``gats``)."""
        _check(key)
        dl = deadline(expire)
        with self._lock:
            e = self._live(key)
            if e is None:
                self._c["touch_misses"] += 1
                return None
            self._c["touch_hits"] += 1
            self._set_deadline(key, e, dl)
            return Item(e[0], e[1], e[3])

    def touch(self, key: str, expire: float = 0) -> bool:
        """Change an item's expiry without reading it; return whether it exists."""
        _check(key)
        dl = deadline(expire)
        with self._lock:
            e = self._data.get(key)
            if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
                self._c["touch_misses"] += 1
                return False
            self._c["touch_hits"] += 1
            self._data.move_to_end(key)
            self._set_deadline(key, e, dl)
            return True

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        """Store ``value`` under ``key``.

        Args:
            expire: memcached expiry (0 never, up to 30 days relative, else unix time).
            flags: 32-bit client flags returned with the value.

        Raises:
            ValueTooLarge: the item is over the item size limit; nothing was stored.
        """
        if key.__class__ is not str:
            check_key(key)
        if value.__class__ is not bytes:
            value = _as_bytes(value, key)
        size = len(key) + len(value) + ITEM_OVERHEAD
        if size > self._item_limit:
            self._too_large(key, value)
        if flags and not (flags.__class__ is int and 0 <= flags <= _MAX_FLAGS):
            self._bad_flags(flags)
        if not expire:
            dl = NEVER
        elif 0 < expire <= RELATIVE_EXPIRY_LIMIT:
            dl = _monotonic() + expire
        else:
            dl = deadline(expire)
        data = self._data
        with self._lock:
            e = data.get(key)
            if e is None:
                # A key already stored was checked when it was first stored.
                _check(key)
            if self._flush_at:
                self._store_locked(key, value, flags, dl, size, None)
                return
            # The common case, inlined: _store_locked does the same.
            self._cas = cas = self._cas + 1
            if e is None:
                self._bytes += size
                data[key] = [value, flags, dl, cas, size, -self._tick, self._prefixes.record(key)]
                if dl:
                    heapq.heappush(self._expiring, (dl, key))
            else:
                data.move_to_end(key)
                if dl and (not e[2] or dl < e[2]):
                    heapq.heappush(self._expiring, (dl, key))
                self._bytes += size - e[4]
                e[0] = value
                e[1] = flags
                e[2] = dl
                e[3] = cas
                e[4] = size
                e[5] = -self._tick
            if self._bytes > self._low_mark:
                self._pressure()

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        """Store every pair; return the keys that were not stored (none: all fit or raise)."""
        items = list(mapping.items())
        for key, value in items:
            _check(key)
            if len(key) + len(value) + ITEM_OVERHEAD > self._item_limit:
                self._too_large(key, value)
        for key, value in items:
            self.set(key, value, expire, flags)
        return []

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds nothing; return whether it was stored."""
        return self.store_item("add", key, value, expire, flags)[0] == "STORED"

    def replace(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds something; return whether it was stored."""
        return self.store_item("replace", key, value, expire, flags)[0] == "STORED"

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        """Store only if the CAS id is still ``cas``: True stored, False changed, None missing."""
        status = self.store_item("set", key, value, expire, flags, compare_cas=cas)[0]
        return True if status == "STORED" else (False if status == "EXISTS" else None)

    def append(self, key: str, value: bytes) -> bool:
        """Add bytes after an existing value (flags and expiry kept); False if missing."""
        return self.store_item("append", key, value)[0] == "STORED"

    def prepend(self, key: str, value: bytes) -> bool:
        """Add bytes before an existing value (flags and expiry kept); False if missing."""
        return self.store_item("prepend", key, value)[0] == "STORED"

    def store_item(self, mode: str, key: str, value: bytes, expire: float = 0, flags: int = 0, *,
                   compare_cas: int | None = None, cas_id: int | None = None) -> tuple[str, int]:
        """Carry out any memcache storage command; return ``(status, cas_id)``.

        ``mode`` is ``set``, ``add``, ``replace``, ``append`` or ``prepend``; with
        ``compare_cas`` the item must exist with that CAS id (``cas``, meta ``ms C``);
        ``cas_id`` gives the new item that CAS id (meta ``E``). ``status`` is ``STORED``,
        ``NOT_STORED``, ``EXISTS`` or ``NOT_FOUND``; ``cas_id`` is the item's CAS id after
        the command (0 when there is no item).
        """
        _check(key)
        if mode not in _MODES:
            raise ValueError(f"Unknown storage mode {mode!r}; use one of {', '.join(_MODES)}")
        if value.__class__ is not bytes:
            value = _as_bytes(value, key)
        if flags and not (flags.__class__ is int and 0 <= flags <= _MAX_FLAGS):
            self._bad_flags(flags)
        dl = deadline(expire) if expire else NEVER
        c = self._c
        with self._lock:
            if self._flush_at:
                self._flush_due()
            e = self._data.get(key)
            if e is not None and e[2] and e[2] <= _monotonic() and self._expire_locked(key, e):
                e = None
            if compare_cas is not None:
                if e is None:
                    c["cas_misses"] += 1
                    return "NOT_FOUND", 0
                if e[3] != compare_cas:
                    c["cas_badval"] += 1
                    return "EXISTS", e[3]
                c["cas_hits"] += 1
            if mode == "add":
                if e is not None:
                    self._data.move_to_end(key)
                    return "NOT_STORED", e[3]
            elif mode != "set":
                if e is None:
                    return "NOT_STORED", 0
                if mode == "append":
                    value = e[0] + value
                elif mode == "prepend":
                    value = value + e[0]
                if mode != "replace":
                    flags, dl = e[1], e[2]
            size = len(key) + len(value) + ITEM_OVERHEAD
            if size > self._item_limit:
                self._too_large(key, value)
            return "STORED", self._store_locked(key, value, flags, dl, size, cas_id)

    def _store_locked(self, key: str, value: bytes, flags: int, dl: float, size: int,
                      cas_id: int | None) -> int:
        if cas_id is None:
            self._cas = cas = self._cas + 1
        else:
            cas = cas_id
            if cas_id > self._cas:
                # Later ids stay above every explicit one, so ids keep growing.
                self._cas_skipped += cas_id - self._cas - 1
                self._cas = cas_id
            else:
                self._cas_reused += 1
        if self._flush_at:
            self._flush_due()
        data = self._data
        e = data.get(key)
        if dl and (e is None or not e[2] or dl < e[2]):
            heapq.heappush(self._expiring, (dl, key))
        if e is not None:
            self._bytes += size - e[4]
            e[0] = value
            e[1] = flags
            e[2] = dl
            e[3] = cas
            e[4] = size
            e[5] = -self._tick
            data.move_to_end(key)
        else:
            self._bytes += size
            data[key] = [value, flags, dl, cas, size, -self._tick, self._prefixes.record(key)]
        if self._bytes > self._low_mark:
            self._pressure()
        return cas

    # -- deletes and counters ------------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        return self.delete_item(key) == "DELETED"

    def delete_item(self, key: str, compare_cas: int | None = None) -> str:
        """Delete ``key`` (only at CAS id ``compare_cas`` if given).

        Returns ``DELETED``, ``EXISTS`` (CAS id differs) or ``NOT_FOUND``.
        """
        _check(key)
        with self._lock:
            e = self._data.get(key)
            if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
                self._c["delete_misses"] += 1
                return "NOT_FOUND"
            if compare_cas is not None and e[3] != compare_cas:
                return "EXISTS"
            self._remove_locked(key, e)
            self._c["delete_hits"] += 1
            return "DELETED"

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key in ``keys``."""
        for key in keys:
            self.delete(key)

    def incr(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to a decimal counter, wrapping at 2**64; ``None`` if missing."""
        return self._delta(key, delta, True)

    def decr(self, key: str, delta: int = 1) -> int | None:
        """Subtract ``delta`` from a decimal counter, stopping at 0; ``None`` if missing."""
        return self._delta(key, delta, False)

    def _delta(self, key: str, delta: int, up: bool) -> int | None:
        _check(key)
        if delta.__class__ is not int or not 0 <= delta <= _MAX_U64:
            raise NonNumericValue(
                f"{'incr' if up else 'decr'} delta must be an int from 0 to 2**64-1, got {delta!r}"
            )
        name = "incr" if up else "decr"
        with self._lock:
            e = self._data.get(key)
            if e is None or (e[2] and e[2] <= _monotonic() and self._expire_locked(key, e)):
                self._c[name + "_misses"] += 1
                return None
            raw = e[0].strip()
            if not (raw.isdigit() and len(raw) <= 20 and int(raw) <= _MAX_U64):
                raise NonNumericValue(
                    f"Cannot {name} {key!r}: its value {e[0][:40]!r} is not a 64-bit unsigned "
                    "decimal number; store a counter with set(key, b'0') first"
                )
            number = (int(raw) + delta) & _MAX_U64 if up else max(int(raw) - delta, 0)
            value = b"%d" % number
            self._c[name + "_hits"] += 1
            self._store_locked(key, value, e[1], e[2], len(key) + len(value) + ITEM_OVERHEAD, None)
            return number

    def flush_all(self, delay: float = 0) -> None:
        """Invalidate every item now, or every item stored before ``delay`` seconds pass."""
        with self._lock:
            self._c["cmd_flush"] += 1
            if delay and delay > 0:
                self._flush_at = deadline(delay)
                return
            self._clear_locked()

    # -- dependency trees ----------------------------------------------------------------

    def link(self, parent: str, children: Iterable[str], expire: float = 0) -> None:
        """Record that each of ``children`` depends on ``parent`` (for ``expire`` seconds)."""
        _check(parent)
        children = list(children)
        for child in children:
            _check(child)
        dl = deadline(expire)
        with self._lock:
            self._deps.link(parent, children, dl)

    def invalidate(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` and, recursively, their dependents, atomically; return the count."""
        stack = list(keys)
        for key in stack:
            _check(key)
        deleted = 0
        seen: set[str] = set()
        with self._lock:
            now = _monotonic()
            data = self._data
            while stack:
                key = stack.pop()
                if key in seen:
                    continue
                seen.add(key)
                e = data.get(key)
                if e is not None:
                    alive = not e[2] or e[2] > now
                    self._remove_locked(key, e)
                    if alive:
                        deleted += 1
                    else:
                        self._c["expired_unfetched" if e[5] < 0 else "reclaimed"] += 1
                stack.extend(self._deps.take(key, now))
            self._c["invalidations"] += 1
            self._c["invalidated_items"] += deleted
        return deleted

    def dependents(self, parent: str) -> list[str]:
        """Return the keys currently recorded as depending on ``parent``."""
        with self._lock:
            return self._deps.dependents(parent)

    # -- introspection -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._data)

    def peek(self, key: str) -> tuple[int, int, int, bool, int] | None:
        """Return ``(cas, ttl, idle, fetched, size)`` of a live item without touching it.

        For the meta protocol (``mg t l h``, ``me``): ``ttl`` is the whole seconds left
        (``-1``: never expires), ``idle`` the seconds since the last read or store. Neither
        the LRU order nor the statistics change.
        """
        with self._lock:
            if self._flush_at:
                self._flush_due()
            e = self._data.get(key)
            if e is None:
                return None
            now = _monotonic()
            dl = e[2]
            if dl and dl <= now:
                return None
            ttl = -1 if not dl else int(-((now - dl) // 1))  # whole seconds, rounded up
            return e[3], ttl, max(int(now) - abs(e[5]), 0), e[5] > 0, e[4]

    def close(self) -> None:
        """Stop the sweeper thread and drop every item."""
        self._closed = True
        self._wake.set()
        with self._lock:
            self._clear_locked()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __repr__(self) -> str:
        return f"<EmbeddedStore {self.name} items={len(self._data)} bytes={self._bytes}>"

    # -- helpers (lock held) -------------------------------------------------------------

    def _miss(self, key: str) -> None:
        self._get_misses += 1
        self._prefixes.record(key)[1] += 1

    def _expire_locked(self, key: str, e: list) -> bool:
        # Returns True so it can sit inside a lookup's condition.
        del self._data[key]
        self._bytes -= e[4]
        self._c["expired_unfetched" if e[5] < 0 else "reclaimed"] += 1
        return True

    def _remove_locked(self, key: str, e: list) -> None:
        del self._data[key]
        self._bytes -= e[4]

    def _set_deadline(self, key: str, e: list, dl: float) -> None:
        if dl and (not e[2] or dl < e[2]):
            heapq.heappush(self._expiring, (dl, key))
        e[2] = dl

    def _too_large(self, key: str, value: bytes) -> None:
        raise ValueTooLarge(
            f"Item {key!r} is {len(key) + len(value) + ITEM_OVERHEAD} bytes (value {len(value)}), "
            f"over the item size limit of {self._item_limit} bytes in {self.name}; "
            "store a smaller value or raise item_max"
        )

    @staticmethod
    def _bad_flags(flags: Any) -> None:
        raise ValueError(f"flags must be an int from 0 to 2**32-1, got {flags!r}")


_MODES = ("set", "add", "replace", "append", "prepend")
_COUNTERS = (
    "cmd_flush", "cas_hits", "cas_misses", "cas_badval", "delete_hits", "delete_misses",
    "incr_hits", "incr_misses", "decr_hits", "decr_misses", "touch_hits", "touch_misses",
    "evictions", "evicted_unfetched", "expired_unfetched", "reclaimed",
    "invalidations", "invalidated_items",
)
