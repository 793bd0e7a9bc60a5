"""The remote store against one real memcached: the conformance suite and failure handling."""

from __future__ import annotations

import pytest

from cachedeps.config import open_store
from cachedeps.errors import BackendUnavailable
from cachedeps.store.remote import RemoteStore
from cachedeps.testing import StoreConformance
from tests.conftest import free_port

pytestmark = pytest.mark.memcached


class TestMemcachedConformance(StoreConformance):
    @pytest.fixture
    def store(self, memcached):
        store = open_store(memcached.url + "?timeout=5&connect_timeout=5")
        store.flush_all()
        yield store
        store.close()

    @pytest.fixture
    def small_store(self, memcached_factory):
        server = memcached_factory(memory_mb=4)
        store = open_store(server.url + "?timeout=5&connect_timeout=5")
        yield store
        store.close()

    @pytest.fixture
    def dead_store(self):
        store = open_store(f"memcache://127.0.0.1:{free_port()}?connect_timeout=0.5&timeout=0.5")
        yield store
        store.close()


def test_server_killed_then_back(memcached_factory):
    server = memcached_factory()
    store = open_store(server.url + "?timeout=3&connect_timeout=3")
    try:
        store.set("k", b"v")
        server.stop()
        with pytest.raises(BackendUnavailable) as info:
            store.get("k")
        assert info.value.address == server.address
        server.start()
        assert store.get("k") is None  # a restarted memcached is empty: a miss, not an error
        store.set("k", b"v2")
        assert store.get("k") == b"v2"
    finally:
        store.close()


def test_raw_command_and_version(memcached):
    store = open_store(memcached.url + "?timeout=5")
    try:
        assert store.server_version()[0].isdigit()
        store.set("raw:k", b"hello", flags=3)
        answer = store._raw("raw:k", b"mg raw:k v f", b"\r\n")
        assert answer.startswith(b"VA 5") and b"f3" in answer
    finally:
        store.close()


def test_stats_sum_and_keep_each_server(memcached):
    store = open_store(memcached.url + "?timeout=5")
    try:
        store.set("s:1", b"v")
        stats = store.stats()
        assert stats["curr_items"] >= 1
        assert set(stats["servers"]) == {memcached.address}
    finally:
        store.close()


def test_missing_pymemcache_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pymemcache(name, *args, **kwargs):
        if name.startswith("pymemcache"):
            raise ImportError("No module named 'pymemcache'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pymemcache)
    with pytest.raises(Exception, match=r"cachedeps\[memcache\]"):
        RemoteStore([("127.0.0.1", 1)])
