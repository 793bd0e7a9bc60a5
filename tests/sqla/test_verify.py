"""Verify mode (``install(..., verify=True)``): every hit is checked against the database.

A stale entry is made by writing with the DB-API connection (no event sees it): the next hit
raises ``StaleRead``; hits that agree pass, whatever order an unordered query returns.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from cachedeps.errors import StaleRead
from sqla_cachedeps import FromCache

from .models import Author, Book


def _untracked(app, sql: str) -> None:
    raw = app.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(sql)
        raw.commit()
    finally:
        raw.close()


def test_a_stale_query_hit_raises_stale_read(app):
    stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]
    with app.Session() as s:
        assert [b.title for b in s.scalars(stmt)] == ["A1", "A2"]  # a verified hit
    _untracked(app, "UPDATE sq_book SET title = 'X' WHERE id = 2")
    with app.Session() as s, pytest.raises(StaleRead) as info:
        s.scalars(stmt).all()
    assert "sq_book" in info.value.query and info.value.deps and info.value.stamp is not None
    assert "'X'" in str(info.value)


def test_a_stale_state_hit_raises_stale_read(app):
    with app.Session() as s:
        assert s.get(Author, 2).name == "Bob"
    with app.Session() as s:
        assert s.get(Author, 2).name == "Bob"
    _untracked(app, "UPDATE sq_author SET name = 'Rob' WHERE id = 2")
    with app.Session() as s, pytest.raises(StaleRead) as info:
        s.get(Author, 2)
    assert info.value.deps[0] == "sq_author:2"


def test_an_unordered_query_may_come_back_in_any_order(app):
    stmt = select(Book.title).where(Book.pages > 5).options(FromCache())
    with app.Session() as s:
        first = s.scalars(stmt).all()
    _untracked(app, "UPDATE sq_book SET pages = pages")  # no change
    with app.Session() as s:
        assert sorted(s.scalars(stmt).all()) == sorted(first)


def test_a_fraction_logs(make_app, caplog):
    app = make_app(verify=1.0)
    with app.Session.begin() as s:
        s.add(Author(id=5, name="Eve"))
    with app.Session() as s:
        s.get(Author, 5)
    _untracked(app, "UPDATE sq_author SET name = 'Ivy' WHERE id = 5")
    with caplog.at_level(logging.ERROR, logger="cachedeps.verify"), app.Session() as s:
        assert s.get(Author, 5).name == "Eve"
    assert any("stale cache hit" in r.getMessage() for r in caplog.records)


def test_bad_verify_value_is_rejected(make_app):
    from cachedeps.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="verify"):
        make_app(verify="always")


def test_binary_parameters_do_not_share_a_query_key(app):
    """``repr(memoryview)`` is an address: two queries got one key (issue 9, break 17)."""
    from sqlalchemy import LargeBinary, literal

    app.handle.verifier.rate = 0  # the rows themselves must be right, not just reported
    def read(value: bytes):
        stmt = select(Book.id, literal(memoryview(value), LargeBinary())).where(Book.id == 1).options(FromCache())
        with app.Session() as s:
            return [bytes(row[1]) for row in s.execute(stmt)]

    for _ in range(2):
        assert read(b"one") == [b"one"]
        assert read(b"two") == [b"two"]


def test_statements_with_one_sql_text_but_other_results_do_not_share_a_key(app):
    """``select(Book)`` and ``select(Book.__table__)`` compile alike: entities vs plain rows."""
    from sqlalchemy.orm import Bundle

    statements = [
        select(Book.__table__).where(Book.id == 1),
        select(Book).where(Book.id == 1),
        select(Bundle("b", *Book.__table__.c)).where(Book.id == 1),
    ]
    for _ in range(2):
        for stmt in statements:
            with app.Session() as s:
                row = s.execute(stmt.options(FromCache())).one()
                if stmt is statements[1]:
                    assert isinstance(row[0], Book) and row[0].title == "A1"
                elif stmt is statements[2]:
                    assert row[0].title == "A1"
                else:
                    assert row.title == "A1"


def test_a_stale_caching_session_get_raises_stale_read(make_app):
    from sqla_cachedeps import CachingSession

    app = make_app(session_class=CachingSession)
    with app.Session.begin() as s:
        s.add(Author(id=7, name="Gus"))
    for _ in range(2):
        with app.Session() as s:
            assert s.get(Author, 7).name == "Gus"
    _untracked(app, "UPDATE sq_author SET name = 'Gil' WHERE id = 7")
    with app.Session() as s, pytest.raises(StaleRead):
        s.get(Author, 7)
