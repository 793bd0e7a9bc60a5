"""Delta maps and checkpoints: validate cached entries locally, without a round trip.

Every process keeps, for the changes it has polled from the feed, *when* each dependency
key last changed (RelStorage's checkpoint strategy, reference 001, made process-wide):

- ``after0``: key → last tid, for changes after checkpoint ``cp0``;
- ``after1``: key → last tid, for changes in ``(cp1, cp0]``;
- the *horizon* is ``cp1``: the maps hold every change after it, up to ``current_tid``
  (the newest tid polled).

A cached value stamped ``T`` (the ``current_tid`` of the process that computed it, read
before its database reads) with dependency keys ``D`` is valid iff ``T >= horizon`` and no
key of ``D`` changed after ``T``. Changes at or before ``T`` are in the value: the
computing process had polled ``T``, so its read-committed reads saw them. Changes after
``T`` that this process has not polled yet belong to commits that had not returned when the
current request polled, so not seeing them is allowed.

The maps are bounded: when they hold more than ``max_delta`` keys (±10% jitter, so that
processes do not all move at once) the checkpoints shift: ``cp1 := cp0``,
``cp0 := current_tid``, ``after1 := after0``, ``after0 := {}``. Entries stamped before the
new horizon become misses; nothing becomes stale. The maps never exceed about twice
``max_delta``.

Checkpoints are shared through one store key so that processes agree, and a process
started later (which reads them and polls the feed from ``cp1`` to fill its maps) still
hits entries computed before it started. Disagreement only costs hits. The protocol
itself (reading and publishing the shared key) lives in :class:`~cachedeps.cache.Cache`;
this module is the in-memory part.

``floor`` (the larger of the horizon and the newest tid in the maps) gives hits a shortcut:
a value stamped at or after it is current whatever its dependency keys are.

Concurrency: updates hold one lock; readers do lock-free ``dict.get`` on a snapshot
(:class:`MapsView`) that is replaced as a whole on shift, adoption and reset. Polled
changes are added to the live dicts in place, which a concurrent reader may or may not see
(it polled before, so it need not).
"""

from __future__ import annotations

import random
import threading
from typing import Iterable, NamedTuple

from .keys import implied

__all__ = ["MapsView", "DeltaMaps", "BLIND", "encode_checkpoints", "decode_checkpoints"]

#: a horizon no stamp reaches: every entry with dependencies is invalid
BLIND = 2**63 - 1


class MapsView(NamedTuple):
    """One consistent state of the delta maps."""

    after0: dict[str, int]
    after1: dict[str, int]
    cp0: int
    cp1: int

    @property
    def horizon(self) -> int:
        """Return the tid after which the maps are complete."""
        return self.cp1


def encode_checkpoints(cp0: int, cp1: int) -> bytes:
    """Return the store value of a checkpoint pair."""
    return f"{cp0} {cp1}".encode("ascii")


def decode_checkpoints(raw: bytes | None) -> tuple[int, int] | None:
    """Return ``(cp0, cp1)`` from a store value, or ``None`` for a missing or bad one."""
    if not raw:
        return None
    try:
        a, b = raw.split()
        cp0, cp1 = int(a), int(b)
    except (ValueError, TypeError):
        return None
    if cp0 < cp1 or cp1 < 0:
        return None
    return cp0, cp1


class DeltaMaps:
    """The process-wide delta maps of one cache.

    Until the first :meth:`reset` or :meth:`build` the maps are *blind*: every entry with
    dependencies is invalid.
    """

    def __init__(self, max_delta: int = 10_000) -> None:
        if max_delta < 1:
            raise ValueError(f"max_delta must be positive, got {max_delta!r}")
        self.max_delta = max_delta
        self.lock = threading.RLock()
        self.view = MapsView({}, {}, BLIND, BLIND)
        self.current_tid = 0
        self.ready = False
        #: an upper bound of every tid in the maps
        self.newest_change = 0
        #: ``max(horizon, newest_change)``: a value stamped at or after it is current
        #: whatever it depends on, so a hit need not read its dependency keys
        self.floor = BLIND
        self._pending: dict[str, int] = {}
        self._limit = self._draw_limit()

    def _draw_limit(self) -> int:
        return max(1, int(self.max_delta * random.uniform(0.9, 1.1)))

    # -- reading (lock-free) ---------------------------------------------------------

    @property
    def horizon(self) -> int:
        """Return the tid after which the maps are complete."""
        return self.view.cp1

    def size(self) -> int:
        """Return how many keys the maps hold."""
        view = self.view
        return len(view.after0) + len(view.after1)

    def last_change(self, key: str) -> int:
        """Return the newest known tid of a change to ``key`` or a key implying it (0: none)."""
        view = self.view
        best = 0
        for k in implied(key):
            t = view.after0.get(k)
            if t is None:
                t = view.after1.get(k, 0)
            if t > best:
                best = t
        return best

    def newest(self, keys: Iterable[str]) -> int:
        """Return the newest known tid of a change to any of ``keys`` (0: none), no implication."""
        view = self.view
        best = 0
        for k in keys:
            t = view.after0.get(k)
            if t is None:
                t = view.after1.get(k, 0)
            if t > best:
                best = t
        return best

    def valid(self, stamp: int, deps: Iterable[str]) -> bool:
        """Return whether a value stamped ``stamp`` with (expanded) ``deps`` is current."""
        view = self.view
        if stamp < view.cp1:
            return False
        if stamp >= self.floor:
            return True
        a0 = view.after0
        a1 = view.after1
        for d in deps:
            t = a0.get(d)
            if t is None:
                t = a1.get(d)
            if t is not None and t > stamp:
                return False
        return True

    # -- updating (under the lock) ---------------------------------------------------

    def _put(self, view: MapsView, key: str, tid: int) -> None:
        if tid > self.newest_change:  # raised before the key is visible in a map
            self.newest_change = tid
            if tid > self.floor:
                self.floor = tid
        if tid > view.cp0:
            m = view.after0
        elif tid > view.cp1:
            m = view.after1
        else:
            return
        old = m.get(key)
        if old is None or tid > old:
            m[key] = tid

    def _install(self, view: MapsView) -> None:
        self.view = view
        self.floor = max(view.cp1, self.newest_change)

    def apply(self, changes: Iterable[tuple[int, str]], tid: int) -> None:
        """Add polled changes and move ``current_tid`` to ``tid``."""
        with self.lock:
            view = self.view
            pending = self._pending
            seen: dict[str, int] = {}
            for t, key in changes:
                self._put(view, key, t)
                if pending and key in pending and t > seen.get(key, 0):
                    seen[key] = t
            if tid > self.current_tid:
                self.current_tid = tid
            if pending:
                self._settle(view, seen)

    def _settle(self, view: MapsView, seen: dict[str, int]) -> None:
        # A database feed gives each key of one transaction its own row tid, while the
        # writer recorded them all at the transaction's newest tid. Once a poll covers the
        # transaction, take the polled tid, so every process names the same state keys.
        pending = self._pending
        head = self.current_tid
        for key, ptid in list(pending.items()):
            if ptid > head:
                continue
            del pending[key]
            t = seen.get(key)
            if t is None or t >= ptid:
                continue
            for m in (view.after0, view.after1):
                if m.get(key) == ptid:
                    del m[key]
            self._put(view, key, t)

    def record(self, keys: Iterable[str], tid: int) -> None:
        """Mark ``keys`` changed at ``tid`` (a commit of this process); ``current_tid`` stays."""
        with self.lock:
            if tid <= self.current_tid:
                return  # a poll already brought this change in
            view = self.view
            pending = self._pending
            for key in keys:
                self._put(view, key, tid)
                if len(pending) < self.max_delta:
                    pending[key] = max(tid, pending.get(key, 0))

    def reset(self, tid: int) -> None:
        """Forget everything: entries stamped before ``tid`` become misses.

        Changes known after ``tid`` (commits of this process a concurrent poll did not see
        yet) are kept: an entry stamped at ``tid`` does not hold them.
        """
        with self.lock:
            old = self.view if self.ready else MapsView({}, {}, BLIND, BLIND)
            view = MapsView({}, {}, tid, tid)
            for m in (old.after1, old.after0):
                for key, t in m.items():
                    if t > tid:
                        self._put(view, key, t)
            self._install(view)
            self.current_tid = tid
            self._pending = {k: t for k, t in self._pending.items() if t > tid}
            self.ready = True

    def blind(self) -> None:
        """Invalidate every entry with dependencies until the next :meth:`reset`."""
        with self.lock:
            self._install(MapsView({}, {}, BLIND, BLIND))
            self.ready = False

    def build(self, cp0: int, cp1: int, changes: Iterable[tuple[int, str]], tid: int) -> None:
        """Rebuild the maps from a complete poll after ``cp1`` (keeping known later changes)."""
        with self.lock:
            old = self.view if self.ready else MapsView({}, {}, BLIND, BLIND)
            view = MapsView({}, {}, cp0, cp1)
            for t, key in changes:
                self._put(view, key, t)
            # what we knew are real changes: keep those after the new horizon
            for m in (old.after1, old.after0):
                for key, t in m.items():
                    self._put(view, key, t)
            self._install(view)
            self.current_tid = max(tid, self.current_tid if self.ready else tid)
            self.ready = True

    def can_adopt(self, cp0: int, cp1: int) -> bool:
        """Return whether checkpoints can be adopted from what the maps already hold."""
        return self.ready and cp1 >= self.view.cp1 and cp0 >= cp1

    def adopt(self, cp0: int, cp1: int) -> bool:
        """Move to checkpoints ``(cp0, cp1)`` without polling; False if they are behind us."""
        with self.lock:
            if not self.can_adopt(cp0, cp1):
                return False
            old = self.view
            if (old.cp0, old.cp1) == (cp0, cp1):
                return True
            view = MapsView({}, {}, cp0, cp1)
            for m in (old.after1, old.after0):
                for key, t in m.items():
                    self._put(view, key, t)
            self._install(view)
            self._limit = self._draw_limit()
            return True

    def needs_shift(self) -> bool:
        """Return whether the maps passed their (jittered) size limit and can move."""
        if not self.ready or self.size() <= self._limit:
            return False
        view = self.view
        return self.current_tid > view.cp0 or view.cp0 > view.cp1

    def shifted(self) -> tuple[int, int]:
        """Return the checkpoints a shift moves to.

        Normally ``(current_tid, cp0)``; when nothing was polled since ``cp0`` (one poll
        brought more than ``max_delta`` changes) ``(cp0, cp0)``, dropping ``after1``.
        """
        view = self.view
        if self.current_tid > view.cp0:
            return self.current_tid, view.cp0
        return view.cp0, view.cp0
