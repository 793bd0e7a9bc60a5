"""Export the engine's events as metrics: Prometheus (:mod:`.prometheus`) or OpenTelemetry (:mod:`.otel`).

Both exporters are :mod:`cachedeps.events` listeners that count the same figures for every
cache of the process; each imports its client library only when it is installed
(``pip install 'cachedeps[prometheus]'`` or ``'cachedeps[otel]'``):

=========================  =================================================================
figure                     counts
=========================  =================================================================
hits                       entries and object states served (label ``kind``: ``entry`` or ``state``)
misses                     look-ups that found nothing usable (``kind``)
stale                      entries found but rejected: a change since they were computed (``kind``)
sets                       entries stored
invalidations              dependency keys of committed changes
commits                    committed changes (one per transaction that wrote)
purges                     store entries deleted through the dependency trees
store errors               store operations that failed (served from the database instead)
poll duration              seconds per feed poll (a histogram)
=========================  =================================================================

Example::

    from cachedeps.metrics import prometheus
    prometheus.install()            # then serve prometheus.render() at /metrics
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIGURES", "Exporter"]

#: the counters every exporter keeps (``poll_seconds`` is a histogram)
FIGURES = ("hits", "misses", "stale", "sets", "invalidations", "commits", "purges", "store_errors")

_KIND = {"hit": "hits", "miss": "misses", "stale": "stale"}


class Exporter:
    """Turn engine events into figures; subclasses implement :meth:`count` and :meth:`observe`.

    Install with :meth:`install` (a process-wide :mod:`cachedeps.events` listener) and remove
    with :meth:`uninstall`.
    """

    def count(self, figure: str, n: int = 1, kind: str | None = None) -> None:
        """Add ``n`` to counter ``figure`` (``kind``: ``entry``/``state`` for look-ups)."""
        raise NotImplementedError

    def observe(self, seconds: float) -> None:
        """Record one feed poll's duration."""
        raise NotImplementedError

    def __call__(self, cache: Any, event: str, key: str, **detail: Any) -> None:
        """Count one engine event (the :mod:`cachedeps.events` listener signature)."""
        figure = _KIND.get(event)
        if figure is not None:
            self.count(figure, 1, "state" if detail.get("state") else "entry")
        elif event == "commit":
            self.count("commits")
            self.count("invalidations", len(detail.get("keys", ())))
        elif event == "poll":
            seconds = detail.get("seconds")
            if seconds is not None:
                self.observe(seconds)
        elif event == "purge":
            self.count("purges", int(detail.get("count", 0)))
        elif event == "set":
            self.count("sets")
        elif event == "store_error":
            self.count("store_errors")

    def install(self) -> None:
        """Start counting every cache's events in this process."""
        from .. import events

        events.add_listener(self)

    def uninstall(self) -> None:
        """Stop counting."""
        from .. import events

        events.remove_listener(self)
