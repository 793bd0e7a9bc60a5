"""Metrics of the engine's events for Django: ``CACHEDEPS["METRICS"]`` and a ``/metrics`` view.

::

    CACHEDEPS = {"METRICS": ["prometheus", "otel"]}   # pip install 'cachedeps[prometheus,otel]'

    # urls.py
    from django_cachedeps.metrics import metrics_view
    urlpatterns = [path("metrics", metrics_view), ...]

The exporters (:mod:`cachedeps.metrics`) are installed when the app is ready (and again
when the setting changes); their client libraries are imported only then. At the end of
every request the figures its reads counted are carried into the Prometheus metrics
(:func:`flush_after_request`), so a worker's scrape files are never behind its requests. The view answers
Prometheus' text format; with ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn workers) it adds up
every worker's figures. It shows counts only, no keys: protect it as you would any
internal endpoint (a private network, the scraper's address).
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

__all__ = ["install_configured", "metrics_view", "flush_after_request"]

logger = logging.getLogger("django_cachedeps")


def install_configured(**kwargs: Any) -> None:
    """Install the exporters ``CACHEDEPS["METRICS"]`` names (a ``setting_changed`` receiver too).

    A missing client library is logged here and reported by check ``cachedeps.E011``.
    """
    if kwargs.get("setting") not in (None, "CACHEDEPS"):
        return
    from cachedeps.errors import ConfigurationError

    from django.conf import settings

    from .conf import parse

    try:  # parsed here without keeping the result: the setting is still read lazily
        wanted = parse(getattr(settings, "CACHEDEPS", None)).metrics
    except Exception:  # a malformed CACHEDEPS is reported by cachedeps.E001
        return
    from cachedeps.metrics import otel, prometheus

    for name, module in (("prometheus", prometheus), ("otel", otel)):
        if name not in wanted:
            module.uninstall()  # the setting no longer names it
    for name in wanted:
        try:
            if name == "prometheus":
                prometheus.install()
            elif name == "otel":
                otel.install()
        except ConfigurationError as exc:
            logger.error("cachedeps: CACHEDEPS['METRICS'] names %r: %s", name, exc)


def flush_after_request(**kwargs: Any) -> None:
    """Carry the request's figures into the Prometheus metrics (a ``request_finished`` receiver)."""
    from cachedeps.metrics import prometheus

    prometheus.flush()


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Answer a Prometheus scrape (404 unless ``CACHEDEPS["METRICS"]`` holds ``"prometheus"``)."""
    from .conf import get_settings

    if "prometheus" not in get_settings().metrics:
        raise Http404("Add 'prometheus' to CACHEDEPS['METRICS'] to serve cachedeps metrics")
    from cachedeps.metrics import prometheus

    prometheus.install()
    body, content_type = prometheus.render()
    return HttpResponse(body, content_type=content_type)
