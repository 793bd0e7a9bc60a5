"""The cache resolves a statement's bind as SQLAlchemy does, and leaves alone what it cannot
serve as the caller asked.

- ``get_bind()`` gets the statement's own bind arguments (``clause`` and ``mapper``): a
  session that routes by statement (writes to a leader, reads to followers, SQLAlchemy's
  "custom vertical partitioning") has the feed polled, a hit verified and a write's old rows
  read on the connection the statement runs on. Asking with the mapper alone began the
  transaction, and read an ``update()``'s old rows, on another connection.
- Streamed reads (``yield_per``, ``stream_results``) run uncached: a frozen result is not a
  stream (``unique()`` is refused on one, ``close()`` closes its cursor).
- A bind value SQLAlchemy computes at execution (a comparison with a transient object) that
  cannot be had leaves the read uncached: SQLAlchemy raises its own ``StatementError``.
- A miss in a session with nothing in its identity map runs as the caller made it: later
  ``do_orm_execute`` listeners see the caller's options, not ``populate_existing``.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import create_engine, event, select, update
from sqlalchemy.exc import InvalidRequestError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Delete, Update

import cachedeps
import sqla_cachedeps
from sqla_cachedeps import FromCache
from sqla_cachedeps.feed import feed_for_dialect

from .models import Author, Book


class _Recording(Session):
    """Records the arguments of every ``get_bind()`` call."""

    calls: list[dict] = []

    def get_bind(self, mapper=None, **kw):
        type(self).calls.append(dict(kw, mapper=mapper))
        return super().get_bind(mapper=mapper, **kw)


def test_every_bind_the_cache_resolves_is_the_statements_own(make_app, app):
    rec = make_app(session_class=_Recording, lazy_loads=True)
    _Recording.calls = []
    for _ in range(2):  # a miss, then a hit (verified)
        with rec.Session() as s:
            assert [b.title for b in s.scalars(select(Book).where(Book.author_id == 1).options(FromCache())
                                               .order_by(Book.id))] == ["A1", "A2"]
            book = s.get(Book, 3)
            assert book.author.name == "Bob"  # a many-to-one lazy load by primary key
            assert [b.title for b in book.author.books] == ["B1"]  # a cached lazy load
    with rec.Session() as s:
        s.execute(update(Book).where(Book.id == 3).values(title="B1b"))  # its old rows are read first
        s.commit()
    assert _Recording.calls
    assert [c for c in _Recording.calls if c.get("clause") is None] == []
    with app.Session() as s:
        assert s.get(Book, 3).title == "B1b"


class _Routing(Session):
    """Writes to the leader, reads to the follower (SQLAlchemy's documented routing session)."""

    engines: dict = {}

    def get_bind(self, mapper=None, clause=None, **kw):
        if self._flushing or isinstance(clause, (Update, Delete)):
            return self.engines["leader"]
        return self.engines["follower"]


def test_a_routing_session_reads_old_rows_and_polls_where_its_statements_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'routed.sqlite'}"
    # Two engines on one database (a leader and a follower of it); a short lock wait, so
    # work on the wrong connection fails at once instead of waiting on the other's lock.
    leader = create_engine(url, connect_args={"timeout": 0.2})
    follower = create_engine(url, connect_args={"timeout": 0.2})
    Book.metadata.create_all(leader)
    sqla_cachedeps.create_feed_table(leader)
    with Session(leader) as s, s.begin():
        s.add(Author(id=1, name="Ann"))
        s.add_all([Book(id=1, title="A1", author_id=1), Book(id=2, title="A2", author_id=1)])
    _Routing.engines = {"leader": leader, "follower": follower}
    factory = sessionmaker(class_=_Routing)
    cache = cachedeps.Cache(cachedeps.open_store("embedded://"), feed=feed_for_dialect(leader.dialect),
                            namespace="routed:")
    handle = sqla_cachedeps.install(factory, cache, database=leader, verify=True)
    query = select(Book.id).where(Book.title == "new").options(FromCache())
    try:
        with factory() as s:
            assert s.scalars(query).all() == []  # cached
        with factory() as s:
            assert s.get(Book, 2).title == "A2"  # a read first: the transaction began on the follower
            s.execute(update(Book).where(Book.id == 1).values(title="new"))
            s.commit()
        with factory() as s:
            assert s.scalars(query).all() == [1]  # invalidated by the row's new value
    finally:
        handle.uninstall()
        leader.dispose()
        follower.dispose()


@pytest.mark.parametrize("option", [{"yield_per": 1}, {"stream_results": True, "max_row_buffer": 1}])
def test_a_streamed_read_is_not_served_from_the_cache(app, option):
    query = select(Book).order_by(Book.id).options(FromCache())
    with app.Session() as s:
        assert len(s.scalars(query).all()) == 3  # cached
    app.selects.clear()
    with app.Session() as s:
        result = s.execute(query.execution_options(**option))
        assert [b.title for (b,) in result] == ["A1", "A2", "B1"]
    assert len(app.selects) == 1  # read from the database, as a stream


def test_unique_on_a_yield_per_read_is_refused_as_without_the_cache(app):
    query = select(Book).options(FromCache())
    with app.Session() as s:
        s.scalars(query).all()  # cached
    with app.Session() as s:
        result = s.execute(query.execution_options(yield_per=10)).unique()
        with pytest.raises(InvalidRequestError, match="yield_per feature in conjunction with unique"):
            next(result)
        result.close()


def test_a_comparison_with_a_transient_object_raises_sqlalchemys_own_error(app):
    with app.Session() as s:
        with pytest.raises(StatementError, match="Can't resolve value for column sq_author.id"):
            s.scalars(select(Book).where(Book.author == Author()).options(FromCache())).all()


def test_a_miss_in_an_empty_session_keeps_the_callers_options_for_later_listeners(app):
    seen = []
    with app.Session() as s:
        event.listen(s, "do_orm_execute", lambda ctx: seen.append(ctx.load_options._populate_existing))
        assert len(s.scalars(select(Book).options(FromCache())).all()) == 3
    assert seen and not any(seen)


def test_the_rows_an_orm_update_matches_are_fetched_from_the_database(make_app, app):
    """``synchronize_session="fetch"``: SQLAlchemy's own SELECT of the rows an ``update()``
    matches decides, with RETURNING where the database has it, which objects of the session
    take the new values. It is part of the write: served from the cache, it skipped the
    RETURNING and missed a row another process made match just before the UPDATE (READ
    COMMITTED), whose object kept its old title. SQLite holds its write lock from the first
    statement of the write and MariaDB has no UPDATE ... RETURNING: PostgreSQL shows it."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("needs READ COMMITTED and UPDATE ... RETURNING")
    other = make_app()

    def cache_every_select(ctx):  # as an application caching all its reads does
        if ctx.is_select:
            ctx.update_execution_options(cachedeps=True)

    event.listen(app.Session, "do_orm_execute", cache_every_select, insert=True)
    stmt = update(Book).where(Book.author_id == 2).values(title="X").execution_options(synchronize_session="fetch")
    with app.Session() as s:
        s.get(Book, 1)  # the transaction has begun (and polled)
        s.execute(stmt)  # the matching rows' SELECT, if it were cached, would be cached here
        s.rollback()
    moved = []

    def before_update(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE sq_book") and not moved:
            moved.append(True)
            with other.Session.begin() as o:  # another process: book 2 now matches
                o.get(Book, 2).author_id = 2

    with app.Session() as s:
        book = s.get(Book, 2)  # in the session, with its author 1 and title A2
        event.listen(app.engine, "before_cursor_execute", before_update)
        try:
            s.execute(stmt)
        finally:
            event.remove(app.engine, "before_cursor_execute", before_update)
        assert moved
        assert book.title == "X"
        s.commit()
    with app.Session() as s:
        assert [b.title for b in s.scalars(select(Book).order_by(Book.id))] == ["A1", "X", "X"]


@pytest.mark.skipif(sqlalchemy.__version__ < "2.1", reason="a listener's ctx.parameters takes effect from SQLAlchemy 2.1 (#12921)")
def test_a_listener_after_the_caches_own_keeps_its_changes(app):
    """A session's own do_orm_execute listener runs after the installation's (class-level)
    one: what it changes (here the parameters, SQLAlchemy's #12921) is not in the cache's
    key, so the read runs uncached and a write emits its table's keys
    (SQLAlchemy's test_events.py::ORMExecuteTest::test_mutate_parameters)."""
    one = select(Book.title).where(Book.id == 1).execution_options(cachedeps=True)
    three = select(Book.title).where(Book.id == 3).execution_options(cachedeps=True)

    def to_book_3(ctx):
        ctx.parameters = {**(ctx.parameters or {}), "id_1": 3}

    with app.Session() as s:
        event.listen(s, "do_orm_execute", to_book_3)
        assert s.scalars(one, {"id_1": 1}).all() == ["B1"]  # the listener's parameters
        assert s.scalars(one, {"id_1": 1}).all() == ["B1"]
    for _ in range(2):
        with app.Session() as s:  # no listener: book 1, never the listener's row
            assert s.scalars(one).all() == ["A1"]
            assert s.scalars(three).all() == ["B1"]
    with app.Session() as s:
        event.listen(s, "do_orm_execute", to_book_3)
        s.execute(update(Book).where(Book.id == 1).values(title="never"), {"id_1": 1})
        s.commit()
    with app.Session() as s:  # the listener moved the update to book 3: its reads see it
        assert s.scalars(one).all() == ["A1"]
        assert s.scalars(three).all() == ["never"]
