"""Tables mapped over database views (issue 9, break 18; deliverable 8).

A write to a view's base table never emits the view's keys. Views are found in the
database; an undeclared one is not cached, a declared one (``install(views=...)``) depends
on its base tables' table keys.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cachedeps.errors import ConfigurationError
from sqla_cachedeps import FromCache

from .models import Author, Book


class _ViewBase(DeclarativeBase):
    pass


class BookCard(_ViewBase):
    __tablename__ = "sq_book_card"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String)
    author_name: Mapped[str] = mapped_column(String)


@pytest.fixture
def view(engine):
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE VIEW sq_book_card AS SELECT sq_book.id AS id, sq_book.title AS title, "
            "sq_author.name AS author_name FROM sq_book JOIN sq_author ON sq_author.id = sq_book.author_id"
        ))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW sq_book_card"))


def _seed(app):
    with app.Session.begin() as s:
        ann = Author(id=1, name="Ann")
        s.add_all([ann, Book(id=1, title="A1", author=ann, pages=10), Book(id=2, title="A2", author=ann, pages=20)])
    with app.Session() as s:
        s.connection()  # poll past the writes above


def _titles(app):
    stmt = select(BookCard.title).where(BookCard.author_name == "Ann").order_by(BookCard.id).options(FromCache())
    with app.Session() as s:
        return list(s.scalars(stmt))


def _events(app):
    events = []
    app.cache.add_listener(lambda event, key, **detail: events.append(event))
    return events


@pytest.mark.parametrize("declared", [False, True])
def test_a_view_follows_writes_to_its_base_tables(view, make_app, declared):
    app = make_app(views={"sq_book_card": ["sq_book", "sq_author"]} if declared else None)
    _seed(app)
    events = _events(app)
    assert _titles(app) == ["A1", "A2"]
    assert _titles(app) == ["A1", "A2"]
    with app.Session() as s:
        assert s.get(BookCard, 1).title == "A1"
    with app.Session() as s:
        assert s.get(BookCard, 1).title == "A1"
    assert ("hit" in events) == declared  # cached only when declared (and never by oid)
    with app.Session.begin() as s:
        s.get(Book, 1).title = "Z1"
    assert _titles(app) == ["Z1", "A2"]
    with app.Session() as s:
        assert s.get(BookCard, 1).title == "Z1"
    with app.Session.begin() as s:
        s.get(Author, 1).name = "Anne"
    assert _titles(app) == []


def test_bad_views_are_rejected(make_app):
    with pytest.raises(ConfigurationError, match="views"):
        make_app(views={"v": "base"})
