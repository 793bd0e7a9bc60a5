"""URLs of the ``/cachedeps/`` page: ``path("cachedeps/", include("django_cachedeps.urls"))``;
``/cachedeps/metrics`` answers Prometheus scrapes when ``CACHEDEPS["METRICS"]`` holds ``"prometheus"``."""

from __future__ import annotations

from django.urls import path

from .metrics import metrics_view
from .views import dashboard

__all__ = ["urlpatterns"]

urlpatterns = [
    path("", dashboard, name="cachedeps-dashboard"),
    path("metrics", metrics_view, name="cachedeps-metrics"),
]
