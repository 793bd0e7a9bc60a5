"""Writers without a transaction-long feed lock (issue 9, breaks 12 and 20): a session on an
AUTOCOMMIT engine still appends under the feed's lock, in a transaction of its own, so tids
commit in order; and a flush's old values are those its UPDATE replaced."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

import cachedeps
import sqla_cachedeps
from cachedeps.feed import ADVISORY_LOCK_ID
from sqla_cachedeps.feed import feed_for_dialect

from .models import Author, Book


def test_autocommit_session_appends_under_the_feed_lock_until_its_rows_commit(db, engine, store, postgres_dsn):
    import psycopg

    url, connect_args = db
    if not url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers itself")
    eng = create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    Session = sessionmaker(eng)
    cache = cachedeps.Cache(store, feed=feed_for_dialect(eng.dialect), namespace=f"ac{os.getpid()}:")
    handle = sqla_cachedeps.install(Session, cache)
    probes: list[bool] = []
    take = cache.feed.lock

    def lock_and_probe(conn):  # observe only: can another writer take the lock right now?
        take(conn)
        with psycopg.connect(postgres_dsn, autocommit=True) as other:
            got = other.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_ID,)).fetchone()[0]
            if got:
                other.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
        probes.append(got)

    cache.feed.lock = lock_and_probe
    try:
        with Session() as s:
            assert s.scalars(select(Author).where(Author.id == 7)).first() is None
            s.add(Author(id=7, name="Ann"))
            s.commit()
        assert probes == [False]  # held from the INSERT of the feed rows through their COMMIT
        with Session() as s:
            assert s.get(Author, 7).name == "Ann"
            s.get(Author, 7).name = "Bob"
            s.commit()
        with Session() as s:
            assert s.get(Author, 7).name == "Bob"
    finally:
        handle.uninstall()
        eng.dispose()


def test_second_writers_old_values_are_read_after_the_first_commits(app):
    """Without a transaction-long feed lock, a flush's old values are read FOR NO KEY UPDATE
    (FOR UPDATE on MySQL): a second writer waiting on the row reads the first writer's
    committed value."""
    import threading
    import time

    from sqlalchemy import func

    if app.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers itself")
    # MySQL/MariaDB (FOR UPDATE): text is keyed by the table there (_ci collations), so the
    # value key that would go stale is an integer column's.
    column, first_value, second_value = (
        (Book.pages, 555, 777) if app.engine.dialect.name == "mysql" else (Book.title, "Blue", "Green"))
    blue = select(func.count()).select_from(Book).where(column == first_value).execution_options(cachedeps=True)
    first_updated, first_commit = threading.Event(), threading.Event()
    second_updated, second_commit = threading.Event(), threading.Event()

    def first():
        with app.Session() as s:
            setattr(s.get(Book, 1), column.key, first_value)
            s.flush()
            first_updated.set()
            first_commit.wait(10)
            s.commit()

    def second():
        with app.Session() as s:
            book = s.get(Book, 1, populate_existing=True)
            setattr(book, column.key, second_value)
            s.flush()  # its old-values read waits for the first writer
            second_updated.set()
            second_commit.wait(10)
            s.commit()

    t1 = threading.Thread(target=first)
    t1.start()
    assert first_updated.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    try:
        time.sleep(0.3)
        first_commit.set()
        assert second_updated.wait(10)
        for _ in range(2):
            with app.Session() as s:
                assert s.execute(blue).scalar() == 1
        second_commit.set()
    finally:
        first_commit.set()
        second_commit.set()
        t1.join(30)
        t2.join(30)
    with app.Session() as s:
        assert s.execute(blue).scalar() == 0



@pytest.mark.parametrize("how", ["session-statement", "session-flush", "core"])
def test_autocommit_writes_without_commit_still_invalidate(db, engine, store, how):
    """On an AUTOCOMMIT engine every statement commits by itself: a write whose connection
    or session is closed without ``commit()`` has changed the data all the same."""
    from sqlalchemy import text, update

    url, connect_args = db
    eng = create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    Session = sessionmaker(eng)
    cache = cachedeps.Cache(store, feed=feed_for_dialect(eng.dialect), namespace=f"acw{os.getpid()}{how}:")
    handle = sqla_cachedeps.install(Session, cache, verify=False)
    try:
        with Session() as s:
            ann = Author(id=1, name="Ann")
            s.add_all([ann, Book(id=1, title="A1", author=ann, pages=10)])
            s.commit()

        def read():
            with Session() as s:
                stmt = select(Book.title).where(Book.id == 1).options(sqla_cachedeps.FromCache())
                return s.scalars(stmt).all()

        assert read() == ["A1"] and read() == ["A1"]
        if how == "core":
            with eng.connect() as conn:
                conn.execute(text("UPDATE sq_book SET title = 'Z1' WHERE id = 1"))
        else:
            s = Session()
            if how == "session-statement":
                s.execute(update(Book).where(Book.id == 1).values(title="Z1"))
            else:
                s.get(Book, 1).title = "Z1"
                s.flush()
            s.close()  # no commit: AUTOCOMMIT committed the statement already
        assert read() == ["Z1"]
    finally:
        handle.uninstall()
        eng.dispose()
