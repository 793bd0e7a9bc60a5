"""Count what the cache does and tell listeners about it.

:class:`Stats` keeps plain counters (hits, misses, stale entries, sets, invalidations,
polls, checkpoint shifts, resets, store errors) and a list of listeners called as
``fn(event, key, **detail)`` in the caller's thread, plus the process-wide listeners of
:mod:`cachedeps.events` as ``fn(cache, event, key, **detail)`` (see docs/engine.md, "Events").

Counters are updated without a lock: an increment of a dict item can lose a count when two
threads race, which is acceptable for figures that feed dashboards, and it keeps a cache
hit free of lock traffic.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from . import events as _events
from .activity import KIND_NAMES, kind_of

__all__ = ["Stats", "Listener", "COUNTERS", "KIND_NAMES"]

_log = logging.getLogger("cachedeps")

Listener = Callable[..., None]

#: the counters every :class:`Stats` starts with
COUNTERS = (
    "hits",
    "misses",
    "stale",
    "sets",
    "deletes",
    "invalidations",
    "purges",
    "polls",
    "polls_shared",
    "changes_polled",
    "checkpoint_shifts",
    "checkpoint_adoptions",
    "resets",
    "store_errors",
    "lease_wins",
    "lease_waits",
    "lease_timeouts",
    "state_hits",
    "state_misses",
    "state_stale",
)


class Stats:
    """Hold counters and listeners for one :class:`~cachedeps.cache.Cache`."""

    __slots__ = ("counters", "kinds", "_listeners", "listening", "watching", "owner", "__weakref__")

    def __init__(self, owner: Any = None) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        #: per kind of entry (:data:`~cachedeps.activity.KIND_NAMES`): ``[hits, misses]``,
        #: stale reads counted as misses
        self.kinds: dict[str, list[int]] = {name: [0, 0] for name in KIND_NAMES}
        self._listeners: tuple[Listener, ...] = ()
        #: the cache these figures belong to (the first argument of process-wide listeners)
        self.owner = owner
        #: whether a listener wants the per-read events (hit, miss, stale, set), here or
        #: process-wide; a plain attribute, read on every cache hit
        self.listening = False
        #: whether any listener is registered (the other events: poll, commit, purge...)
        self.watching = False
        self.refresh()
        _events._register(self)

    def refresh(self) -> None:
        """Recompute :attr:`listening` and :attr:`watching` (listeners changed)."""
        self.listening = bool(self._listeners) or _events.wants_lookups
        self.watching = bool(self._listeners or _events.listeners())

    def incr(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        self.counters[name] = self.counters.get(name, 0) + n

    def count_kind(self, key: str, hit: bool) -> None:
        """Count a hit or a miss on the entry ``key`` under its kind."""
        self.kinds[kind_of(key)][0 if hit else 1] += 1

    def kind(self, name: str, hit: bool, n: int = 1) -> None:
        """Count ``n`` hits or misses under the kind ``name`` (rows, checkpoints)."""
        self.kinds[name][0 if hit else 1] += n

    def add_listener(self, fn: Listener) -> None:
        """Register ``fn(event, key, **detail)``."""
        self._listeners = (*self._listeners, fn)
        self.refresh()

    def remove_listener(self, fn: Listener) -> None:
        """Unregister ``fn``; unknown listeners are ignored."""
        self._listeners = tuple(f for f in self._listeners if f is not fn)
        self.refresh()

    def emit(self, event: str, key: str, **detail: Any) -> None:
        """Call every listener; a listener that raises is logged and skipped."""
        for fn in self._listeners:
            try:
                fn(event, key, **detail)
            except Exception:  # a debugging hook must never break a request
                _log.exception("cachedeps listener %r failed on %s %r", fn, event, key)
        for gfn, only in _events.subscriptions():
            if only is not None and event not in only:
                continue
            try:
                gfn(self.owner, event, key, **detail)
            except Exception:  # nor may an exporter
                _log.exception("cachedeps listener %r failed on %s %r", gfn, event, key)

    def snapshot(self) -> dict[str, int]:
        """Return a copy of the counters."""
        return dict(self.counters)

    def kinds_snapshot(self) -> dict[str, tuple[int, int]]:
        """Return ``{kind: (hits, misses)}``."""
        return {name: (rec[0], rec[1]) for name, rec in self.kinds.items()}
