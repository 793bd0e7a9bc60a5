"""URLs of the demo site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

__all__ = ["urlpatterns"]

urlpatterns = [
    path("", include("bookmarks.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cachedeps/", include("django_cachedeps.urls")),
    path("admin/", admin.site.urls),
]
