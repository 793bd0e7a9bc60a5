"""Writes cachedeps cannot key row by row fall back to table keys; they never fail the user's
statement (issue 9, found by SQLAlchemy's own test/orm run through the adapter)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, ForeignKey, Integer, String, Table, event, select
from sqlalchemy.orm import registry


@pytest.fixture
def no_pk(engine, make_app):
    # An association table without a primary key, mapped with one
    # (test_association.py::AssociationTest).
    reg = registry()
    tags = Table("fb_tag_link", reg.metadata,
                 Column("book_id", Integer, nullable=False),
                 Column("tag_id", Integer, nullable=False),
                 Column("note", String(40)))

    class Link:
        def __init__(self, book_id, tag_id, note):
            self.book_id, self.tag_id, self.note = book_id, tag_id, note

    reg.map_imperatively(Link, tags, primary_key=[tags.c.book_id, tags.c.tag_id])
    reg.metadata.create_all(engine)
    app = make_app()
    yield app, Link
    reg.metadata.drop_all(engine)
    reg.dispose()


def test_flush_to_a_table_without_a_primary_key_emits_table_keys(no_pk):
    app, Link = no_pk
    read = select(Link.tag_id, Link.note).order_by(Link.tag_id).execution_options(cachedeps=True)

    def rows():
        with app.Session() as s:
            return [tuple(r) for r in s.execute(read)]

    assert rows() == []
    with app.Session.begin() as s:  # insert
        s.add_all([Link(1, 1, "a"), Link(1, 2, "b")])
    assert rows() == [(1, "a"), (2, "b")]
    assert rows() == [(1, "a"), (2, "b")]  # served from the cache
    with app.Session.begin() as s:  # update
        s.get(Link, (1, 2)).note = "c"
    assert rows() == [(1, "a"), (2, "c")]
    with app.Session.begin() as s:  # delete
        s.delete(s.get(Link, (1, 1)))
    assert rows() == [(2, "c")]


@pytest.mark.filterwarnings("ignore:The `objects` parameter:DeprecationWarning")
def test_flush_when_another_sqlite_connection_holds_the_write_lock(make_app, app, db):
    # test_cascade.py::PartialFlushTest: a partial flush that writes nothing must not fail
    # because cachedeps could not begin SQLite's write transaction early.
    url, _ = db
    if not url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock")
    import sqlite3

    from .models import Book
    other = sqlite3.connect(url.split("///", 1)[1], timeout=0.1)
    busy = make_app()
    busy.engine.dispose()
    busy.engine.pool._creator = lambda: sqlite3.connect(url.split("///", 1)[1], timeout=0.1)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with busy.Session() as s:
            clean = s.get(Book, 1)
            s.get(Book, 2).title = "changed"  # dirty, not part of the partial flush
            s.flush([clean])  # writes nothing
            s.rollback()
    finally:
        other.rollback()
        other.close()
    with busy.Session.begin() as s:  # once the lock is free, writes are keyed as usual
        s.get(Book, 2).title = "after"
    with busy.Session() as s:
        assert s.scalar(select(Book.title).where(Book.id == 2).execution_options(cachedeps=True)) == "after"


def test_rollback_of_an_invalidated_connection(app):
    # A disconnect mid-transaction invalidates the connection; the rollback that follows
    # must reach the user as SQLAlchemy's own, not fail in cachedeps's bookkeeping.
    from .models import Book
    with app.Session() as s:
        s.get(Book, 1).title = "lost"
        s.flush()
        s.connection().invalidate()
        s.rollback()
    with app.Session() as s:
        assert s.scalar(select(Book.title).where(Book.id == 1).execution_options(cachedeps=True)) == "A1"
