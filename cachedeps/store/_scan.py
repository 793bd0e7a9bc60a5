"""Statistics and scans of the embedded store: ``stats``, ``prefix_stats``, ``fold`` and
``items_snapshot`` (``lru_crawler metadump``).

Scans copy the key list once, then read entries in small chunks under the lock and hand
them out with the lock released, so readers and writers never wait behind a scan.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple, Protocol, TypeVar

from ..api import Item
from ._deps import DependencyGraph
from ._expiry import to_unix
from ._prefix import PrefixTable

__all__ = ["ItemInfo", "ScanMixin", "CHUNK"]

T = TypeVar("T")

#: entries read per lock hold by scans and the sweeper
CHUNK = 512
_VERSION = "1.6.0-cachedeps"
_monotonic = time.monotonic


class ItemInfo(NamedTuple):
    """What ``lru_crawler metadump`` shows for one item (times are unix seconds)."""

    key: str
    exptime: int
    last_access: int
    size: int
    cas: int
    flags: int
    fetched: bool


class _ScanHost(Protocol):
    """The state of :class:`~cachedeps.store.embedded.EmbeddedStore` that scans read."""

    max_memory: int
    _lock: threading.Lock
    _data: OrderedDict[str, list]
    _prefixes: PrefixTable
    _deps: DependencyGraph
    _c: dict[str, int]
    _started: float
    _bytes: int
    _cas: int
    _cas_skipped: int
    _cas_reused: int
    _get_hits: int
    _get_misses: int

    def _fold_entries(self, fn: Callable[[T, str, list], T], initial: T) -> T: ...


class ScanMixin:
    """The read-only views of :class:`~cachedeps.store.embedded.EmbeddedStore`."""

    def stats(self: _ScanHost) -> dict[str, Any]:
        """Return memcached-like statistics (``stats``)."""
        now = time.time()
        with self._lock:
            out: dict[str, Any] = {
                "pid": os.getpid(),
                "uptime": int(now - self._started),
                "time": int(now),
                "version": _VERSION,
                "pointer_size": 64,
                "curr_items": len(self._data),
                "total_items": self._cas - self._cas_skipped + self._cas_reused,
                "cmd_set": self._cas - self._cas_skipped + self._cas_reused,
                "bytes": self._bytes,
                "limit_maxbytes": self.max_memory,
                "cmd_get": self._get_hits + self._get_misses,
                "get_hits": self._get_hits,
                "get_misses": self._get_misses,
                **self._c,
                "dependency_keys": len(self._deps),
                "dependency_links_dropped": self._deps.dropped_links,
                "dependency_keys_dropped": self._deps.dropped_parents,
            }
        out["cmd_touch"] = out["touch_hits"] + out["touch_misses"]
        return out

    def prefix_stats(self: _ScanHost) -> dict[str, dict[str, int]]:
        """Return ``{prefix: {items, bytes, hits, misses, evictions}}`` (prefix: text before ``:``)."""
        usage: dict[str, list[int]] = {}

        def count(acc: None, key: str, entry: list) -> None:
            figures = usage.setdefault(self._prefixes.name_of(key), [0, 0])
            figures[0] += 1
            figures[1] += entry[4]

        self._fold_entries(count, None)
        with self._lock:
            return self._prefixes.snapshot(usage)

    def items_snapshot(self: _ScanHost) -> Iterator[ItemInfo]:
        """Yield every live item's metadata, for ``lru_crawler metadump``.

        The key list is copied once; entries are then read in small chunks, releasing the
        lock between chunks, so writers and readers carry on meanwhile.
        """
        with self._lock:
            keys = list(self._data)
        wall, mono = time.time(), _monotonic()
        for start in range(0, len(keys), CHUNK):
            infos = []
            with self._lock:
                now = _monotonic()
                for key in keys[start:start + CHUNK]:
                    e = self._data.get(key)
                    if e is None or (e[2] and e[2] <= now):
                        continue
                    infos.append(ItemInfo(key, to_unix(e[2]), int(wall - (mono - abs(e[5]))),
                                          e[4], e[3], e[1], e[5] > 0))
            yield from infos

    def fold(self: _ScanHost, fn: Callable[[T, str, Item], T], initial: T) -> T:
        """Fold ``fn(acc, key, item)`` over every live item without stopping other threads.

        The key list is copied once; entries are read in small locked chunks and ``fn``
        runs outside the lock, so it may be slow or call the store itself.
        """
        return self._fold_entries(lambda acc, key, e: fn(acc, key, Item(e[0], e[1], e[3])), initial)

    def _fold_entries(self: _ScanHost, fn: Callable[[T, str, list], T], initial: T) -> T:
        with self._lock:
            keys = list(self._data)
        acc = initial
        for start in range(0, len(keys), CHUNK):
            batch = []
            with self._lock:
                now = _monotonic()
                for key in keys[start:start + CHUNK]:
                    e = self._data.get(key)
                    if e is not None and (not e[2] or e[2] > now):
                        batch.append((key, e[:6]))
            for key, e in batch:
                acc = fn(acc, key, e)
        return acc
