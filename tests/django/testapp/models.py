"""Models for the Django tests: authors, books, tags (m2m), profiles (one-to-one)."""

from __future__ import annotations

from django.db import models

from django_cachedeps.models import CachedManager

__all__ = ["Author", "Book", "Tag", "Profile", "Novel", "BookCard"]


class Author(models.Model):
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)

    objects = CachedManager()

    class Meta:
        db_table = "author"

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    isbn = models.CharField(max_length=20, unique=True)
    pages = models.IntegerField(default=100)
    published = models.DateField(null=True, blank=True)

    objects = CachedManager()

    class Meta:
        db_table = "book"

    def __str__(self) -> str:
        return self.title


class Novel(Book):
    """Multi-table inheritance: a row in ``book`` and one in ``novel``."""

    genre = models.CharField(max_length=50, default="")

    class Meta:
        db_table = "novel"


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)
    books = models.ManyToManyField(Book, related_name="tags", db_table="book_tags")

    class Meta:
        db_table = "tag"

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(blank=True, default="")

    class Meta:
        db_table = "profile"


class BookCard(models.Model):
    """Unmanaged, over the view ``book_card`` (books joined to their authors), which the
    tests that use it create (``tests/django/orm/test_views_unmanaged.py``)."""

    title = models.CharField(max_length=200)
    author_name = models.CharField(max_length=100)

    class Meta:
        managed = False
        db_table = "book_card"
