"""Every write path invalidates what it changed: each test fails if its invalidation is missing.

The reader caches first; the writer is the same app or another one (another process: its
own Cache and delta maps over the same store and database), so both the local
``committed()`` path and the change feed poll are exercised.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from sqla_cachedeps import FromCache

from .models import Author, Book, Review, Tag, book_tag


def by_author(author_id):
    return select(Book).where(Book.author_id == author_id).order_by(Book.id).options(FromCache())


COUNT = select(func.count()).select_from(Book).execution_options(cachedeps=True)
TITLES = select(Book.title).order_by(Book.id).execution_options(cachedeps=True)


def snapshot(app):
    """Read through every cache path; return what was read."""
    with app.Session() as s:
        book1 = s.get(Book, 1)
        return {
            "get1": None if book1 is None else (book1.title, book1.author_id, book1.pages),
            "get99": None if s.get(Book, 99) is None else s.get(Book, 99).title,
            "a1": [b.id for b in s.scalars(by_author(1))],
            "a2": [b.id for b in s.scalars(by_author(2))],
            "count": s.scalar(COUNT),
            "titles": s.scalars(TITLES).all(),
        }


def truth(app):
    """What the database holds, read without the cache."""
    with app.Session() as s:
        s.connection(execution_options={"cachedeps": False})
        rows = s.execute(
            select(Book.id, Book.title, Book.author_id, Book.pages).order_by(Book.id),
            execution_options={"cachedeps": False},
        ).all()
    by_id = {r.id: r for r in rows}
    return {
        "get1": None if 1 not in by_id else (by_id[1].title, by_id[1].author_id, by_id[1].pages),
        "get99": None if 99 not in by_id else by_id[99].title,
        "a1": [r.id for r in rows if r.author_id == 1],
        "a2": [r.id for r in rows if r.author_id == 2],
        "count": len(rows),
        "titles": [r.title for r in rows],
    }


@pytest.fixture(params=["same", "other"])
def writer(request, app, make_app):
    return app if request.param == "same" else make_app()


def check(app, writer, write):
    before = snapshot(app)
    assert snapshot(app) == before  # served from the cache now
    app.selects.clear()
    snapshot(app)
    assert app.selects == []
    write(writer)
    after = snapshot(app)
    assert after != before, "the write changed nothing visible; the test proves nothing"
    assert after == truth(app)


def test_flush_update_moving_a_row_between_filters(app, writer):
    def write(w):
        with w.Session.begin() as s:
            book = s.get(Book, 1)
            book.author_id = 2
            book.title = "moved"
    check(app, writer, write)


def test_flush_insert(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.add(Book(id=99, title="new", author_id=1))
    check(app, writer, write)


def test_flush_delete(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.delete(s.get(Book, 1))
    check(app, writer, write)


def test_flush_primary_key_change(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.get(Book, 1).id = 99
    check(app, writer, write)


def test_one_to_many_collection_change_updates_the_child_row(app, writer):
    def write(w):
        with w.Session.begin() as s:
            bob = s.get(Author, 2)
            bob.books.append(s.get(Book, 1))
    check(app, writer, write)


def test_orm_update_and_delete_statements(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(update(Book).where(Book.pages < 15).values(author_id=2, title="u"))
            s.execute(delete(Book).where(Book.id == 3))
    check(app, writer, write)


def test_core_statements_on_a_plain_connection(app, writer):
    def write(w):
        with w.engine.begin() as conn:
            conn.execute(text("UPDATE sq_book SET author_id = 2, title = 'raw' WHERE id = 1"))
    check(app, writer, write)


def test_bulk_insert_statement_with_parameter_list(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(insert(Book), [{"id": 99, "title": "b99", "author_id": 1},
                                     {"id": 100, "title": "b100", "author_id": 2}])
    check(app, writer, write)


def test_bulk_save_objects_and_mappings(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.bulk_save_objects([Book(id=99, title="s99", author_id=1)])
            s.bulk_insert_mappings(Book, [{"id": 100, "title": "m100", "author_id": 2}])
            s.bulk_update_mappings(Book, [{"id": 1, "title": "bulk", "author_id": 2}])
    check(app, writer, write)


def test_many_to_many_association_rows(app, writer):
    stmt = (
        select(Book.id).join(book_tag).where(book_tag.c.tag_id == 1).options(FromCache())
    )
    with app.Session.begin() as s:
        s.add(Tag(id=1, name="t"))
    for _ in range(2):
        with app.Session() as s:
            assert s.scalars(stmt).all() == []
    with writer.Session.begin() as s:
        book = s.get(Book, 2)
        book.tags.append(s.get(Tag, 1))
    with app.Session() as s:
        assert s.scalars(stmt).all() == [2]


def test_savepoint_rollback_keeps_the_outer_invalidation(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.get(Book, 1).title = "outer"
            s.flush()
            nested = s.begin_nested()
            s.get(Book, 2).author_id = 2
            s.flush()
            nested.rollback()
            released = s.begin_nested()
            s.get(Book, 3).pages = 31
            released.commit()
    check(app, writer, write)
    with app.Session() as s:
        assert s.get(Book, 2).author_id == 1
        assert s.get(Book, 3).pages == 31


def test_rolled_back_transaction_invalidates_nothing_it_did_not_change(app, writer):
    snapshot(app)
    with writer.Session() as s:
        s.get(Book, 1).title = "never"
        s.flush()
        s.rollback()
    app.selects.clear()
    assert snapshot(app) == truth(app)


def test_rows_the_database_deletes_by_cascade(app, writer):
    stmt = select(Review.id).where(Review.book_id.in_([1, 3])).order_by(Review.id).options(FromCache())
    with app.Session.begin() as s:
        s.add_all([Review(id=1, book_id=1, stars=5), Review(id=2, book_id=3, stars=4)])
    for _ in range(2):
        with app.Session() as s:
            assert s.scalars(stmt).all() == [1, 2]
    with writer.Session.begin() as s:
        s.delete(s.get(Book, 1))  # flush path
    with app.Session() as s:
        assert s.scalars(stmt).all() == [2]
    with writer.Session.begin() as s:
        s.execute(delete(book_tag))
        s.execute(delete(Book).where(Book.id == 3))  # statement path
    with app.Session() as s:
        assert s.scalars(stmt).all() == []


def test_update_statement_invalidates_only_the_rows_it_matched(app, writer):
    with app.Session() as s:
        s.scalars(by_author(1)).all()
        s.scalars(by_author(2)).all()
    with writer.Session.begin() as s:
        s.execute(update(Book).where(Book.pages > 25).values(title="long"))  # only book 3 (author 2)
    app.selects.clear()
    with app.Session() as s:
        assert [b.title for b in s.scalars(by_author(1))] == ["A1", "A2"]
        assert app.selects == []  # author 1's books were not touched: still cached
        assert [b.title for b in s.scalars(by_author(2))] == ["long"]
    assert len(app.selects) == 1


def test_raw_sql_through_the_session_and_reading_it_back(app, writer):
    def write(w):
        with w.Session.begin() as s:
            s.execute(text("UPDATE sq_book SET author_id = 2 WHERE id = 2"))
            # The transaction has written: its reads bypass the cache and see the write.
            assert [b.id for b in s.scalars(by_author(2))] == [2, 3]
    check(app, writer, write)


def test_core_write_outside_a_session_is_seen_by_an_open_session(app):
    """A Core write on a watched engine, outside any Session, reaches this process's cache
    when it commits (as a session's does), not only at the next poll: a session already
    open reads the row the write committed."""
    stmt = select(Book.title).where(Book.id == 1).options(FromCache())
    with app.Session() as s:
        assert s.scalars(stmt).all() == ["A1"]
    with app.Session() as s:
        assert s.scalars(stmt).all() == ["A1"]  # a hit: the session polled before the write
        with app.engine.begin() as conn:
            conn.execute(update(Book).where(Book.id == 1).values(title="core"))
        if app.engine.dialect.name == "mysql":
            # REPEATABLE READ (MySQL's default): the open transaction's snapshot predates the
            # write, and the database itself still answers "A1" in it; so must the cache.
            assert s.scalars(select(Book.title).where(Book.id == 1)).all() == ["A1"]
            assert s.scalars(stmt).all() == ["A1"]
            s.rollback()
        assert s.scalars(stmt).all() == ["core"]
