"""Models for the Django tests: authors, books, tags (m2m), profiles (one-to-one)."""

from __future__ import annotations

import os
import uuid

from django.db import models

from django_cachedeps.models import CachedManager

__all__ = ["Author", "Book", "Tag", "Profile", "Novel", "BookCard", "Spelled", "CommaList", "Group", "Item", "CI_COLLATION"]

#: A case-insensitive collation: SQLite's NOCASE; on PostgreSQL a non-deterministic ICU
#: collation the migration creates; on MariaDB/MySQL a _ci collation (PAD SPACE too).
CI_COLLATION = {"postgresql": "cachedeps_ci", "mysql": "utf8mb4_general_ci"}.get(
    os.environ.get("CACHEDEPS_TEST_DB", "sqlite"), "NOCASE"
)


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


class CommaList(models.TextField):
    """A list of integers stored as ``"1,2"``: its prepared value differs from its Python value."""

    def from_db_value(self, value, expression, connection):  # noqa: ANN001, ANN201
        return self.to_python(value)

    def to_python(self, value):  # noqa: ANN001, ANN201
        if value is None or isinstance(value, list):
            return value
        return [int(v) for v in value.split(",") if v]

    def get_prep_value(self, value):  # noqa: ANN001, ANN201
        if value is None:
            return None
        if isinstance(value, str):
            return value
        return ",".join(str(v) for v in value)


class Spelled(models.Model):
    """Columns whose database spelling differs from their Python value or whose comparison
    is not exact: a case-insensitive collation, JSON, a custom field, a UUID."""

    name = models.CharField(max_length=50, db_collation=CI_COLLATION, default="")
    data = models.JSONField(default=dict)
    numbers = CommaList(default=list)
    uid = models.UUIDField(null=True)
    color = models.CharField(max_length=10, default="RED")

    objects = CachedManager()

    class Meta:
        db_table = "spelled"


class Group(models.Model):
    """The property test's parent table."""

    name = models.CharField(max_length=20)
    rank = models.IntegerField(default=0)

    objects = CachedManager()

    class Meta:
        db_table = "pgroup"


class Item(models.Model):
    """The property test's table: ints, nullable text and int, a boolean, a nullable FK."""

    k = models.IntegerField()
    n = models.IntegerField(null=True)
    s = models.CharField(max_length=20, null=True)
    flag = models.BooleanField(default=False)
    group = models.ForeignKey(Group, null=True, on_delete=models.SET_NULL, related_name="items")

    objects = CachedManager()

    class Meta:
        db_table = "pitem"


class Wrapper:
    """A primary key's Python value that is unhashable (``__eq__`` without ``__hash__``), as
    in Django's own custom_pk tests."""

    def __init__(self, value):  # noqa: ANN001
        self.value = value

    def __str__(self) -> str:
        return str(self.value)

    def __eq__(self, other):  # noqa: ANN001, ANN204
        return self.value == (other.value if isinstance(other, Wrapper) else other)


class WrappedAutoField(models.BigAutoField):
    """An auto primary key read back as a :class:`Wrapper` its own ``get_prep_value`` refuses."""

    def from_db_value(self, value, expression, connection):  # noqa: ANN001, ANN201
        return None if value is None else Wrapper(value)

    def get_prep_value(self, value):  # noqa: ANN001, ANN201
        return None if value is None else int(value)

    def get_db_prep_value(self, value, connection, prepared=False):  # noqa: ANN001, ANN201
        if isinstance(value, Wrapper):
            value = value.value
        return super().get_db_prep_value(value, connection, prepared)


class Wrapped(models.Model):
    """A model whose primary key cachedeps cannot use to read its rows back."""

    id = WrappedAutoField(primary_key=True)
    name = models.CharField(max_length=20)

    objects = CachedManager()

    class Meta:
        db_table = "wrapped"
