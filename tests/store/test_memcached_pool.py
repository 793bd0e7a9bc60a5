"""The remote store over three memcached servers with consistent hashing."""

from __future__ import annotations

import pytest

from cachedeps.config import open_store
from cachedeps.errors import BackendUnavailable
from cachedeps.testing import StoreConformance
from tests.conftest import free_port

pytestmark = pytest.mark.memcached


def _url(servers) -> str:
    return "memcache://" + ",".join(s.address for s in servers)


class TestMemcachedPoolConformance(StoreConformance):
    @pytest.fixture
    def store(self, memcached_pool):
        store = open_store(_url(memcached_pool) + "?timeout=5&connect_timeout=5")
        store.flush_all()
        yield store
        store.close()

    @pytest.fixture
    def dead_store(self):
        ports = [free_port(), free_port()]
        store = open_store("memcache://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "?connect_timeout=1")
        yield store
        store.close()


def test_keys_spread_over_every_server_and_get_many_gathers_them(memcached_pool):
    store = open_store(_url(memcached_pool) + "?timeout=5")
    try:
        store.flush_all()
        keys = [f"pool:{i}" for i in range(300)]
        assert store.set_many({k: k.encode() for k in keys}) == []
        per_server = store.stats()["servers"]
        assert all(figures["curr_items"] > 30 for figures in per_server.values())
        assert store.get_many(keys) == {k: k.encode() for k in keys}
        assert set(store.gets_many(keys[:50])) == set(keys[:50])
    finally:
        store.close()


def test_one_dead_server_costs_its_keys_only(memcached_factory):
    servers = [memcached_factory() for _ in range(3)]
    store = open_store(_url(servers) + "?timeout=3&connect_timeout=3&retry_timeout=30")
    try:
        keys = [f"dead:{i}" for i in range(60)]
        store.set_many({k: b"v" for k in keys})
        victim = servers[0]
        victim.stop()
        on_victim = [k for k in keys if store._address_of(k) == victim.address]
        elsewhere = [k for k in keys if k not in on_victim]
        assert on_victim and elsewhere
        with pytest.raises(BackendUnavailable) as info:
            store.get(on_victim[0])
        assert info.value.address == victim.address
        # While the server waits for its retry, its keys fail loudly for single-key commands
        # (a delete must never pass for done) and read as misses in get_many.
        with pytest.raises(BackendUnavailable):
            store.delete(on_victim[1])
        assert store.get_many(keys) == {k: b"v" for k in elsewhere}
    finally:
        store.close()
