"""Async sessions (aiosqlite, psycopg async): the listeners sit on the sync session class."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import cachedeps
import sqla_cachedeps
from sqla_cachedeps import FromCache
from sqla_cachedeps.feed import feed_for_dialect

from .models import Author, Base, Book


def _async_url(db) -> tuple[str, dict]:
    url, connect_args = db
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1), connect_args
    if url.startswith("mysql"):
        import pytest

        pytest.skip("no async MySQL driver (aiomysql, asyncmy) among the test dependencies")
    return url, connect_args  # postgresql+psycopg is sync and async at once


async def _scenario(url: str, connect_args: dict, store) -> None:
    engine = create_async_engine(url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(sqla_cachedeps.create_feed_table)
    selects: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda c, cur, sql, params, ctx, many: selects.append(sql)
        if sql.lstrip().upper().startswith("SELECT") and not ctx.execution_options.get("cachedeps_verify")
        else None,
    )
    factory = async_sessionmaker(engine, expire_on_commit=False)
    cache = cachedeps.Cache(store, feed=feed_for_dialect(engine.sync_engine.dialect), namespace="async:")
    handle = sqla_cachedeps.install(factory, cache, verify=True)
    try:
        async with factory.begin() as s:
            s.add(Author(id=1, name="Ann"))
            s.add_all([Book(id=1, title="A1", author_id=1), Book(id=2, title="A2", author_id=1)])
        stmt = select(Book).where(Book.author_id == 1).order_by(Book.id).options(FromCache())
        for _ in range(2):
            selects.clear()
            async with factory() as s:
                assert (await s.get(Book, 1)).title == "A1"
                assert [b.id for b in (await s.scalars(stmt)).all()] == [1, 2]
        assert selects == []
        async with factory.begin() as s:
            await s.execute(update(Book).where(Book.id == 2).values(author_id=None))
            (await s.get(Book, 1)).title = "new"
        async with factory() as s:
            assert (await s.get(Book, 1)).title == "new"
            assert [b.id for b in (await s.scalars(stmt)).all()] == [1]
    finally:
        handle.uninstall()
        await engine.dispose()


def test_async_session_reads_and_writes(db, store):
    url, connect_args = _async_url(db)
    asyncio.run(_scenario(url, connect_args, store))


def test_async_sessionmaker_gets_a_private_sync_class():
    engine = create_async_engine("sqlite+aiosqlite://")
    factory = async_sessionmaker(engine)
    handle = sqla_cachedeps.install(factory, "embedded://")
    try:
        from sqlalchemy.orm import Session

        cls = factory.kw["sync_session_class"]
        assert cls is not Session and issubclass(cls, Session)
        assert not event.contains(Session, "do_orm_execute", handle._do_orm_execute)
    finally:
        handle.uninstall()
    asyncio.run(engine.dispose())
