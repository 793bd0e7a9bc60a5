"""URLs of the bookmarks app."""

from __future__ import annotations

from django.urls import path

from django_cachedeps.decorators import cached_view

from . import views
from .feeds import UserBookmarksFeed

__all__ = ["urlpatterns"]

urlpatterns = [
    path("", views.home, name="home"),
    path("u/<str:username>/", views.user_bookmarks, name="user"),
    path("u/<str:username>/feed/", cached_view(UserBookmarksFeed()), name="user-feed"),
    path("t/<slug:slug>/", views.tag_page, name="tag"),
    path("add/", views.add_bookmark, name="add"),
    path("b/<int:pk>/edit/", views.edit_bookmark, name="edit"),
]
