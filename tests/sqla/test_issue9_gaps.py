"""Shapes of issue 9's known breaks that its first SQLAlchemy regression tests left out.

- Break 1 through a many-to-many relationship: ``outerjoin(Book.tags).where(Tag.id.is_(None))``
  lists books without tags; linking a tag (a flush of the collection, a Core insert into
  the secondary table) or unlinking the last one changes it.
- The same class with inner joins: a table the statement reaches only through an ORM
  relationship join (``join(Author.books)``, the ``secondary`` table of
  ``join(Book.tags)``) is missing from the read's keys (``sqla_cachedeps.analysis.read_keys``
  walks the Core elements of the statement, not the relationship joins the ORM expands at
  compile time), so a write to that table alone leaves the read stale. Marked ``xfail``
  until the adapter lists those tables.
- Break 17 with JSON parameters: two long JSON documents that differ only at their end
  must not share a query key.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import JSON, delete, insert, literal, select

from sqla_cachedeps import FromCache
from sqla_cachedeps.analysis import read_keys

from .models import Author, Book, Tag, book_tag

_RELATIONSHIP_JOINS = pytest.mark.xfail(
    strict=True,
    reason="sqla_cachedeps.analysis.read_keys leaves out tables reached only through an ORM "
           "relationship join (the target of join(Author.books), the secondary table of join(Book.tags))",
)


def _untagged(app: Any) -> list[int]:
    stmt = select(Book.id).outerjoin(Book.tags).where(Tag.id.is_(None)).order_by(Book.id)
    with app.Session() as s:
        return list(s.scalars(stmt.options(FromCache())).all())


def _cached(app: Any) -> list[int]:
    first = _untagged(app)
    app.selects.clear()
    assert _untagged(app) == first
    assert app.selects == [], "the read was not served from the cache"
    return first


def _tag_first_book(app: Any) -> None:
    with app.Session.begin() as s:
        red = Tag(id=1, name="red")
        book = s.get(Book, 1)
        book.tags.append(red)


def test_m2m_anti_join_sees_a_collection_append(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    writer = make_app()
    with writer.Session.begin() as s:
        book, red = s.get(Book, 2), s.get(Tag, 1)
        book.tags.append(red)
    assert _untagged(app) == [3]


@_RELATIONSHIP_JOINS
def test_m2m_anti_join_sees_a_core_insert_into_the_secondary_table(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    with make_app().Session.begin() as s:
        s.execute(insert(book_tag).values(book_id=3, tag_id=1))
    assert _untagged(app) == [2]


@_RELATIONSHIP_JOINS
def test_m2m_anti_join_sees_the_last_link_removed(app, make_app):
    _tag_first_book(app)
    assert _cached(app) == [2, 3]
    with make_app().Session.begin() as s:
        s.execute(delete(book_tag).where(book_tag.c.book_id == 1))
    assert _untagged(app) == [1, 2, 3]


@_RELATIONSHIP_JOINS
def test_relationship_join_keys_name_every_table_it_reads():
    assert "sq_book" in (read_keys(select(Author.id).join(Author.books)) or ["sq_book"])
    assert "sq_book_tag" in (read_keys(select(Book.id).join(Book.tags).where(Tag.name == "red")) or ["sq_book_tag"])
    assert "sq_book_tag" in (read_keys(select(Book.id).outerjoin(Book.tags).where(Tag.id.is_(None))) or ["sq_book_tag"])


@_RELATIONSHIP_JOINS
def test_inner_relationship_join_sees_a_first_related_row(app, make_app):
    with app.Session.begin() as s:
        s.add(Author(id=3, name="Carl"))
    stmt = select(Author.id).join(Author.books).distinct().order_by(Author.id).options(FromCache())

    def authors_with_books() -> list[int]:
        with app.Session() as s:
            return list(s.scalars(stmt).all())

    assert authors_with_books() == [1, 2]
    app.selects.clear()
    assert authors_with_books() == [1, 2]
    assert app.selects == [], "the read was not served from the cache"
    with make_app().Session.begin() as s:
        s.add(Book(id=4, title="C1", author_id=3, pages=1))
    assert authors_with_books() == [1, 2, 3]


@_RELATIONSHIP_JOINS
def test_inner_m2m_join_sees_a_core_insert_into_the_secondary_table(app, make_app):
    _tag_first_book(app)
    stmt = select(Book.id).join(Book.tags).where(Tag.name == "red").order_by(Book.id).options(FromCache())

    def red_books() -> list[int]:
        with app.Session() as s:
            return list(s.scalars(stmt).all())

    assert red_books() == [1]
    app.selects.clear()
    assert red_books() == [1]
    assert app.selects == [], "the read was not served from the cache"
    with make_app().Session.begin() as s:
        s.execute(insert(book_tag).values(book_id=3, tag_id=1))
    assert red_books() == [1, 3]


def test_long_json_parameters_do_not_share_a_query_key(app):
    app.handle.verifier.rate = 0  # the rows themselves must be right, not just reported

    def read(value: dict) -> list[Any]:
        stmt = select(Book.id, literal(value, JSON())).where(Book.id == 1).options(FromCache())
        with app.Session() as s:
            return [row[1] for row in s.execute(stmt)]

    a, b = {"k": "x" * 100 + "A"}, {"k": "x" * 100 + "B"}
    for _ in range(2):
        assert read(a) == [a]
        assert read(b) == [b]


def test_mysql_write_inside_an_executable_comment(app, make_app):
    """MySQL and MariaDB run the text of ``/*! ... */`` comments: a write there is a write."""
    from sqlalchemy import text

    from .test_writes import check

    if app.engine.dialect.name != "mysql":
        pytest.skip("executable comments are MySQL's and MariaDB's")

    def write(w: Any) -> None:
        with w.Session.begin() as s:
            s.execute(text("/*M!100100 UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1 */"))

    check(app, make_app(), write)
