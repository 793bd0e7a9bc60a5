"""App configuration of the bookmarks app."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["BookmarksConfig"]


class BookmarksConfig(AppConfig):
    """The bookmarks app."""

    name = "bookmarks"
    default_auto_field = "django.db.models.BigAutoField"
