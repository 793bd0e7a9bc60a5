"""The stale-read checker's app: one table per query shape the checker's readers use."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["CheckappConfig"]


class CheckappConfig(AppConfig):
    name = "tests.django.checkapp"
    label = "checkapp"
    default_auto_field = "django.db.models.BigAutoField"
