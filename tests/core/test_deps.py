"""Dependency trees, native (embedded store) and emulated (append/get_many/delete)."""

from __future__ import annotations

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.deps import DependencyTrees

from ._support import write


@pytest.fixture(params=["native", "emulated"])
def store(request, embedded, dictstore):
    return embedded if request.param == "native" else dictstore


def test_purge_walks_view_fragment_query(store, db):
    conn, feed = db
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    cache.set("query", [1], depends_on=["book.author_id=7"])
    with cache.recording() as rec:
        assert cache.get("query") == [1]
    cache.set("frag", "<li>1</li>", depends_on=rec.keys)
    with cache.recording() as rec:
        assert cache.get("frag")
    cache.set("view", "<ul>", depends_on=[*rec.keys, "page"])
    cache.set("other", "x", depends_on=["author:1"])
    write(conn, feed, ["book", "book:1", "book.author_id=7"], cache=cache)
    for key in ("d:query", "d:frag", "d:view"):
        assert store.get(key) is None, key
    assert store.get("d:other") is not None


def test_table_wide_write_purges_row_dependents(store, db):
    conn, feed = db
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    cache.set("row", 1, depends_on=["book:1"])
    write(conn, feed, ["book:*"], cache=cache)
    assert store.get("d:row") is None


def test_emulated_purge_voids_leases_and_bounds_nodes(dictstore):
    trees = DependencyTrees(dictstore, max_node_bytes=200)
    assert not trees.native
    dictstore.set("d:a", b"1")
    dictstore.set("l:a", b"token")
    trees.link("d:a", ["k:1"])
    assert trees.purge(["k:1"]) == 1
    assert dictstore.get("d:a") is None and dictstore.get("l:a") is None
    for i in range(2000):
        trees.link(f"d:e{i}", ["hot"])
    node = dictstore.get(trees.node("hot"))
    assert node is None or len(node) < 200 + 40 * 64


def test_lost_tree_node_costs_no_correctness(dictstore, db):
    conn, feed = db
    cache = Cache(dictstore, feed=feed)
    cache.poll(conn)
    cache.set("q", 1, depends_on=["book:1"])
    dictstore.delete("t:book:1")  # evicted tree node
    write(conn, feed, ["book:1"], cache=cache)
    assert dictstore.get("d:q") is not None  # not purged ...
    assert cache.get("q") is NO_VALUE  # ... but never served


def test_emulated_links_per_entry_are_capped_sources_first(dictstore):
    from cachedeps.deps import MAX_EMULATED_LINKS

    trees = DependencyTrees(dictstore)
    writes = []
    original = dictstore.append

    def counted(key, value):
        writes.append(key)
        return original(key, value)

    dictstore.append = counted
    deps = [f"book:{i}" for i in range(100)]
    dictstore.set("d:page", b"1")
    trees.link("d:page", deps, ["d:fragment"])
    assert len(writes) == MAX_EMULATED_LINKS  # one round trip per link on memcached, bounded
    assert writes[0] == trees.ref_node("d:fragment")  # the entries it was built from come first
    assert trees.purge(["book:0"]) == 1  # linked keys still purge it
    dictstore.set("d:page", b"1")
    trees.link("d:page", deps)
    assert trees.purge([deps[-1]]) == 0  # past the cap: freed by LRU or timeout, never stale
