"""RSS feed of a user's latest bookmarks."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.syndication.views import Feed
from django.shortcuts import get_object_or_404
from django.urls import reverse

from .models import Bookmark

__all__ = ["UserBookmarksFeed"]


class UserBookmarksFeed(Feed):
    """The 20 newest bookmarks of one user."""

    def get_object(self, request, username):  # noqa: D102 - Django's Feed API
        return get_object_or_404(get_user_model(), username=username)

    def title(self, obj) -> str:  # noqa: D102
        return f"Bookmarks of {obj.get_username()}"

    def link(self, obj) -> str:  # noqa: D102
        return reverse("user", args=[obj.get_username()])

    def description(self, obj) -> str:  # noqa: D102
        return f"The newest bookmarks {obj.get_username()} saved."

    def items(self, obj):  # noqa: D102
        return Bookmark.objects.filter(owner_id=obj.pk).order_by("-created", "-id")[:20]

    def item_title(self, item: Bookmark) -> str:  # noqa: D102
        return item.title

    def item_description(self, item: Bookmark) -> str:  # noqa: D102
        return item.description

    def item_link(self, item: Bookmark) -> str:  # noqa: D102
        return item.url

    def item_pubdate(self, item: Bookmark):  # noqa: D102
        return item.created
