"""The engine on a real memcached: emulated trees, leases, a killed server."""

from __future__ import annotations

import logging
import uuid

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.config import open_store

from ._support import herd, write

pytestmark = pytest.mark.memcached


@pytest.fixture
def remote(memcached):
    store = open_store(memcached.url)
    yield store
    store.close()


def _cache(store, db=None, **kw) -> Cache:
    ns = uuid.uuid4().hex[:8] + ":"
    return Cache(store, feed=db[1] if db else None, namespace=ns, **kw)


def test_emulated_trees_purge_the_whole_chain(remote, db):
    conn, feed = db
    cache = _cache(remote, db)
    assert not cache.stats()["native_trees"]
    cache.poll(conn)
    cache.set("query", [1], depends_on=["book.author_id=7"])
    with cache.recording() as rec:
        cache.get("query")
    cache.set("view", "v", depends_on=rec.keys)
    cache.set("other", "o", depends_on=["author:1"])
    write(conn, feed, ["book.author_id=7"], cache=cache)
    ns = cache.namespace
    assert remote.get("d:" + ns + "query") is None and remote.get("d:" + ns + "view") is None
    assert remote.get("d:" + ns + "other") is not None


def test_herd_on_memcached_computes_once(memcached):
    remote = open_store(memcached.url, pool_size=64)
    cache = _cache(remote)
    cache.poll()
    calls, results = herd(cache, 50, work=0.05, depends_on=["k:1"])
    assert len(calls) == 1 and results == ["value"] * 50


def test_hit_is_one_round_trip(remote, db):
    conn, feed = db
    cache = _cache(remote, db)
    cache.poll(conn)
    cache.set("q", {"rows": [1, 2]}, depends_on=["book:1", "author.id=3"])
    calls = []
    real_get = remote.get

    def counting_get(key):
        calls.append(key)
        return real_get(key)

    remote.get = counting_get
    try:
        assert cache.get("q") == {"rows": [1, 2]}
    finally:
        del remote.get
    assert len(calls) == 1


def test_killed_memcached_means_misses_and_one_warning(memcached_factory, db, caplog):
    conn, feed = db
    server = memcached_factory()
    store = open_store(server.url, timeout=0.3, connect_timeout=0.3)
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    cache.set("q", 1, depends_on=["b:1"])
    assert cache.get("q") == 1
    server.stop()
    with caplog.at_level(logging.WARNING, logger="cachedeps"):
        for _ in range(3):
            cache.poll(conn)
            assert cache.get("q") is NO_VALUE
            assert cache.get_or_compute("q", lambda: 2) == 2
            write(conn, feed, ["b:1"], cache=cache)
    warnings = [r for r in caplog.records if r.name == "cachedeps" and "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and server.address in warnings[0].getMessage()
    server.start()
    cache.poll(conn)
    assert cache.get("q") is NO_VALUE
    cache.set("q", 3, depends_on=["b:1"])
    assert cache.get("q") == 3
