"""The engine's side of the dependency extension: detection and native trees over TCP."""

from __future__ import annotations

import pytest

from cachedeps.api import DependencyStore
from cachedeps.config import open_store
from cachedeps.store.served import MAX_LINE, ServedDependencies, detect_native_deps
from tests.conftest import free_port
from tests.server.conftest import exchange

pytest.importorskip("pymemcache")


@pytest.fixture
def remote(serve):
    store = open_store(f"memcache://{serve.address}")
    store.flush_all()
    yield store
    store.close()


def test_serve_is_detected_and_memcached_is_not(remote, memcached):
    assert detect_native_deps(remote)
    assert isinstance(remote, DependencyStore)
    plain = open_store(memcached.url)
    try:
        assert not detect_native_deps(plain)
        assert not isinstance(plain, DependencyStore)
    finally:
        plain.close()
    down = open_store(f"memcache://127.0.0.1:{free_port()}?connect_timeout=0.3&timeout=0.3")
    try:
        assert not detect_native_deps(down)
    finally:
        down.close()


def test_native_link_and_invalidate_over_tcp(remote):
    for key in ("q:1", "v:1", "unrelated"):
        remote.set(key, b"x")
    remote.link("t:book:1", ["q:1"])
    remote.link("q:1", ["v:1"])
    assert remote.invalidate(["t:book:1"]) == 2
    assert remote.get_many(["q:1", "v:1", "unrelated"]) == {"unrelated": b"x"}


def test_many_dependents_are_sent_in_several_lines(remote):
    deps = ServedDependencies(remote)
    children = [f"entry:{i:06d}:" + "x" * 80 for i in range(1500)]  # ~135 KB of keys
    assert sum(len(c) + 1 for c in children) > 2 * MAX_LINE
    for child in children[-50:]:  # the store keeps the newest 1000 links per parent
        remote.set(child, b"v")
    deps.link("parent", children)
    assert deps.invalidate(["parent"]) == 50
    assert deps.invalidate(children + ["parent"]) == 0


def test_engine_uses_native_trees_and_purges_on_the_server(remote, serve):
    from cachedeps.cache import Cache

    cache = Cache(remote)
    assert cache.stats()["native_trees"] is True
    cache.poll()
    cache.set("recent-books", [1, 2, 3], depends_on=["book:1"])
    assert cache.get("recent-books") == [1, 2, 3]
    assert b"recent-books" in exchange(serve.port, b"lru_crawler metadump all\r\n")
    cache.invalidate("book:1")
    cache.poll()
    # the entry was deleted in the server by cd_invalidate, not merely rejected on read
    assert b"recent-books" not in exchange(serve.port, b"lru_crawler metadump all\r\n")
    assert not cache.get("recent-books")
