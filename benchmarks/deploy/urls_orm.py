"""The demo's URLs with its pages not cached as pages (their ORM reads still are)."""

from __future__ import annotations

from benchmarks.deploy.urls_common import site_urls

__all__ = ["urlpatterns"]

urlpatterns = site_urls(lambda name, view: view)
