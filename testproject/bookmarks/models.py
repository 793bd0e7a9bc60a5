"""Bookmarks and tags."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

__all__ = ["Tag", "Bookmark"]


class Tag(models.Model):
    """A label shared by every user's bookmarks."""

    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Return the tag page's URL."""
        return reverse("tag", args=[self.slug])


class Bookmark(models.Model):
    """A link a user saved, with an importance from 1 (low) to 5 (high)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="bookmarks")
    url = models.URLField(max_length=500)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    importance = models.PositiveSmallIntegerField(default=3)
    created = models.DateTimeField(db_index=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="bookmarks")

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        """Return the owner's page, where the bookmark is listed."""
        return reverse("user", args=[self.owner.get_username()])
