"""``sqlalchemy.ext.horizontal_shard``: a ``ShardedSession`` picks each object's shard from
the instance, so cachedeps must ask it the way the flush does (its ``connection_callable``
with the object) and read a row's old values on that row's own shard.

Found by SQLAlchemy's own ``test/ext/test_horizontal_shard.py`` run through cachedeps: every
flush raised inside cachedeps (the shard chooser was called without the instance).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import String, create_engine, func, select, text
from sqlalchemy.ext.horizontal_shard import ShardedSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import cachedeps
import sqla_cachedeps
from sqla_cachedeps import FromCache
from sqla_cachedeps.feed import feed_for_dialect


class Base(DeclarativeBase):
    pass


class City(Base):
    __tablename__ = "sh_city"
    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(50))


def _shard_of(region: str) -> str:
    return "north" if region == "n" else "south"


def _chooser(mapper, instance, clause=None):  # the signature SQLAlchemy's own tests use
    if instance is None:
        raise RuntimeError("cannot choose a shard without the instance")
    return _shard_of(instance.region)


def _identity_chooser(mapper, primary_key, *, lazy_loaded_from, execute_state, **kw):
    return ["north", "south"]


def _execute_chooser(context):
    return ["north", "south"]


@pytest.fixture
def shards(tmp_path):
    engines = {}
    for name in ("north", "south"):
        engine = create_engine(f"sqlite:///{tmp_path / name}.sqlite")
        Base.metadata.create_all(engine)
        sqla_cachedeps.create_feed_table(engine)
        engines[name] = engine
    # the same primary key on both shards, other values: an old-values read on the wrong
    # shard would spell the wrong row's keys
    with engines["north"].begin() as conn:
        conn.execute(City.__table__.insert(), [{"id": 1, "region": "n", "name": "oslo"}])
    with engines["south"].begin() as conn:
        conn.execute(City.__table__.insert(), [{"id": 1, "region": "s", "name": "rome"}])
    yield engines
    for engine in engines.values():
        engine.dispose()


def _install(engines):
    """Return (sharded factory, plain factory of the north shard, their installations): one
    cache for the north database. A ShardedSession's reads run uncached (its own
    ``do_orm_execute`` listener follows cachedeps'); its writes publish to each shard's feed,
    and the north shard's reads are cached through the plain factory."""
    cache = cachedeps.Cache(cachedeps.open_store("embedded://"), feed=feed_for_dialect(engines["north"].dialect),
                            namespace=f"sh{uuid.uuid4().hex[:8]}:")
    sharded = sessionmaker(class_=ShardedSession, shards=engines, shard_chooser=_chooser,
                           identity_chooser=_identity_chooser, execute_chooser=_execute_chooser)
    plain = sessionmaker(bind=engines["north"])
    return sharded, plain, [sqla_cachedeps.install(sharded, cache, database=engines["north"]),
                            sqla_cachedeps.install(plain, cache)]


def _count_north(factory, name: str) -> int:
    with factory() as s:
        return s.execute(select(func.count()).select_from(City).where(City.name == name)
                         .options(FromCache())).scalar_one()


def test_flushes_of_a_sharded_session_write_and_publish(shards):
    factory, _, insts = _install(shards)
    try:
        with factory() as s:
            s.add_all([City(id=2, region="n", name="bergen"), City(id=2, region="s", name="napoli")])
            s.commit()
        with factory() as s:  # a flush before anything began the session's transaction
            s.add(City(id=3, region="s", name="bari"))
            s.flush()
            s.commit()
        with shards["north"].connect() as conn:
            assert conn.execute(text("SELECT name FROM sh_city WHERE id = 2")).scalar_one() == "bergen"
            assert conn.execute(text("SELECT count(*) FROM sh_city WHERE id = 3")).scalar_one() == 0
        with shards["south"].connect() as conn:
            assert conn.execute(text("SELECT name FROM sh_city WHERE id = 3")).scalar_one() == "bari"
            # each shard's feed has its own rows' keys
            assert conn.execute(text("SELECT count(*) FROM cachedeps_change WHERE key = 'sh_city:3'")).scalar_one() == 1
        with shards["south"].connect() as conn:
            assert conn.execute(text("SELECT name FROM sh_city WHERE id = 2")).scalar_one() == "napoli"
    finally:
        for inst in insts:
            inst.uninstall()


@pytest.mark.parametrize("first", ["north", "south"])
def test_no_stale_read_after_a_flush_over_two_shards(shards, first):
    """Both shards' rows with id 1 change in one flush, whichever comes first in it: the
    cached count of the north row's old name must be dropped."""
    factory, plain, insts = _install(shards)
    cache = insts[0].cache
    try:
        assert _count_north(plain, "oslo") == 1
        hits = cache.stats()["hits"]
        assert _count_north(plain, "oslo") == 1
        assert cache.stats()["hits"] == hits + 1  # cached
        with factory() as s:
            cities = {c.region: c for c in s.execute(select(City)).scalars()}
            order = ["n", "s"] if first == "north" else ["s", "n"]
            renamed = {"n": "trondheim", "s": "milano"}
            for region in order:
                cities[region].name = renamed[region]
            s.commit()
        assert _count_north(plain, "oslo") == 0
        assert _count_north(plain, "trondheim") == 1
    finally:
        for inst in insts:
            inst.uninstall()
