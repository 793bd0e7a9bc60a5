"""A session on an AUTOCOMMIT engine (issue 9, break 12): its keys still reach the feed
under the feed's lock, in a transaction of their own, so tids commit in order."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

import cachedeps
import sqla_cachedeps
from cachedeps.feed import ADVISORY_LOCK_ID
from sqla_cachedeps.feed import feed_for_dialect

from .models import Author


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
