"""OpenTelemetry metrics of the engine's events (``pip install 'cachedeps[otel]'``).

::

    from cachedeps.metrics import otel

    otel.install()                        # the global MeterProvider, or install(meter_provider)

Instruments (meter ``cachedeps``): counters ``cachedeps.hits``, ``cachedeps.misses``,
``cachedeps.stale`` (attribute ``kind``: ``entry`` or ``state``), ``cachedeps.sets``,
``cachedeps.invalidations`` (dependency keys), ``cachedeps.commits``, ``cachedeps.purges``,
``cachedeps.store_errors``, and the histogram ``cachedeps.poll.duration`` (seconds). The
application's SDK configuration (readers, exporters, views) decides where they go. The
counters are observable (asynchronous): each collection first carries what every cache
counted since into them (:meth:`~cachedeps.metrics.Exporter.flush`).
"""

from __future__ import annotations

import threading
from typing import Any

from . import Exporter, Installed

__all__ = ["OtelExporter", "install", "uninstall", "installed"]

_UNITS = {"hits": "{lookup}", "misses": "{lookup}", "stale": "{entry}", "sets": "{entry}",
          "invalidations": "{key}", "commits": "{change}", "purges": "{entry}", "store_errors": "{error}"}
_DESCRIPTIONS = {
    "hits": "Cache look-ups served (entries and object states)",
    "misses": "Cache look-ups that found nothing usable",
    "stale": "Entries found but rejected: a dependency changed after they were computed",
    "sets": "Entries stored",
    "invalidations": "Dependency keys of committed changes",
    "commits": "Committed changes that invalidated dependency keys",
    "purges": "Store entries deleted through the dependency trees",
    "store_errors": "Store operations that failed (answered from the database instead)",
}
_KINDS = {"entry": {"kind": "entry"}, "state": {"kind": "state"}}

_installed = Installed()


class OtelExporter(Exporter):
    """Count engine events with OpenTelemetry instruments.

    Args:
        meter_provider: the provider to get the ``cachedeps`` meter from (default: the
            global one, ``opentelemetry.metrics.get_meter_provider()``).

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, meter_provider: Any = None) -> None:
        super().__init__()
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            from ..errors import ConfigurationError

            raise ConfigurationError(
                "OpenTelemetry metrics need the opentelemetry-api package: pip install 'cachedeps[otel]'"
            ) from exc
        from .. import __version__

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("cachedeps", __version__)
        self._totals: dict[tuple[str, str | None], int] = {}
        self._totals_lock = threading.Lock()
        self._instruments = [
            meter.create_observable_counter(f"cachedeps.{figure}", callbacks=[self._observer(figure)],
                                            unit=_UNITS[figure], description=text)
            for figure, text in _DESCRIPTIONS.items()
        ]
        self._poll = meter.create_histogram("cachedeps.poll.duration", unit="s",
                                            description="Duration of one change-feed poll")

    def _observer(self, figure: str) -> Any:
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> list[Any]:
            self.flush()
            with self._totals_lock:
                found = [(kind, n) for (f, kind), n in self._totals.items() if f == figure]
            return [Observation(n, _KINDS[kind] if kind is not None else None) for kind, n in found]

        return observe

    def count(self, figure: str, n: int = 1, kind: str | None = None) -> None:
        """Add ``n`` to the running total of ``cachedeps.<figure>``."""
        if n > 0:
            with self._totals_lock:
                self._totals[(figure, kind)] = self._totals.get((figure, kind), 0) + n

    def observe(self, seconds: float) -> None:
        """Record one poll's duration in ``cachedeps.poll.duration``."""
        self._poll.record(seconds)


def install(meter_provider: Any = None) -> OtelExporter:
    """Return the process's exporter, created and installed on the first call.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """
    return _installed.install(lambda: OtelExporter(meter_provider))


def uninstall() -> None:
    """Stop counting (tests, reconfiguration)."""
    _installed.uninstall()


def installed() -> OtelExporter | None:
    """Return the installed exporter, if any."""
    return _installed.exporter
