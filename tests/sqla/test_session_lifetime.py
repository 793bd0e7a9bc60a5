"""cachedeps keeps no user session or connection alive (issue 9, found by SQLAlchemy's own
test/orm run through the adapter: test_cascade.py::PartialFlushTest::test_o2m_m2o and
test_session.py::WeakIdentityMapTest, which drop sessions without closing them)."""

from __future__ import annotations

import gc
import weakref

from sqlalchemy import select

from sqla_cachedeps import FromCache

from .models import Author, Book


def test_a_session_dropped_after_writing_releases_its_connection(app):
    # The bookkeeping kept on the pooled connection referenced the session, which held the
    # Connection: the pool never got it back, and on SQLite its write lock stayed taken.
    s = app.Session()
    s.add(Author(id=10, name="Cy"))
    s.flush()
    assert app.engine.pool.checkedout() == 1
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None
    assert app.engine.pool.checkedout() == 0
    with app.Session.begin() as s2:  # the dropped transaction rolled back; writers proceed
        s2.add(Author(id=11, name="Di"))
    with app.Session() as s3:
        assert s3.get(Author, 10) is None
        assert s3.get(Author, 11).name == "Di"


def test_a_session_dropped_after_reading_from_the_cache_is_freed(app):
    # Objects of a dropped session can join another one (test_session.py::
    # NoCyclesOnTransientDetachedTest): nothing may keep the first session alive.
    for _ in range(2):
        s = app.Session()
        books = s.scalars(select(Book).where(Book.author_id == 1).options(FromCache())).all()
        ref = weakref.ref(s)
        del s
        gc.collect()
        assert ref() is None
        with app.Session() as other:
            other.add(books[0])  # not "already attached to session"
            assert books[0].title == "A1"
    assert app.cache.stats()["hits"] >= 1
    assert app.engine.pool.checkedout() == 0
