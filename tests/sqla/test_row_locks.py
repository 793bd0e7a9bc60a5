"""The flush's read of the rows it changes never waits on a row lock plain SQLAlchemy would
not wait on, and a row it cannot lock at once costs its table keys, never a stale read.

SQLAlchemy calls ``before_update`` for every dirty object, also one without a net change
that it will not write. Reading such a row ``FOR NO KEY UPDATE`` waited for another
transaction's lock where SQLAlchemy alone waits for nothing: two sessions of one thread
(``test/orm/test_merge.py::MergeTest::test_option_state`` on PostgreSQL) hung for good.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select, text

from .models import Book


def _lock_wait_limit(session, dialect: str) -> None:
    """Make this session's lock waits fail after 3 seconds (a hang becomes an error)."""
    if dialect == "postgresql":
        session.execute(text("SET LOCAL lock_timeout = '3s'"))
    elif dialect == "mysql":
        session.execute(text("SET SESSION innodb_lock_wait_timeout = 3"))


def test_a_flush_without_net_change_does_not_wait_on_another_sessions_row_lock(app):
    dialect = app.engine.dialect.name
    holder = app.Session()
    # another session of the same thread holds the row's lock, as plain SQLAlchemy allows
    holder.execute(select(Book).where(Book.id == 1).with_for_update()).all()
    try:
        with app.Session() as s:
            _lock_wait_limit(s, dialect)
            book = s.get(Book, 1)
            book.title = book.title  # dirty, no net change: SQLAlchemy writes nothing
            assert book in s.dirty
            s.flush()  # waited for the holder's lock before (lock_timeout here)
            s.commit()
    finally:
        holder.rollback()
        holder.close()
    with app.Session() as s:
        assert s.get(Book, 1).title == "A1"


def test_a_row_another_transaction_holds_costs_its_table_keys(make_app, app, db):
    """The old-row read skips a locked row; the flush's UPDATE then waits for it, and the
    row's old values (the other transaction's commit) are never read: the table keys must
    invalidate what was cached from them before this flush commits."""
    dialect = app.engine.dialect.name
    if dialect == "sqlite":
        pytest.skip("SQLite has no row locks: one writer at a time")
    other = make_app()
    v1 = select(Book.id).where(Book.title == "v1").execution_options(cachedeps=True)
    updating, flushed, go = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    @event.listens_for(other.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE SQ_BOOK"):
            updating.set()

    holder = app.Session()
    holder.get(Book, 1).title = "v1"
    holder.flush()  # the row is locked until the holder commits

    def writer() -> None:
        try:
            with other.Session() as s:
                _lock_wait_limit(s, dialect)
                s.get(Book, 1).title = "v2"
                s.flush()  # old-row read skips the locked row; the UPDATE waits
                flushed.set()
                assert go.wait(30)
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            flushed.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert updating.wait(30), "the writer never reached its UPDATE"
        holder.commit()  # the writer's UPDATE goes on, over the holder's "v1"
        assert flushed.wait(30)
        # Between the two commits: "v1" is the committed title, and a read caches it.
        with app.Session() as s:
            assert s.scalars(v1).all() == [1]
    finally:
        go.set()
        thread.join(30)
        holder.close()
    assert not errors, errors
    for a in (app, other):
        with a.Session() as s:
            assert s.scalars(v1).all() == []
            assert s.get(Book, 1).title == "v2"


def test_rows_a_bulk_update_by_primary_key_reads_cannot_change_before_it_writes(make_app, app):
    """ORM bulk UPDATE by primary key reads the records' rows first: without a lock another
    transaction could commit a version between that read and the UPDATE, whose keys this
    write would then never emit (a read cached from that version stayed)."""
    from sqlalchemy import update

    dialect = app.engine.dialect.name
    other = make_app()
    # the books of 20 pages: the other writer's version of book 1 has 20 pages, neither the
    # version this write read first (10) nor the one it writes (30)
    p20 = select(Book.title).where(Book.pages == 20).execution_options(cachedeps=True)
    seen: list[str] = []

    @event.listens_for(app.engine, "before_cursor_execute")
    def _between(conn, cursor, statement, parameters, context, executemany):
        if seen or not statement.lstrip().upper().startswith("UPDATE SQ_BOOK"):
            return
        seen.append(statement)
        # another writer, between the read of the old rows and the UPDATE
        try:
            with other.Session() as s:
                _lock_wait_limit(s, dialect)
                s.get(Book, 1).pages = 20
                s.commit()
        except Exception as exc:  # noqa: BLE001 - the row is locked (or SQLite's database)
            seen.append(f"blocked: {exc}")
        with other.Session() as s:
            s.scalars(p20).all()  # cached from what is committed now

    with app.Session.begin() as s:
        s.execute(update(Book), [{"id": 1, "pages": 30}])
    assert seen
    for a in (app, other):
        with a.Session() as s:
            assert s.scalars(p20).all() == ["A2"]
            assert s.get(Book, 1).pages == 30
