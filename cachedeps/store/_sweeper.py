"""Background upkeep of the embedded store: expiry, eviction to the water marks, flushes.

The sweeper thread holds only a weak reference to its store, so a store nobody uses any
more is collected and its thread ends. It works in chunks of :data:`CHUNK` entries,
releasing the lock in between.
"""

from __future__ import annotations

import heapq
import threading
import time
import weakref
from collections import OrderedDict
from typing import Protocol

from ._deps import DependencyGraph
from ._scan import CHUNK

__all__ = ["SweeperMixin", "sweep_loop"]

_monotonic = time.monotonic


def sweep_loop(ref: weakref.ref, wake: threading.Event) -> None:
    """Run the sweeper of the store behind ``ref`` until it is closed or collected."""
    while True:
        store = ref()
        if store is None or store._closed:
            return
        store.sweep()
        interval = store._tick_interval
        del store
        wake.wait(interval)
        wake.clear()


class _SweepHost(Protocol):
    """The state of :class:`~cachedeps.store.embedded.EmbeddedStore` that upkeep works on."""

    _lock: threading.Lock
    _data: OrderedDict[str, list]
    _deps: DependencyGraph
    _c: dict[str, int]
    _bytes: int
    _low_mark: int
    _high_mark: int
    _expiring: list[tuple[float, str]]
    _flush_at: float
    _tick: int
    _wake_pending: bool
    _wake: threading.Event

    def _expire_locked(self, key: str, e: list) -> bool: ...

    def _evict_locked(self, target: int, budget: int = -1) -> int: ...

    def _flush_due(self) -> None: ...

    def _clear_locked(self) -> None: ...


class SweeperMixin:
    """Expiry and eviction for :class:`~cachedeps.store.embedded.EmbeddedStore`."""

    def sweep(self: _SweepHost) -> None:
        """Expire due items and evict down to the low water mark, in small locked chunks."""
        self._tick = int(_monotonic()) + 1
        self._wake_pending = False
        if self._flush_at:
            with self._lock:
                self._flush_due()
        heap = self._expiring
        while heap and heap[0][0] <= _monotonic():
            with self._lock:
                now = _monotonic()
                for _ in range(CHUNK):
                    if not heap or heap[0][0] > now:
                        break
                    key = heapq.heappop(heap)[1]
                    e = self._data.get(key)
                    if e is None or not e[2]:
                        continue
                    if e[2] <= now:
                        self._expire_locked(key, e)
                    else:
                        # Stored again with a later deadline since this entry was pushed.
                        heapq.heappush(heap, (e[2], key))
        while self._bytes > self._low_mark:
            with self._lock:
                if not self._evict_locked(self._low_mark, CHUNK):
                    break
        if len(heap) > 2 * len(self._data) + 1024:
            with self._lock:
                self._expiring = [(e[2], k) for k, e in self._data.items() if e[2]]
                heapq.heapify(self._expiring)

    def _pressure(self: _SweepHost) -> None:
        if self._bytes > self._high_mark:
            self._evict_locked(self._high_mark)
        if not self._wake_pending:
            self._wake_pending = True
            self._wake.set()

    def _evict_locked(self: _SweepHost, target: int, budget: int = -1) -> int:
        data = self._data
        now = _monotonic()
        removed = 0
        # Keep the most recent item: it is the one just written.
        while self._bytes > target and len(data) > 1 and budget != 0:
            budget -= 1
            removed += 1
            key, e = data.popitem(last=False)
            self._bytes -= e[4]
            if e[2] and e[2] <= now:
                self._c["expired_unfetched" if e[5] < 0 else "reclaimed"] += 1
                continue
            e[6][2] += 1
            self._c["evictions"] += 1
            if e[5] < 0:
                self._c["evicted_unfetched"] += 1
        return removed

    def _flush_due(self: _SweepHost) -> None:
        if _monotonic() >= self._flush_at:
            self._clear_locked()

    def _clear_locked(self: _SweepHost) -> None:
        self._data.clear()
        self._bytes = 0
        self._expiring = []
        self._flush_at = 0.0
        self._deps.clear()
