"""The embedded store: the conformance suite plus what only an in-process store can show."""

from __future__ import annotations

import threading
import time

import pytest

from cachedeps.api import DependencyStore, Store
from cachedeps.errors import ConfigurationError, ValueTooLarge
from cachedeps.store.embedded import ITEM_OVERHEAD, EmbeddedStore
from cachedeps.testing import StoreConformance


class TestEmbeddedConformance(StoreConformance):
    short_expire = 0.3
    expire_wait = 0.5

    @pytest.fixture
    def store(self):
        store = EmbeddedStore("conformance")
        yield store
        store.close()

    @pytest.fixture
    def small_store(self):
        store = EmbeddedStore("small", max_memory=2 * 2**20)
        yield store
        store.close()


@pytest.fixture
def store():
    store = EmbeddedStore("unit", sweep_interval=0.05)
    yield store
    store.close()


def test_implements_both_contracts(store):
    assert isinstance(store, Store)
    assert isinstance(store, DependencyStore)


def test_cas_ids_never_reused_across_delete_and_readd(store):
    seen = set()
    for value in (b"A", b"B", b"A", b"B", b"A"):
        store.set("k", value)
        seen.add(store.gets("k")[1])
        store.delete("k")
    store.add("k", b"A")
    token = store.gets("k")[1]
    assert token not in seen and len(seen) == 5
    # A token taken before a delete and re-add of the same bytes must not match (no ABA).
    store.delete("k")
    store.set("k", b"A")
    assert store.cas("k", b"C", token) is False


def test_explicit_cas_id_keeps_ids_increasing(store):
    status, cas = store.store_item("set", "k", b"v", cas_id=10_000)
    assert (status, cas) == ("STORED", 10_000)
    assert store.gets("k")[1] == 10_000
    store.set("other", b"v")
    assert store.gets("other")[1] > 10_000


def test_store_item_statuses(store):
    assert store.store_item("set", "k", b"v", compare_cas=1) == ("NOT_FOUND", 0)
    _, cas = store.store_item("set", "k", b"v")
    assert store.store_item("append", "k", b"w", compare_cas=cas + 99) == ("EXISTS", cas)
    status, new_cas = store.store_item("append", "k", b"w", compare_cas=cas)
    assert status == "STORED" and new_cas > cas and store.get("k") == b"vw"
    assert store.store_item("add", "k", b"x")[0] == "NOT_STORED"
    assert store.delete_item("k", compare_cas=cas) == "EXISTS"
    assert store.delete_item("k", compare_cas=new_cas) == "DELETED"
    assert store.delete_item("k") == "NOT_FOUND"


def test_gat_returns_item_and_changes_expiry(store):
    store.set("k", b"v", flags=7, expire=0.2)
    item = store.gat("k", 3600)
    assert item is not None and (item.value, item.flags) == (b"v", 7)
    time.sleep(0.3)
    assert store.get("k") == b"v"
    assert store.gat("missing", 10) is None


def test_write_under_headroom_never_waits_for_eviction():
    limit = 2 * 2**20
    store = EmbeddedStore("marks", max_memory=limit, low_water=0.5, high_water=0.8, background=False)
    try:
        small = b"s" * 100
        i = 0
        while store.stats()["bytes"] < 0.79 * limit:
            store.set(f"small:{i}", small)
            i += 1
        evictions = store.stats()["evictions"]
        headroom = limit - int(limit * 0.8) - ITEM_OVERHEAD - 10
        store.set("big", b"b" * headroom)
        assert store.get("big") is not None
        # The writer trimmed synchronously to the high mark only; nothing was refused.
        assert store.stats()["bytes"] <= limit
        assert store.stats()["evictions"] >= evictions
    finally:
        store.close()


def test_writer_evicts_to_high_mark_and_sweeper_to_low_mark():
    limit = 2**20
    store = EmbeddedStore("sweep", max_memory=limit, low_water=0.5, high_water=0.9, sweep_interval=0.05)
    try:
        for i in range(2000):
            store.set(f"w:{i}", b"x" * 1000)
            assert store.stats()["bytes"] <= 0.9 * limit
        deadline = time.monotonic() + 2
        while store.stats()["bytes"] > 0.5 * limit and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.stats()["bytes"] <= 0.5 * limit
        assert store.get("w:1999") is not None
        assert store.prefix_stats()["w"]["evictions"] > 0
    finally:
        store.close()


def test_value_too_large_names_key_size_and_limit(store):
    with pytest.raises(ValueTooLarge) as info:
        store.set("big:key", b"x" * (2**20 + 1))
    message = str(info.value)
    assert "'big:key'" in message and str(2**20) in message
    small = EmbeddedStore("tiny", item_max=1000)
    try:
        with pytest.raises(ValueTooLarge):
            small.set("k", b"x" * 1000)
        small.set("k", b"x" * 500)
    finally:
        small.close()


def test_set_memory_limit_evicts(store):
    for i in range(100):
        store.set(f"m:{i}", b"x" * 10_000)
    store.set_memory_limit(200_000)
    assert store.stats()["bytes"] <= 200_000
    assert store.stats()["limit_maxbytes"] == 200_000
    assert store.stats_settings()["maxbytes"] == 200_000


def test_background_expiry_frees_memory_without_access(store):
    store.set("e:1", b"x" * 1000, expire=0.1)
    store.set("e:2", b"x" * 1000)
    deadline = time.monotonic() + 2
    while len(store) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(store) == 1
    stats = store.stats()
    assert stats["expired_unfetched"] == 1 and stats["curr_items"] == 1


def test_flush_all_with_delay(store):
    store.set("f", b"v")
    store.flush_all(0.2)
    assert store.get("f") == b"v"
    time.sleep(0.3)
    assert store.get("f") is None
    store.set("f", b"new")
    assert store.get("f") == b"new"


def test_prefix_stats(store):
    store.set("user:1", b"abc")
    store.set("user:2", b"abcdef")
    store.set("page:1", b"x")
    store.set("bare", b"x")
    store.get("user:1")
    store.get("user:3")
    figures = store.prefix_stats()
    assert figures["user"] == {"items": 2, "bytes": 2 * (6 + ITEM_OVERHEAD) + 9, "hits": 1,
                               "misses": 1, "evictions": 0}
    assert figures["page"]["items"] == 1 and figures[""]["items"] == 1


def test_stats_counters(store):
    store.set("a", b"1")
    store.get("a")
    store.get("b")
    store.incr("a")
    store.incr("b")
    store.delete("a")
    store.touch("a", 1)
    stats = store.stats()
    assert (stats["get_hits"], stats["get_misses"], stats["cmd_get"]) == (1, 1, 2)
    assert (stats["incr_hits"], stats["incr_misses"]) == (1, 1)
    assert (stats["delete_hits"], stats["touch_misses"]) == (1, 1)
    assert stats["curr_items"] == 0 and stats["total_items"] == 2


def test_items_snapshot_for_metadump(store):
    before = int(time.time())
    store.set("a", b"123", flags=9, expire=100)
    store.set("b", b"4")
    store.get("b")
    infos = {info.key: info for info in store.items_snapshot()}
    assert set(infos) == {"a", "b"}
    a = infos["a"]
    assert a.flags == 9 and a.size == 1 + 3 + ITEM_OVERHEAD and a.cas == store.gets("a")[1]
    assert before + 98 <= a.exptime <= before + 102 and a.fetched is False
    assert infos["b"].exptime == 0 and infos["b"].fetched is True
    assert abs(infos["b"].last_access - before) <= 2


def test_fold_sees_every_item_while_others_write(store):
    for i in range(1500):
        store.set(f"f:{i}", b"%d" % i)
    stop = threading.Event()

    def writer():
        j = 0
        while not stop.is_set():
            store.set(f"g:{j}", b"x")
            j += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        total = store.fold(lambda acc, key, item: acc + (int(item.value) if key.startswith("f:") else 0), 0)
    finally:
        stop.set()
        thread.join()
    assert total == sum(range(1500))


def test_readers_not_blocked_during_fold(store):
    for i in range(2000):
        store.set(f"r:{i}", b"v")
    paused = threading.Event()
    proceed = threading.Event()

    def pause_once(acc, key, item):
        if acc == 1000:
            paused.set()
            assert proceed.wait(5)
        return acc + 1

    result = []
    thread = threading.Thread(target=lambda: result.append(store.fold(pause_once, 0)))
    thread.start()
    assert paused.wait(5)
    # The fold is half-way through; readers and writers must not wait for it.
    done = threading.Event()

    def reader():
        for _ in range(100):
            assert store.get("r:5") == b"v"
            store.set("r:new", b"v")
        done.set()

    threading.Thread(target=reader).start()
    assert done.wait(5), "readers were blocked by a fold in progress"
    proceed.set()
    thread.join()
    assert result[0] >= 2000


def test_invalidate_is_recursive_and_survives_cycles(store):
    for key in ("view:1", "frag:1", "query:1", "query:2", "other"):
        store.set(key, b"v")
    store.link("book:1", ["query:1", "query:2"])
    store.link("query:1", ["frag:1"])
    store.link("frag:1", ["view:1", "book:1"])  # a cycle back to the root
    assert store.invalidate(["book:1"]) == 4
    assert store.get_many(["view:1", "frag:1", "query:1", "query:2", "other"]) == {"other": b"v"}
    assert store.dependents("book:1") == []
    assert store.invalidate(["book:1"]) == 0


def test_link_expires_with_its_dependents(store):
    store.set("q", b"v")
    store.link("t", ["q"], expire=0.1)
    time.sleep(0.2)
    store.set("q", b"v2")
    assert store.invalidate(["t"]) == 0
    assert store.get("q") == b"v2"


def test_dependents_are_bounded():
    store = EmbeddedStore("bounded", max_dependents=10, max_dependency_keys=5, background=False)
    try:
        store.link("p", [f"c:{i}" for i in range(25)])
        assert store.dependents("p") == [f"c:{i}" for i in range(15, 25)]
        for i in range(10):
            store.link(f"parent:{i}", ["x"])
        stats = store.stats()
        assert stats["dependency_keys"] == 5
        assert stats["dependency_links_dropped"] == 15 and stats["dependency_keys_dropped"] == 6
    finally:
        store.close()


def test_bad_water_marks_rejected():
    with pytest.raises(ConfigurationError, match="low_water"):
        EmbeddedStore("bad", low_water=0.9, high_water=0.5)
