"""The demo's URLs with its pages cached by cacheops' ``cached_view_as``, as its docs put it:
each view cached as the models it lists (any change to one of them drops the page)."""

from __future__ import annotations

from cacheops import cached_view_as
from django.contrib.auth import get_user_model

from bookmarks.models import Bookmark, Tag
from benchmarks.deploy.urls_common import site_urls

__all__ = ["urlpatterns"]

_SAMPLES = {
    "home": (Bookmark, get_user_model(), Tag),
    "user": (Bookmark, get_user_model(), Tag),
    "user-feed": (Bookmark, get_user_model()),
    "tag": (Bookmark, Tag, get_user_model()),
}

urlpatterns = site_urls(lambda name, view: cached_view_as(*_SAMPLES[name])(view))
