"""URLs of the demo site."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

from bookmarks.views import DEMO_PASSWORD, DEMO_USERNAME

__all__ = ["urlpatterns"]

urlpatterns = [
    path("", include("bookmarks.urls")),
    # The login page shows the demo account's name and password.
    path("accounts/login/", LoginView.as_view(
        extra_context={"demo_username": DEMO_USERNAME, "demo_password": DEMO_PASSWORD}), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cachedeps/", include("django_cachedeps.urls")),
    path("admin/", admin.site.urls),
]
