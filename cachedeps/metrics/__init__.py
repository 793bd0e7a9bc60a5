"""Export the engine's figures as metrics: Prometheus (:mod:`.prometheus`) or OpenTelemetry (:mod:`.otel`).

Both exporters count the same figures for every cache of the process; each imports its
client library only when it is installed (``pip install 'cachedeps[prometheus]'`` or
``'cachedeps[otel]'``):

=========================  =================================================================
figure                     counts
=========================  =================================================================
hits                       entries and object states served (label ``kind``: ``entry`` or ``state``)
misses                     look-ups that found nothing usable (``kind``)
stale                      entries found but rejected: a change since they were computed (``kind``)
sets                       entries and object states stored
invalidations              dependency keys of committed changes
commits                    committed changes (one per transaction that wrote)
purges                     store entries deleted through the dependency trees
store errors               store operations that failed (served from the database instead)
poll duration              seconds per feed poll (a histogram)
=========================  =================================================================

A cache hit pays nothing for them: the per-read figures (hits, misses, stale, sets, purges,
store errors) are the counters every cache keeps anyway (:class:`cachedeps.stats.Stats`),
carried into the metrics as differences at each poll of that cache (once per request or
unit of work), at each scrape or collection, and by :meth:`Exporter.flush`. Only polls and
commits are listened to as :mod:`cachedeps.events`. A script or a worker that ends
between polls calls ``flush()`` before it exits (the Django adapter does at the end of every
request); what a cache counted after its last flush is lost with it when it is
garbage-collected.

Example::

    from cachedeps.metrics import prometheus
    prometheus.install()            # then serve prometheus.render() at /metrics
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["FIGURES", "Exporter", "Installed"]

#: the counters every exporter keeps (``poll_seconds`` is a histogram)
FIGURES = ("hits", "misses", "stale", "sets", "invalidations", "commits", "purges", "store_errors")

# figure -> (Stats counter of every look-up, Stats counter of the object-state ones)
_LOOKUPS = {"hits": ("hits", "state_hits"), "misses": ("misses", "state_misses"), "stale": ("stale", "state_stale")}
_PLAIN = ("sets", "purges", "store_errors")
_EVENTS = ("poll", "commit")


class Exporter:
    """Carry the engine's figures into a metrics library; subclasses implement
    :meth:`count` and :meth:`observe`.

    Install with :meth:`install` (a process-wide :mod:`cachedeps.events` listener of polls
    and commits) and remove with :meth:`uninstall`.
    """

    def __init__(self) -> None:
        self._flush_lock = threading.Lock()
        self._last: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()

    def count(self, figure: str, n: int = 1, kind: str | None = None) -> None:
        """Add ``n`` to counter ``figure`` (``kind``: ``entry``/``state`` for look-ups)."""
        raise NotImplementedError

    def observe(self, seconds: float) -> None:
        """Record one feed poll's duration."""
        raise NotImplementedError

    def flush(self, stats: Any = None) -> None:
        """Carry what the caches counted since the last flush into the metrics.

        Args:
            stats: one cache's :class:`~cachedeps.stats.Stats` (default: every cache's).
        """
        from .. import events

        targets = events.instances() if stats is None else [stats]
        with self._flush_lock:
            for s in targets:
                now = dict(s.counters)
                last = self._last.get(s, {})
                self._last[s] = now

                def grown(name: str) -> int:
                    return now.get(name, 0) - last.get(name, 0)

                for figure, (total, states) in _LOOKUPS.items():
                    in_states = grown(states)
                    self.count(figure, grown(total) - in_states, "entry")
                    self.count(figure, in_states, "state")
                for figure in _PLAIN:
                    self.count(figure, grown(figure))

    def __call__(self, cache: Any, event: str, key: str, **detail: Any) -> None:
        """Take one poll or commit event (the :mod:`cachedeps.events` listener signature)."""
        if event == "poll":
            seconds = detail.get("seconds")
            if seconds is not None:
                self.observe(seconds)
            stats = getattr(cache, "_stats", None)
            if stats is not None:
                self.flush(stats)
        elif event == "commit":
            self.count("commits")
            self.count("invalidations", len(detail.get("keys", ())))

    def install(self) -> None:
        """Start counting every cache's figures in this process (from now on)."""
        from .. import events

        with self._flush_lock:
            for s in events.instances():  # what was counted before is not this exporter's
                self._last.setdefault(s, dict(s.counters))
        events.add_listener(self, only=_EVENTS)

    def uninstall(self) -> None:
        """Stop counting."""
        from .. import events

        events.remove_listener(self)


class Installed:
    """The one exporter of a kind a process has: created and installed by the first
    :meth:`install`, removed by :meth:`uninstall` (the exporter modules' ``install()``,
    ``uninstall()`` and ``installed()``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exporter: Any = None

    def install(self, make: Any) -> Any:
        """Return the exporter, made by ``make()`` and installed if there is none yet."""
        with self._lock:
            if self.exporter is None:
                exporter = make()
                exporter.install()
                self.exporter = exporter
            return self.exporter

    def uninstall(self) -> Any:
        """Stop the exporter's counting; return it (``None`` if none was installed)."""
        with self._lock:
            exporter, self.exporter = self.exporter, None
        if exporter is not None:
            exporter.uninstall()
        return exporter
