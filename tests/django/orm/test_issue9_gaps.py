"""Shapes of issue 9's known breaks that its first regression tests left out.

Break 1 names ``exclude(m2m=None)`` as well as ``filter(fk__isnull=True)``: a many-to-many
anti-join reads the through table on the nullable side of a LEFT OUTER JOIN. Its first
tests wrote the link with ``add()``, and pass on the code before the fix too: the old
dependencies (``book_tags.tag_id=null``, ``book_tags:*``) were met through ``add()``'s own
keys. A link saved, moved or deleted as a row of the through model emits only that row's
keys, which the old spelling missed: these tests fail on it (a stale read).
"""

from __future__ import annotations

import pytest

from tests.django.orm._support import check, seed
from tests.django.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)

Link = Tag.books.through


@pytest.fixture
def data(engine):
    return seed()


def _untagged_titles() -> list[str]:
    return sorted(Book.objects.filter(tags__isnull=True).values_list("title", flat=True))


def _tagged_titles() -> list[str]:
    return sorted(Book.objects.exclude(tags=None).values_list("title", flat=True))


def test_m2m_isnull_sees_a_link_saved_as_a_row(data):
    b4 = Book.objects.create(author=data["bob"], title="Delta", isbn="444")
    check(_untagged_titles, lambda: Link.objects.create(book=b4, tag=data["red"]), [])


def test_exclude_m2m_none_sees_a_link_saved_as_a_row(data):
    b4 = Book.objects.create(author=data["bob"], title="Delta", isbn="444")
    check(_tagged_titles, lambda: Link(book=b4, tag=data["blue"]).save(),
          ["Alpha", "Beta", "Delta", "Gamma"])


def test_m2m_isnull_sees_a_link_deleted_as_a_row(data):
    link = Link.objects.get(book=data["b3"], tag=data["blue"])
    check(_untagged_titles, link.delete, ["Gamma"])


def test_m2m_isnull_sees_a_link_moved_to_another_book(data):
    b4 = Book.objects.create(author=data["bob"], title="Delta", isbn="444")
    link = Link.objects.get(book=data["b3"], tag=data["blue"])

    def move() -> None:
        link.book = b4
        link.save()

    check(_untagged_titles, move, ["Gamma"])


def test_mysql_write_inside_an_executable_comment(data):
    """MySQL and MariaDB run the text of ``/*! ... */`` comments: a write there is a write."""
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("executable comments are MySQL's and MariaDB's")

    def title_111() -> list[str]:
        return list(Book.objects.filter(isbn="111").values_list("title", flat=True))

    def write() -> None:
        with connection.cursor() as cursor:
            cursor.execute("/*!40101 UPDATE book SET title = %s WHERE isbn = %s */", ["Raw", "111"])

    check(title_111, write, ["Raw"])
