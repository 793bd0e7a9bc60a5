"""Admin pages for bookmarks and tags."""

from __future__ import annotations

from django.contrib import admin

from .models import Bookmark, Tag

__all__ = ["BookmarkAdmin"]

admin.site.register(Tag)


@admin.register(Bookmark)
class BookmarkAdmin(admin.ModelAdmin):
    """List bookmarks with their owner and importance."""

    list_display = ["title", "owner", "importance", "created"]
    list_filter = ["importance"]
    search_fields = ["title", "url"]
