"""Helpers shared by the ORM tests."""

from __future__ import annotations

import datetime
from typing import Any, Callable

from django.db import connection

from tests.django.conftest import DbQueries
from tests.django.testapp.models import Author, Book, Profile, Tag

__all__ = ["seed", "served_from_cache", "fresh", "EXACT_TEXT", "text_key"]

#: Whether text columns compare exactly on the test database: not under MySQL's default
#: (case-insensitive, PAD SPACE) collations, where reads filtering on text keep table keys.
EXACT_TEXT = connection.vendor != "mysql"


def text_key(key: str) -> str:
    """Return the field-value key ``t.c=v`` of a text column, or ``t`` where text is inexact."""
    return key if EXACT_TEXT else key.split(".", 1)[0]


def seed() -> dict[str, Any]:
    """Create two authors, three books, two tags and a profile; return them by name."""
    ann = Author.objects.create(name="Ann")
    bob = Author.objects.create(name="Bob", active=False)
    b1 = Book.objects.create(author=ann, title="Alpha", isbn="111", pages=100,
                             published=datetime.date(2020, 1, 1))
    b2 = Book.objects.create(author=ann, title="Beta", isbn="222", pages=200)
    b3 = Book.objects.create(author=bob, title="Gamma", isbn="333", pages=300)
    red = Tag.objects.create(name="red")
    blue = Tag.objects.create(name="blue")
    red.books.add(b1, b2)
    blue.books.add(b3)
    Profile.objects.create(author=ann, bio="hello")
    return {"ann": ann, "bob": bob, "b1": b1, "b2": b2, "b3": b3, "red": red, "blue": blue}


def served_from_cache(read: Callable[[], Any]) -> Any:
    """Run ``read`` twice; assert the second run hits no table but the feed; return its result."""
    first = read()
    with DbQueries(connection) as q:
        second = read()
    assert q.data == [], f"expected the second read to be served from the cache, ran {q.data}"
    assert second == first
    return second


def fresh(read: Callable[[], Any]) -> Any:
    """Run ``read`` bypassing the cache (the database's answer)."""
    from django_cachedeps import nocache

    with nocache():
        return read()


def check(read: Callable[[], Any], write: Callable[[], Any], expected: Any) -> None:
    """Cache ``read``, run ``write``, and require ``read`` to return ``expected`` (the DB's answer)."""
    before = served_from_cache(read)
    assert before != expected, "the write must change the result for the test to mean anything"
    write()
    assert fresh(read) == expected
    assert read() == expected
