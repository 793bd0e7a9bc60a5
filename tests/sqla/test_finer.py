"""SQLAlchemy reads of one table depend on change keys and their rows' oids (sqla_cachedeps.finer).

A write to a column the read neither filters nor orders on, of a row it did not return,
keeps it cached; every write that changes it reaches it. The property test at the end
drives random reads of the recognised shapes and random writes on SQLite.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update

from sqlalchemy.orm import sessionmaker

from sqla_cachedeps import FromCache
from sqla_cachedeps.finer import finer_read
from sqla_cachedeps.spelling import default_dialect

from .models import Author, Book


def _read(app: Any, stmt: Any, scalars: bool = True, fresh: bool = False) -> list[Any]:
    factory = sessionmaker(app.engine) if fresh else app.Session  # a session without cachedeps
    with factory() as s:
        result = s.execute(stmt if fresh else stmt.options(FromCache()))
        if scalars:
            return [(b.id, b.title, b.pages, b.author_id) if isinstance(b, Book) else b
                    for b in result.scalars().all()]
        return [tuple(r) for r in result.all()]


def _fresh(app: Any, stmt: Any, scalars: bool = True) -> list[Any]:
    return _read(app, stmt, scalars, fresh=True)


def _hit(app: Any, stmt: Any, scalars: bool = True) -> list[Any]:
    app.selects.clear()
    out = _read(app, stmt, scalars)
    assert app.selects == [], "the read was not served from the cache"
    return out


def test_recognised_shapes():
    d = default_dialect()
    fine = finer_read(select(Book).where(Book.author_id == 1).order_by(Book.id), {}, d)
    assert fine is not None and set(fine.deps) == {"sq_book.author_id=1/author_id", "sq_book.author_id=1/id",
                                                   "sq_book.author_id=1/*"}
    fine = finer_read(select(Book.id).order_by(Book.pages.desc(), Book.id).limit(2), {}, d)
    assert fine is not None and set(fine.deps) == {"sq_book/pages", "sq_book/id", "sq_book/*"}
    for stmt in (
        select(Book).join(Author),
        select(Book).outerjoin(Author),
        select(Book.title).where(Book.author_id == 1),  # no primary key in the rows
        select(Book).where(Book.pages > func.abs(1)),
        select(Book).where(Book.author_id.in_(select(Author.id))),
        select(Book).order_by(func.random()),
        select(Book).distinct(),
        select(Book).group_by(Book.id),
        select(func.count()).select_from(Book),
        select(Book).with_for_update(),
    ):
        assert finer_read(stmt, {}, d) is None, stmt


def test_an_anchored_read_survives_writes_it_cannot_see(app):
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id)
    assert _read(app, stmt) == [(1, "A1", 10, 1), (2, "A2", 20, 1)]
    with app.Session.begin() as s:
        s.get(Book, 3).title = "other"  # another author's row
    assert _hit(app, stmt) == [(1, "A1", 10, 1), (2, "A2", 20, 1)]
    with app.Session.begin() as s:
        s.get(Book, 2).title = "renamed"  # a row of the result
    assert _read(app, stmt) == _fresh(app, stmt) == [(1, "A1", 10, 1), (2, "renamed", 20, 1)]
    with app.Session.begin() as s:
        s.get(Book, 3).author_id = 1  # enters the result
    assert _read(app, stmt) == _fresh(app, stmt) == [
        (1, "A1", 10, 1), (2, "renamed", 20, 1), (3, "other", 30, 1)]


def test_a_page_without_anchor_moves_with_its_order_column(app):
    stmt = select(Book.id, Book.title).order_by(Book.pages.desc(), Book.id).limit(1)
    assert _read(app, stmt, scalars=False) == [(3, "B1")]
    with app.Session.begin() as s:
        s.get(Book, 1).title = "x"  # not on the page, not in the order
    assert _hit(app, stmt, scalars=False) == [(3, "B1")]
    with app.Session.begin() as s:
        s.execute(update(Book).where(Book.id == 1).values(pages=99))
    assert _read(app, stmt, scalars=False) == _fresh(app, stmt, scalars=False) == [(1, "x")]


COLUMNS = ("author_id", "pages", "title")
VALUES = {"author_id": st.sampled_from([1, 2, None]), "pages": st.integers(0, 3), "title": st.sampled_from(["a", "b"])}


@st.composite
def reads(draw: Any) -> tuple[str, Any]:
    anchor = draw(st.one_of(st.none(), st.sampled_from(COLUMNS).flatmap(lambda c: st.tuples(st.just(c), VALUES[c]))))
    order = draw(st.sampled_from(["id", "pages", "title", "-pages", None]))
    limit = draw(st.one_of(st.none(), st.integers(1, 3)))
    offset = draw(st.one_of(st.none(), st.integers(0, 2)))
    entity = draw(st.booleans())
    return (anchor, order, limit, offset, entity)


def _statement(spec: Any) -> Any:
    anchor, order, limit, offset, entity = spec
    stmt = select(Book) if entity else select(Book.id, Book.pages)
    if anchor is not None:
        column, value = anchor
        attr = getattr(Book, column)
        stmt = stmt.where(attr.is_(None) if value is None else attr == value)
    if order is not None:
        attr = getattr(Book, order.lstrip("-"))
        stmt = stmt.order_by(attr.desc() if order.startswith("-") else attr)
        if order != "id":
            stmt = stmt.order_by(Book.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset is not None:
        stmt = stmt.offset(offset)
    return stmt


@st.composite
def writes(draw: Any) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["flush_update", "insert", "delete", "orm_update", "core_update"]))
    column = draw(st.sampled_from(COLUMNS))
    return (kind, draw(st.integers(1, 6)), column, draw(VALUES[column]))


def _write(app: Any, spec: Any, next_id: list[int]) -> None:
    kind, pk, column, value = spec
    with app.Session.begin() as s:
        if kind == "flush_update":
            book = s.get(Book, pk)
            if book is not None:
                setattr(book, column, value)
        elif kind == "insert":
            next_id[0] += 1
            fields = {"author_id": 1, "pages": 1, "title": "a", column: value}
            s.add(Book(id=next_id[0], **fields))
        elif kind == "delete":
            book = s.get(Book, pk)
            if book is not None:
                s.delete(book)
        elif kind == "orm_update":
            s.execute(update(Book).where(Book.id == pk).values({column: value}))
        else:
            with app.engine.begin() as conn:
                conn.execute(update(Book.__table__).where(Book.__table__.c.id == pk).values({column: value}))


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("store", ["embedded"], indirect=True)
@settings(max_examples=60, derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.lists(reads(), min_size=1, max_size=6), writes()), min_size=1, max_size=4))
def test_random_writes_never_leave_a_finer_read_stale(make_app, steps):
    app = make_app()
    with app.Session.begin() as s:
        s.execute(delete(Book))
        s.execute(delete(Author))
        s.add_all([Author(id=1, name="Ann"), Author(id=2, name="Bob")])
        s.flush()
        s.execute(insert(Book), [
            {"id": 1, "author_id": 1, "title": "a", "pages": 1},
            {"id": 2, "author_id": 1, "title": "b", "pages": 2},
            {"id": 3, "author_id": 2, "title": "a", "pages": 2},
            {"id": 4, "author_id": None, "title": "b", "pages": 0},
        ])
    next_id = [10]
    for read_specs, write in steps:
        stmts = [_statement(spec) for spec in read_specs]
        for stmt in stmts:
            assert _read(app, stmt) == _fresh(app, stmt)
            _read(app, stmt)
        _write(app, write, next_id)
        for stmt in stmts:
            assert _read(app, stmt) == _fresh(app, stmt), f"stale after {write}: {stmt}"
    app.close()
