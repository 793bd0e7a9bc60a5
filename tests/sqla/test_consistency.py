"""Invariant I1 through SQLAlchemy: concurrent writer and reader processes, zero stale reads.

Writers update rows through ORM flushes (and Core ``update()`` statements, and raw SQL
starting with a comment); readers read
them through cached ``session.get`` and ``FromCache`` queries. The stale-read checker in
``tests/consistency/checker.py`` judges the run.
"""

from __future__ import annotations

import uuid
from typing import Callable

import pytest
from sqlalchemy import Integer, create_engine, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from tests.consistency import checker

pytestmark = pytest.mark.memcached


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "sq_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    group: Mapped[int] = mapped_column(Integer)


def _app(ctx: dict, verify: bool = True):
    import cachedeps
    import sqla_cachedeps
    from sqla_cachedeps.feed import feed_for_dialect

    engine = create_engine(ctx["url"], connect_args=ctx.get("connect_args", {}))
    factory = sessionmaker(engine)
    cache = cachedeps.Cache(
        cachedeps.open_store(ctx["store"]),
        feed=feed_for_dialect(engine.dialect),
        namespace=ctx["namespace"],
        warn_interval=3600,
    )
    sqla_cachedeps.install(factory, cache, verify=verify)
    return factory, cache


def make_writer(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``write(item) -> version``: ORM flushes, every third write a Core statement."""
    factory, _ = _app(ctx)
    turn = [index]

    def write(item: int) -> int:
        turn[0] += 1
        with factory.begin() as s:
            if turn[0] % 5 == 1:  # raw SQL: a comment first, the table named in another case
                s.execute(text("/* checker */ UPDATE SQ_ITEM SET version = version + 1 WHERE id = :id"), {"id": item})
                version = s.execute(
                    select(Item.version).where(Item.id == item), execution_options={"cachedeps": False}
                ).scalar_one()
            elif ctx.get("core_every", 3) and turn[0] % ctx.get("core_every", 3) == 0:
                s.execute(update(Item).where(Item.id == item).values(version=Item.version + 1))
                version = s.execute(
                    select(Item.version).where(Item.id == item), execution_options={"cachedeps": False}
                ).scalar_one()
            else:
                row = s.get(Item, item)
                # An SQL increment: a read-modify-write in Python would lose updates between
                # the two writers (SQLite takes no row locks), whatever the cache does.
                row.version = Item.version + 1
                s.flush()
                version = row.version  # expired by the flush: read back, bypassing the cache
        checker.note_commit(item, version)
        return version

    return write


def make_reader(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``read(item) -> version`` through cached gets and cached queries."""
    from sqla_cachedeps import FromCache

    factory, cache = _app(ctx)
    turn = [index]

    def read(item: int) -> int:
        turn[0] += 1
        with factory() as s:
            mode = ctx.get("reads", "both")
            if mode == "get" or (mode == "both" and turn[0] % 2):
                return s.get(Item, item).version
            stmt = select(Item).where(Item.group == item % 2).options(FromCache())
            return next(i.version for i in s.scalars(stmt) if i.id == item)

    read.stats = cache.stats  # type: ignore[attr-defined]
    return read


def _setup(url: str, connect_args: dict, items: int) -> None:
    import sqla_cachedeps

    engine = create_engine(url, connect_args=connect_args)
    _Base.metadata.create_all(engine)
    sqla_cachedeps.create_feed_table(engine)
    with sessionmaker(engine).begin() as s:
        s.add_all([Item(id=i, version=0, group=i % 2) for i in range(items)])
    engine.dispose()


def test_no_stale_reads_through_sqlalchemy_sessions(tmp_path, memcached):
    url = f"sqlite:///{tmp_path / 'items.sqlite'}"
    _setup(url, {}, 4)
    ctx = {"url": url, "store": memcached.url, "namespace": f"i{uuid.uuid4().hex[:8]}:"}
    report = checker.run(make_writer, make_reader, ctx, writers=2, readers=2, items=4, duration=2.0, min_writes=10)
    print(report.summary())
    report.assert_ok(min_reads=100, min_writes=10)
    assert report.counters.get("hits", 0) > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_no_stale_reads_through_sqlalchemy_sessions_on_postgresql(postgres_dsn, memcached):
    from sqlalchemy import text

    from .conftest import pg_sqlalchemy_url

    url = pg_sqlalchemy_url(postgres_dsn)
    schema = f"sqla_items_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    connect_args = {"options": f"-csearch_path={schema}"}
    try:
        _setup(url, connect_args, 4)
        ctx = {"url": url, "connect_args": connect_args, "store": memcached.url,
               "namespace": f"i{uuid.uuid4().hex[:8]}:"}
        report = checker.run(make_writer, make_reader, ctx, writers=2, readers=3, items=4, duration=4.0, min_writes=5)
        print(report.summary())
        report.assert_ok(min_reads=300, min_writes=5)  # the advisory lock is shared with other suites
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
