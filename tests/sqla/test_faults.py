"""Faults cost hits, never correctness: memcached down or restarted under SQLAlchemy sessions."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, select

import cachedeps
import sqla_cachedeps
from sqla_cachedeps import FromCache
from sqla_cachedeps.feed import feed_for_dialect

from .models import Base, Book

pytestmark = pytest.mark.memcached


@pytest.fixture
def setup(tmp_path, memcached_factory):
    from sqlalchemy.orm import sessionmaker

    server = memcached_factory()
    engine = create_engine(f"sqlite:///{tmp_path / 'faults.sqlite'}")
    Base.metadata.create_all(engine)
    sqla_cachedeps.create_feed_table(engine)
    factory = sessionmaker(engine)
    cache = cachedeps.Cache(cachedeps.open_store(server.url), feed=feed_for_dialect(engine.dialect),
                            namespace=f"f{os.getpid()}:", warn_interval=3600)
    handle = sqla_cachedeps.install(factory, cache)
    with factory.begin() as s:
        s.add_all([Book(id=1, title="one", author_id=None), Book(id=2, title="two", author_id=None)])
    yield server, factory, cache
    handle.uninstall()
    engine.dispose()


def _read(factory):
    with factory() as s:
        stmt = select(Book.title).order_by(Book.id).options(FromCache())
        return s.get(Book, 1).title, s.scalars(stmt).all()


def test_reads_and_writes_go_on_while_memcached_is_down(setup):
    server, factory, cache = setup
    assert _read(factory) == ("one", ["one", "two"])
    server.stop()
    assert _read(factory) == ("one", ["one", "two"])  # answered by the database
    with factory.begin() as s:
        s.get(Book, 1).title = "uno"                  # the write commits; its purge fails quietly
    assert _read(factory) == ("uno", ["uno", "two"])
    assert cache.stats()["store_errors"] > 0
    server.start()
    assert _read(factory) == ("uno", ["uno", "two"])
    assert _read(factory) == ("uno", ["uno", "two"])
    assert cache.stats()["hits"] > 0


def test_a_restarted_memcached_costs_misses_only(setup):
    server, factory, cache = setup
    _read(factory)
    server.restart()
    with factory.begin() as s:
        s.get(Book, 2).title = "dos"
    assert _read(factory) == ("one", ["one", "dos"])
