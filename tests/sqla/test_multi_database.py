"""One ``install()`` over several databases: each database has its own change feed and tid
sequence, so one cache serves one database, and reads from the others are not cached.

The stale read these tests guard against: a session whose first connection is database A
polls A's feed and stamps what it reads from database B with A's position; a write in B
takes a tid of B's own (lower) sequence, which the entry's stamp hides.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import Integer, String, create_engine, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import cachedeps
import sqla_cachedeps
from sqla_cachedeps.feed import feed_for_dialect
from cachedeps.errors import ConfigurationError
from sqla_cachedeps import FromCache

from .conftest import pg_sqlalchemy_url


class Base(DeclarativeBase):
    pass


class Member(Base):  # lives in database A
    __tablename__ = "md_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Item(Base):  # lives in database B
    __tablename__ = "md_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))


def _prepare(engine, *, feed_rows: int) -> None:
    Base.metadata.create_all(engine)
    sqla_cachedeps.create_feed_table(engine)
    with engine.begin() as conn:
        # the feeds' sequences stand apart, as two databases' do after different histories
        for _ in range(feed_rows):
            conn.execute(text("INSERT INTO cachedeps_change (key) VALUES ('md_other')"))
        conn.execute(Member.__table__.insert(), [{"id": 1, "name": "ann"}])
        conn.execute(Item.__table__.insert(), [{"id": 1, "title": "old"}])


@pytest.fixture
def two_sqlite(tmp_path):
    a = create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    b = create_engine(f"sqlite:///{tmp_path / 'b.sqlite'}")
    _prepare(a, feed_rows=40)
    _prepare(b, feed_rows=0)
    yield a, b
    a.dispose()
    b.dispose()


@pytest.fixture
def pg_and_sqlite(tmp_path, postgres_dsn):
    schema = f"md_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_sqlalchemy_url(postgres_dsn))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    a = create_engine(pg_sqlalchemy_url(postgres_dsn), connect_args={"options": f"-csearch_path={schema}"})
    b = create_engine(f"sqlite:///{tmp_path / 'b.sqlite'}")
    _prepare(a, feed_rows=40)
    _prepare(b, feed_rows=0)
    yield a, b
    a.dispose()
    b.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _cache(engine) -> cachedeps.Cache:
    # one store per test: the embedded store of a URL is shared by the whole process
    return cachedeps.Cache(cachedeps.open_store("embedded://"), feed=feed_for_dialect(engine.dialect),
                           namespace=f"md{uuid.uuid4().hex[:8]}:")


def _read_item(factory) -> str:
    with factory() as s:
        s.execute(select(Member).where(Member.id == 1)).scalars().all()  # database A begins first
        return s.execute(select(Item).where(Item.id == 1).options(FromCache())).scalar_one().title


def _write_elsewhere(b, title: str) -> None:
    """Change the item as another process does: the row and database B's own feed, in one
    transaction (what a capture trigger or another process's adapter writes), on a
    connection of its own."""
    raw = b.raw_connection()  # a fresh DB-API connection: no engine event sees the write
    try:
        cur = raw.cursor()
        cur.execute(f"UPDATE md_item SET title = '{title}' WHERE id = 1")
        cur.execute("INSERT INTO cachedeps_change (key) VALUES ('md_item')")
        cur.execute("INSERT INTO cachedeps_change (key) VALUES ('md_item:1')")
        cur.close()
        raw.commit()
    finally:
        raw.close()


def _stale_read_scenario(a, b, factory) -> list[str]:
    seen = [_read_item(factory)]  # a miss, filled
    _write_elsewhere(b, "new")
    seen.append(_read_item(factory))  # must be the new title
    with factory() as s:  # a write through the installation itself
        s.execute(update(Item).where(Item.id == 1).values(title="newer"))
        s.commit()
    seen.append(_read_item(factory))
    return seen


@pytest.mark.parametrize("pair", ["two_sqlite", "pg_and_sqlite"])
def test_no_stale_read_across_two_databases(request, pair):
    """A session bound to two databases (``Session(binds=...)`` made per session, so not
    visible to ``install()``): reads from the database the cache does not serve are not
    cached, and a write there is read back at once."""
    a, b = request.getfixturevalue(pair)
    factory = sessionmaker()
    inst = sqla_cachedeps.install(factory, _cache(a), database=a)
    try:
        def make() -> Session:
            return factory(binds={Member: a, Item: b})

        assert _stale_read_scenario(a, b, make) == ["old", "new", "newer"]
        # reads from A are cached as before
        with make() as s:
            s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one()
        hits = inst.cache.stats()["hits"]
        with make() as s:
            assert s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one().name == "ann"
        assert inst.cache.stats()["hits"] == hits + 1
    finally:
        inst.uninstall()


def test_no_stale_read_when_the_second_database_is_found_at_run_time(two_sqlite, caplog):
    """Without ``database=``, the first database the installation sees is the one it caches;
    another one met later is read uncached (and said so once in the log)."""
    a, b = two_sqlite
    factory = sessionmaker()
    inst = sqla_cachedeps.install(factory, _cache(a))
    try:
        def make() -> Session:
            return factory(binds={Member: a, Item: b})

        with caplog.at_level(logging.WARNING, logger="sqla_cachedeps"):
            assert _stale_read_scenario(a, b, make) == ["old", "new", "newer"]
        warned = [r for r in caplog.records if "not cached" in r.getMessage()]
        assert len(warned) == 1 and str(b.url) in warned[0].getMessage()
    finally:
        inst.uninstall()


def test_install_refuses_a_factory_bound_to_several_databases(two_sqlite):
    a, b = two_sqlite
    factory = sessionmaker(binds={Member: a, Item: b})
    with pytest.raises(ConfigurationError) as err:
        sqla_cachedeps.install(factory, _cache(a))
    message = str(err.value)
    assert str(a.url) in message and str(b.url) in message and "database=" in message
    inst = sqla_cachedeps.install(factory, _cache(a), database=a)
    try:
        assert _stale_read_scenario(a, b, factory) == ["old", "new", "newer"]
    finally:
        inst.uninstall()


def test_database_must_be_one_the_factory_reaches(two_sqlite, tmp_path):
    a, b = two_sqlite
    c = create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with pytest.raises(ConfigurationError, match="database="):
        sqla_cachedeps.install(sessionmaker(binds={Member: a, Item: b}), _cache(a), database=c)
    c.dispose()


def test_engines_of_one_database_share_the_cache(two_sqlite):
    """Two engines on the same database (another pool, execution options) are one database."""
    a, _ = two_sqlite
    a2 = create_engine(a.url)
    factory = sessionmaker()
    inst = sqla_cachedeps.install(factory, _cache(a), database=a)
    try:
        with factory(bind=a2) as s:
            s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one()
        hits = inst.cache.stats()["hits"]
        with factory(bind=a.execution_options(isolation_level="SERIALIZABLE")) as s:
            s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one()
        assert inst.cache.stats()["hits"] == hits + 1
        with factory(bind=a2) as s:
            s.execute(update(Member).where(Member.id == 1).values(name="bob"))
            s.commit()
        with factory(bind=a) as s:
            assert s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one().name == "bob"
    finally:
        inst.uninstall()
        a2.dispose()


def test_a_computation_of_one_cache_reading_another_database_is_not_stored(two_sqlite):
    """``get_or_compute`` on database A's cache whose computation reads database B (through
    B's own installation): B's keys mean nothing to A's delta maps, so the value is not
    stored, and B's next write is seen."""
    a, b = two_sqlite
    cache_a, cache_b = _cache(a), _cache(b)
    factory_a, factory_b = sessionmaker(bind=a), sessionmaker(bind=b)
    inst_a = sqla_cachedeps.install(factory_a, cache_a)
    inst_b = sqla_cachedeps.install(factory_b, cache_b)
    try:
        def page() -> str:
            with factory_a() as sa, factory_b() as sb:
                name = sa.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one().name
                title = sb.execute(select(Item).where(Item.id == 1).options(FromCache())).scalar_one().title
                return f"{name}/{title}"

        with factory_a() as s:
            s.connection()  # polls A: the cache's stamp
            assert cache_a.get_or_compute("page", page) == "ann/old"
        with factory_b() as s:
            s.execute(update(Item).where(Item.id == 1).values(title="new"))
            s.commit()
        with factory_a() as s:
            s.connection()
            assert cache_a.get_or_compute("page", page) == "ann/new"
    finally:
        inst_a.uninstall()
        inst_b.uninstall()


def test_caches_built_from_one_store_url_keep_databases_apart(two_sqlite):
    """Two installations given the same store URL, one per database: each cache gets its
    database's own namespace, so the same query on the other database is never a hit."""
    a, b = two_sqlite
    with b.begin() as conn:
        conn.execute(text("UPDATE md_member SET name = 'zed' WHERE id = 1"))
    factory_a, factory_b = sessionmaker(bind=a), sessionmaker(bind=b)
    inst_a = sqla_cachedeps.install(factory_a, "embedded://")
    inst_b = sqla_cachedeps.install(factory_b, "embedded://")
    try:
        seen = []
        for factory in (factory_a, factory_b, factory_a, factory_b):
            with factory() as s:
                seen.append(s.execute(select(Member).where(Member.id == 1).options(FromCache())).scalar_one().name)
        assert seen == ["ann", "zed", "ann", "zed"]
        assert inst_a.cache.namespace != inst_b.cache.namespace
    finally:
        inst_a.uninstall()
        inst_b.uninstall()


def test_a_store_url_with_database_and_a_first_session_on_the_other(two_sqlite):
    """``database=`` builds the cache at once: a first session that only writes to the
    other database appends to that database's own feed and leaves the cache's maps alone."""
    a, b = two_sqlite
    factory = sessionmaker()
    inst = sqla_cachedeps.install(factory, "embedded://", database=a)
    try:
        with factory(bind=b) as s:
            s.execute(update(Item).where(Item.id == 1).values(title="new"))
            s.commit()
        with b.connect() as conn:
            assert conn.execute(text("SELECT key FROM cachedeps_change ORDER BY tid DESC LIMIT 1")).scalar()
        assert inst.cache.stats()["invalidations"] == 0
        assert _read_item(lambda: factory(binds={Member: a, Item: b})) == "new"
    finally:
        inst.uninstall()
