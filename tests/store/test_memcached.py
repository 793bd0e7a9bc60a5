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


def _count_commands(monkeypatch):
    """Count the pymemcache calls that each make one round trip: ``delete`` and ``delete_many``."""
    from pymemcache.client.base import Client

    calls = {"delete": 0, "delete_many": 0, "keys": 0}
    real_delete, real_many = Client.delete, Client.delete_many

    def delete(self, key, *args, **kwargs):
        calls["delete"] += 1
        return real_delete(self, key, *args, **kwargs)

    def delete_many(self, keys, *args, **kwargs):
        calls["delete_many"] += 1
        calls["keys"] += len(keys)
        return real_many(self, keys, *args, **kwargs)

    monkeypatch.setattr(Client, "delete", delete)
    monkeypatch.setattr(Client, "delete_many", delete_many)
    return calls


def test_delete_many_pipelines_a_purge_in_a_few_round_trips(memcached, monkeypatch):
    """A purge deletes thousands of keys (entries and their leases): pipelined, not one round
    trip each (which made a writer wait about 150 ms per 1,000 dependents)."""
    store = open_store(memcached.url + "?timeout=5")
    try:
        keys = [f"purge:{i}" for i in range(2500)]
        assert not store.set_many({k: b"v" for k in keys})
        store.set("purge:kept", b"v")
        calls = _count_commands(monkeypatch)
        store.delete_many(keys + ["purge:never-stored"] + keys[:10])  # missing and repeated keys too
        assert calls["delete"] == 0 and calls["delete_many"] == 3 and calls["keys"] == 2501
        assert store.get_many(keys) == {}
        assert store.get("purge:kept") == b"v"
        store.delete_many([])
    finally:
        store.close()


def test_delete_many_over_two_servers_deletes_on_each_and_reports_a_dead_one(memcached_factory, monkeypatch):
    a, b = memcached_factory(), memcached_factory()
    store = open_store(f"memcache://{a.address},{b.address}?timeout=2&connect_timeout=2")
    try:
        keys = [f"purge2:{i}" for i in range(600)]
        assert not store.set_many({k: b"v" for k in keys})
        calls = _count_commands(monkeypatch)
        store.delete_many(keys)
        assert calls["delete"] == 0 and calls["delete_many"] == 2  # one round trip per server
        assert store.get_many(keys) == {}
        assert not store.set_many({k: b"v" for k in keys})
        b.stop()
        with pytest.raises(BackendUnavailable) as info:
            store.delete_many(keys)
        assert info.value.address == b.address
    finally:
        store.close()


def test_append_many_and_add_many_answer_per_key(memcached_factory):
    a, b = memcached_factory(), memcached_factory()
    for url in (a.url, f"memcache://{a.address},{b.address}"):
        store = open_store(url + "?timeout=2")
        try:
            store.flush_all()
            keys = [f"node:{i}" for i in range(40)]
            assert store.add_many({k: b"x" for k in keys[:20]}) == []
            assert sorted(store.append_many({k: b" y" for k in keys})) == sorted(keys[20:])  # no item there
            assert store.get_many(keys[:20]) == {k: b"x y" for k in keys[:20]}
            assert sorted(store.add_many({k: b"z" for k in keys}, expire=60)) == sorted(keys[:20])  # taken
            assert store.get(keys[25]) == b"z" and store.get(keys[5]) == b"x y"
            assert store.append_many({}) == [] and store.add_many({}) == []
        finally:
            store.close()


def test_a_pipelined_append_the_server_refuses_raises_and_the_store_stays_usable(memcached_factory):
    server = memcached_factory(extra=("-I", "1m"))
    store = open_store(server.url + "?timeout=2")
    try:
        store.set("big", b"x" * 1000)
        store.set("small", b"s")
        from cachedeps.errors import ValueTooLarge

        with pytest.raises(ValueTooLarge) as info:
            store.append_many({"small": b"t", "big": b"y" * (1024 * 1024)})
        assert server.address in str(info.value)
        assert store.get("small") == b"st"  # the commands before the refused one were applied
        assert store.append_many({"small": b"u"}) == [] and store.get("small") == b"stu"
    finally:
        store.close()


def test_linking_an_entry_under_its_dependencies_is_one_round_trip(memcached, monkeypatch):
    """An entry is linked under up to 24 dependency nodes when stored: pipelined appends, not
    one round trip each."""
    from pymemcache.client.base import Client

    from cachedeps.deps import DependencyTrees

    store = open_store(memcached.url + "?timeout=5")
    try:
        store.flush_all()
        trees = DependencyTrees(store, namespace="rt:")
        deps = [f"item:{i}" for i in range(24)]
        trees.link("d:rt:first", deps[:12])  # half the nodes exist, half are created
        calls = {"append": 0, "add": 0, "_store_cmd": 0}
        for name in calls:
            real = getattr(Client, name)

            def counted(self, *args, _real=real, _name=name, **kwargs):
                calls[_name] += 1
                return _real(self, *args, **kwargs)

            monkeypatch.setattr(Client, name, counted)
        trees.link("d:rt:second", deps)
        # one pipeline of 24 appends, one of the 12 adds for the nodes that did not exist
        assert calls == {"append": 0, "add": 0, "_store_cmd": 2}
        assert store.get(trees.node("item:0")).split() == [b"d:rt:first", b"d:rt:second"]
        assert store.get(trees.node("item:23")).split() == [b"d:rt:second"]
        store.set("d:rt:second", b"entry")
        assert trees.purge(["item:20"]) == 1 and store.get("d:rt:second") is None
    finally:
        store.close()
