"""Results of joined eager loads against collections must be uniqued (SQLAlchemy raises
otherwise) by their callers, who read the loading context to know it: the user's ``FromCache``
query and the statement a ``selectinload`` runs (nested with a joined collection load) are
served as the ORM made them, never frozen or cached (freezing one failed the load; a frozen
copy lost the context)."""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import Integer, select, type_coerce
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import InvalidRequestError, SADeprecationWarning
from sqlalchemy.orm import contains_eager, joinedload, selectinload
from sqlalchemy.types import NullType, TypeDecorator

from sqla_cachedeps import FromCache

from .models import Author, Book, Tag


def _tagged(app) -> None:
    with app.Session.begin() as s:
        t1, t2 = Tag(id=1, name="x"), Tag(id=2, name="y")
        s.add_all([t1, t2])
        for book in s.scalars(select(Book)):
            book.tags = [t1, t2]


def test_a_cached_query_with_a_joined_collection(app):
    _tagged(app)
    for _ in range(2):  # a miss, then a hit
        with app.Session() as s:
            authors = s.scalars(
                select(Author).options(joinedload(Author.books), FromCache()).order_by(Author.id)
            ).unique().all()
            assert [(a.name, [b.title for b in a.books]) for a in authors] == [("Ann", ["A1", "A2"]), ("Bob", ["B1"])]


def test_a_cached_selectin_load_with_a_nested_joined_collection(make_app, app):
    _tagged(app)
    lazy = make_app(lazy_loads=True)
    for _ in range(2):
        with lazy.Session() as s:
            authors = s.scalars(
                select(Author).options(selectinload(Author.books).joinedload(Book.tags)).order_by(Author.id)
            ).all()
            books = [(b.title, [t.name for t in b.tags]) for a in authors for b in a.books]
            assert books == [("A1", ["x", "y"]), ("A2", ["x", "y"]), ("B1", ["x", "y"])]


class _ListOfInt(TypeDecorator):
    """A type whose values are lists (unhashable), declared so (``hashable = False``)."""

    impl = Integer
    hashable = False
    cache_ok = True

    def process_result_value(self, value, dialect):
        return [value]


class _ListOfIntUndeclared(_ListOfInt):
    """The same values; the type claims nothing (``_isnull``: SQLAlchemy must try them)."""

    hashable = True
    _isnull = True
    cache_ok = True


def _outcome(run):
    try:
        return "rows", run()
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception itself
        return type(exc), str(exc)


@pytest.mark.parametrize("style", ["unhashable", "unknown_unhashable", "unknown_hashable"])
@pytest.mark.parametrize("legacy", [False, True], ids=["select", "query"])
def test_a_hit_uniques_columns_of_unhashable_types_as_sqlalchemy_does(app, style, legacy):
    """SQLAlchemy uniques the rows of an ORM result per column by the column's type: a type of
    unhashable values raises its own InvalidRequestError on ``unique()``, or (the legacy
    Query, which uniques every result) tells them apart by identity; a hit (a result rebuilt
    from the cache) hashed them and raised TypeError."""
    if style == "unknown_hashable":
        expression = type_coerce("same", NullType)
    else:
        cls = _ListOfInt if style == "unhashable" else _ListOfIntUndeclared
        expression = type_coerce(Book.pages, cls)
    outcomes = []
    for _ in range(2):  # the database's result, then the cache's
        with app.Session() as s:
            if legacy:
                q = s.query(Author, expression.label("foo")).join(Author.books).order_by(Author.id, Book.id)
                run = q.execution_options(cachedeps=True).all
            else:
                stmt = (select(Author, expression.label("foo")).join(Author.books).order_by(Author.id, Book.id)
                        .execution_options(cachedeps=True))
                run = lambda: s.execute(stmt).unique().all()  # noqa: E731
            kind, value = _outcome(run)
            if kind == "rows":
                value = [(a.name, v) for a, v in value]
            outcomes.append((kind, value))
    assert outcomes[1] == outcomes[0]
    assert app.cache.stats()["hits"] >= 1
    expected = {
        ("unhashable", True): ("rows", [("Ann", [10]), ("Ann", [20]), ("Bob", [30])]),
        ("unknown_unhashable", True): ("rows", [("Ann", [10]), ("Ann", [20]), ("Bob", [30])]),
        ("unknown_hashable", True): ("rows", [("Ann", "same"), ("Bob", "same")]),
        ("unknown_hashable", False): ("rows", [("Ann", "same"), ("Bob", "same")]),
    }.get((style, legacy))
    if expected is None:
        assert outcomes[0][0] is InvalidRequestError
        assert "Can't apply uniqueness to row tuple containing value of type" in outcomes[0][1]
    else:
        assert outcomes[0] == expected


def test_a_select_of_tables_alone_is_served_as_the_cursor_result_sqlalchemy_returns(app):
    """A select of tables alone (no ORM entity) runs as Core: SQLAlchemy returns the cursor's
    own CursorResult, whose execution context the deprecated ``Query.instances()`` reads to
    load entities from its rows. A cached copy (a plain result of the rows, on a miss as on a
    hit) failed there (AttributeError on its missing context): such reads are not cached."""
    authors, books = Author.__table__, Book.__table__
    stmt = (authors.outerjoin(books).select().order_by(authors.c.id, books.c.id)
            .execution_options(cachedeps=True))
    for _ in range(2):
        with app.Session() as s:
            result = s.execute(stmt)
            assert isinstance(result, CursorResult)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SADeprecationWarning)
                loaded = list(s.query(Author).options(contains_eager(Author.books)).instances(result))
            assert [(a.name, [b.title for b in a.books]) for a in loaded] == [("Ann", ["A1", "A2"]), ("Bob", ["B1"])]
