"""URLs of the ``/cachedeps/`` page: ``path("cachedeps/", include("django_cachedeps.urls"))``."""

from __future__ import annotations

from django.urls import path

from .views import dashboard

__all__ = ["urlpatterns"]

urlpatterns = [path("", dashboard, name="cachedeps-dashboard")]
