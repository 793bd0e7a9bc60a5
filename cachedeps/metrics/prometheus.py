"""Prometheus metrics of the engine's events (``pip install 'cachedeps[prometheus]'``).

::

    from cachedeps.metrics import prometheus

    prometheus.install()                  # once per process: counts every cache's events
    body, content_type = prometheus.render()   # what a /metrics endpoint answers

Metrics (``cachedeps_`` prefix): ``hits_total``, ``misses_total``, ``stale_total`` (label
``kind``: ``entry`` or ``state``), ``sets_total``, ``invalidations_total`` (dependency keys),
``commits_total``, ``purges_total``, ``store_errors_total``, and the histogram
``poll_seconds``.

**Several processes** (gunicorn workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory writable by every worker before they start (prometheus_client's multiprocess
mode). Each worker then writes its figures there (at each poll, that is each request, and
at :func:`flush`) and :func:`render` adds up every worker's (a ``MultiProcessCollector``),
so any worker answers for all of them. Clear the directory when the server restarts, and
call :func:`mark_process_dead` from gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import os
from typing import Any

from . import Exporter, Installed

__all__ = ["PrometheusExporter", "install", "uninstall", "installed", "render", "flush", "mark_process_dead",
           "POLL_BUCKETS"]

#: poll duration buckets, seconds: one indexed query, usually well under 10 ms
POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_HELP = {
    "hits": "Cache look-ups served (entries and object states)",
    "misses": "Cache look-ups that found nothing usable",
    "stale": "Entries found but rejected: a dependency changed after they were computed",
    "sets": "Entries stored",
    "invalidations": "Dependency keys of committed changes",
    "commits": "Committed changes that invalidated dependency keys",
    "purges": "Store entries deleted through the dependency trees",
    "store_errors": "Store operations that failed (answered from the database instead)",
}
_LABELLED = ("hits", "misses", "stale")

_installed = Installed()


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        from ..errors import ConfigurationError

        raise ConfigurationError(
            "Prometheus metrics need the prometheus_client package: pip install 'cachedeps[prometheus]'"
        ) from exc
    return prometheus_client


class PrometheusExporter(Exporter):
    """Count engine events in ``prometheus_client`` metrics.

    Args:
        registry: where the metrics are registered (default ``prometheus_client.REGISTRY``).

    Raises:
        ConfigurationError: ``prometheus_client`` is not installed.
    """

    def __init__(self, registry: Any = None) -> None:
        super().__init__()
        client = _client()
        if registry is None:
            registry = client.REGISTRY
        self.registry = registry
        self._counters: dict[str, Any] = {}
        self._by_kind: dict[tuple[str, str], Any] = {}
        self._collectors: list[Any] = []
        for figure, text in _HELP.items():
            labels = ("kind",) if figure in _LABELLED else ()
            counter = client.Counter(f"cachedeps_{figure}", text, labels, registry=registry)
            self._collectors.append(counter)
            if labels:
                for kind in ("entry", "state"):
                    self._by_kind[(figure, kind)] = counter.labels(kind=kind)  # children made once
            else:
                self._counters[figure] = counter
        self._poll = client.Histogram("cachedeps_poll_seconds", "Duration of one change-feed poll",
                                      buckets=POLL_BUCKETS, registry=registry)
        self._collectors.append(self._poll)

    def unregister(self) -> None:
        """Remove the metrics from the registry (they can then be created again)."""
        for collector in self._collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:  # already gone
                pass

    def count(self, figure: str, n: int = 1, kind: str | None = None) -> None:
        """Add ``n`` to ``cachedeps_<figure>_total``."""
        if n <= 0:
            return
        if kind is not None:
            self._by_kind[(figure, kind)].inc(n)
        else:
            self._counters[figure].inc(n)

    def observe(self, seconds: float) -> None:
        """Record one poll's duration in ``cachedeps_poll_seconds``."""
        self._poll.observe(seconds)


def install(registry: Any = None) -> PrometheusExporter:
    """Return the process's exporter, created and installed on the first call.

    Raises:
        ConfigurationError: ``prometheus_client`` is not installed.
    """
    return _installed.install(lambda: PrometheusExporter(registry))


def uninstall() -> None:
    """Stop counting and unregister the metrics (tests, reconfiguration)."""
    exporter = _installed.uninstall()
    if exporter is not None:
        exporter.unregister()


def installed() -> PrometheusExporter | None:
    """Return the installed exporter, if any."""
    return _installed.exporter


def render(registry: Any = None) -> tuple[bytes, str]:
    """Return ``(body, content_type)`` of a scrape, every worker's figures added up in
    multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)."""
    client = _client()
    flush()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if registry is None and path:
        from prometheus_client import multiprocess

        registry = client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    elif registry is None:
        exporter = _installed.exporter
        registry = exporter.registry if exporter is not None else client.REGISTRY
    return client.generate_latest(registry), client.CONTENT_TYPE_LATEST


def flush() -> None:
    """Carry every cache's figures counted since the last poll into the metrics (before a
    worker or script exits; the Django adapter calls it at the end of every request)."""
    exporter = _installed.exporter
    if exporter is not None:
        exporter.flush()


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live figures (gunicorn's ``child_exit`` hook); its counts stay."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)
