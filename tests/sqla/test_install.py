"""install(): accepted factories, configuration errors, uninstall, values that are not cached."""

from __future__ import annotations

import enum

import pytest
from sqlalchemy import Enum, String, create_engine, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import cachedeps
import sqla_cachedeps
from cachedeps.errors import ConfigurationError
from cachedeps.feed import SqlFeed, StoreFeed
from sqla_cachedeps import FromCache

from .models import Base, Book


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class _OtherBase(DeclarativeBase):
    pass


class Paint(_OtherBase):
    __tablename__ = "sq_paint"
    id: Mapped[int] = mapped_column(primary_key=True)
    color: Mapped[Color] = mapped_column(Enum(Color))
    name: Mapped[str] = mapped_column(String(20))


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'install.sqlite'}")
    Base.metadata.create_all(engine)
    _OtherBase.metadata.create_all(engine)
    sqla_cachedeps.create_feed_table(engine)
    selects: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda c, cur, sql, *a: selects.append(sql) if sql.startswith("SELECT") else None)
    engine.selects = selects  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def test_url_builds_a_cache_with_a_feed_for_the_engine(sqlite_engine):
    factory = sessionmaker(sqlite_engine)
    handle = sqla_cachedeps.install(factory, "embedded://")
    try:
        assert isinstance(handle.cache.feed, SqlFeed)
        assert handle.cache.feed.dialect == "sqlite" and handle.cache.feed.paramstyle == "qmark"
    finally:
        handle.uninstall()


def test_configuration_errors_name_the_fix(sqlite_engine):
    with pytest.raises(ConfigurationError, match="sessionmaker, a Session subclass or an async_sessionmaker"):
        sqla_cachedeps.install(object(), "embedded://")
    store = cachedeps.open_store("embedded://")
    with pytest.raises(ConfigurationError, match="SqlFeed"):
        sqla_cachedeps.install(sessionmaker(sqlite_engine), cachedeps.Cache(store, feed=StoreFeed(store)))
    factory = sessionmaker(sqlite_engine)
    handle = sqla_cachedeps.install(factory, "embedded://")
    with pytest.raises(ConfigurationError, match="already installed"):
        sqla_cachedeps.install(factory, "embedded://")
    handle.uninstall()
    sqla_cachedeps.install(factory, "embedded://").uninstall()  # fine once the first is gone
    with pytest.raises(ConfigurationError, match="AsyncEngine"):
        from sqlalchemy.ext.asyncio import create_async_engine

        sqla_cachedeps.create_feed_table(create_async_engine("sqlite+aiosqlite://"))


def test_session_subclass_and_uninstall(sqlite_engine):
    class AppSession(Session):
        pass

    factory = sessionmaker(sqlite_engine, class_=AppSession)
    with factory.begin() as s:
        s.add(Book(id=1, title="t"))
    handle = sqla_cachedeps.install(AppSession, "embedded://")
    handle.watch_engine(sqlite_engine)
    for _ in range(2):
        with factory() as s:
            s.get(Book, 1)
    assert len(sqlite_engine.selects) == 1  # the second get came from the cache
    handle.uninstall()
    assert not handle.installed
    sqlite_engine.selects.clear()
    for _ in range(2):
        with factory() as s:
            s.get(Book, 1)
    assert len(sqlite_engine.selects) == 2  # every get reaches the database again
    with factory.begin() as s:
        s.get(Book, 1).title = "u"
    with sqlite_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM cachedeps_change")).scalar() == 0


def test_values_the_serializer_refuses_are_served_uncached(sqlite_engine):
    factory = sessionmaker(sqlite_engine)
    handle = sqla_cachedeps.install(factory, "embedded://")
    try:
        with factory.begin() as s:
            s.add(Paint(id=1, color=Color.red, name="p"))
        stmt = select(Paint).where(Paint.name == "p").options(FromCache())
        sqlite_engine.selects.clear()
        for _ in range(2):
            with factory() as s:
                assert s.get(Paint, 1).color is Color.red
                assert [p.color for p in s.scalars(stmt)] == [Color.red]
        assert len(sqlite_engine.selects) == 4  # never cached, never pickled, always right
    finally:
        handle.uninstall()


def test_missing_feed_table_says_how_to_create_it(tmp_path):
    import sqlite3

    from cachedeps.errors import FeedError

    engine = create_engine(f"sqlite:///{tmp_path / 'nofeed.sqlite'}")
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    handle = sqla_cachedeps.install(factory, "embedded://")
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table") as info:  # the database's own
            with factory() as s:
                s.get(Book, 1)
        assert not isinstance(info.value, FeedError)
        assert any("create_feed_table" in note for note in info.value.__notes__)
        with pytest.raises(FeedError, match="create_feed_table"):
            with engine.begin() as conn:
                conn.execute(text("UPDATE sq_book SET title = 'x'"))
    finally:
        handle.uninstall()
        engine.dispose()


def test_an_unreachable_memcached_is_a_warning_at_install(sqlite_engine, caplog, memcached):
    import logging

    from tests.conftest import free_port

    down = f"memcache://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="sqla_cachedeps"):
        inst = sqla_cachedeps.install(sessionmaker(sqlite_engine), down)
    inst.uninstall()
    warned = [r.getMessage() for r in caplog.records if r.name == "sqla_cachedeps"]
    assert len(warned) == 1 and "does not accept connections" in warned[0]
    assert "nothing is cached" in warned[0] and "start memcached" in warned[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sqla_cachedeps"):
        inst = sqla_cachedeps.install(sessionmaker(sqlite_engine), memcached.url)  # up: no warning
    inst.uninstall()
    assert [r for r in caplog.records if r.name == "sqla_cachedeps"] == []


def test_a_listener_can_mark_selects_for_the_cache(sqlite_engine):
    # SQLAlchemy 2.1 keeps update_execution_options() of an earlier do_orm_execute listener in
    # local_execution_options only: the marker was ignored and nothing was cached. Marking
    # False from a listener turns the cache off the same way.
    factory = sessionmaker(sqlite_engine)
    with factory.begin() as s:
        s.add(Book(id=1, title="t"))
    marker = {"cachedeps": True}

    def mark(orm_state):
        if orm_state.is_select:
            orm_state.update_execution_options(**marker)

    event.listen(factory, "do_orm_execute", mark)
    handle = sqla_cachedeps.install(factory, "embedded://")
    try:
        stmt = select(Book).where(Book.title == "t")
        sqlite_engine.selects.clear()
        for _ in range(3):
            with factory() as s:
                assert [b.id for b in s.scalars(stmt)] == [1]
        assert len([q for q in sqlite_engine.selects if "FROM sq_book" in q]) == 1
        marker["cachedeps"] = False
        sqlite_engine.selects.clear()
        for _ in range(2):
            with factory() as s:
                s.scalars(stmt.options(FromCache())).all()
        assert len([q for q in sqlite_engine.selects if "FROM sq_book" in q]) == 2
    finally:
        handle.uninstall()
