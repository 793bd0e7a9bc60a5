"""The test app's config."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["TestappConfig"]


class TestappConfig(AppConfig):
    name = "tests.django.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"
