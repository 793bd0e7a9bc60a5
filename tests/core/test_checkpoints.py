"""Delta maps and shared checkpoints: shifts, adoption, resets, bounded memory."""

from __future__ import annotations

import tracemalloc

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.checkpoints import DeltaMaps, decode_checkpoints, encode_checkpoints

from ._support import write


def test_validation_rules():
    m = DeltaMaps()
    assert not m.valid(5, ["a"])  # blind until the first poll
    m.reset(10)
    m.apply([(11, "a"), (12, "t:*"), (13, "b")], 13)
    assert m.current_tid == 13
    assert m.valid(10, ["c"]) and not m.valid(9, ["c"])  # below the horizon
    assert not m.valid(10, ["a"]) and m.valid(11, ["a"])
    assert m.last_change("t:5") == 12 and m.last_change("a") == 11 and m.last_change("zz") == 0
    assert m.newest(["a", "b"]) == 13


def test_commit_recorded_locally_then_settled_to_polled_row_tids():
    m = DeltaMaps()
    m.reset(0)
    m.record(["a", "b"], 2)  # this process's commit; rows got tids 1 and 2
    assert not m.valid(1, ["a"]) and m.current_tid == 0
    m.apply([(1, "a"), (2, "b")], 2)
    assert m.last_change("a") == 1 and m.last_change("b") == 2
    m.record(["a"], 2)  # already polled: nothing to do
    assert m.last_change("a") == 1


def test_shift_and_adopt_keep_every_change_after_the_horizon():
    m = DeltaMaps(max_delta=3)
    m.reset(0)
    m.apply([(1, "a"), (2, "b"), (3, "c"), (4, "d")], 4)
    assert m.needs_shift()
    assert m.adopt(*m.shifted())  # cp0=4, cp1=0
    assert (m.view.cp0, m.view.cp1) == (4, 0) and m.last_change("a") == 1
    m.apply([(5, "e")], 5)
    assert m.adopt(5, 4)
    assert m.last_change("a") == 0 and m.last_change("e") == 5
    assert not m.valid(3, ["x"]) and m.valid(4, ["x"])
    assert not m.adopt(3, 1)  # behind the horizon: would need a poll


def test_checkpoint_encoding_rejects_garbage():
    assert decode_checkpoints(encode_checkpoints(7, 3)) == (7, 3)
    for raw in (None, b"", b"x y", b"1", b"3 7", b"1 2 3"):
        assert decode_checkpoints(raw) is None


def _fill(conn, feed, cache, n, prefix="k"):
    for i in range(n):
        write(conn, feed, [f"{prefix}:{i}"])
    return cache.poll(conn)


def test_shift_makes_old_entries_misses_never_stale(db, embedded):
    conn, feed = db
    c = Cache(embedded, feed=feed, max_delta=10)
    c.poll(conn)
    c.set("old", 1, depends_on=["x:1"])
    c.set_state("x:1", {"v": 1})
    _fill(conn, feed, c, 30)
    assert c.stats()["checkpoint_shifts"] >= 1
    assert c.maps.horizon > 0
    assert c.get("old") is NO_VALUE  # stamped before the horizon
    assert c.maps.size() <= 2 * 11 + 1
    c.set("new", 2, depends_on=["x:1"])
    assert c.get("new") == 2
    cp0, cp1 = decode_checkpoints(embedded.get("cp:"))
    assert (cp0, cp1) == (c.maps.view.cp0, c.maps.view.cp1)


def test_a_process_started_later_hits_entries_computed_before(db, embedded):
    conn, feed = db
    first = Cache(embedded, feed=feed, max_delta=1000)
    first.poll(conn)
    _fill(conn, feed, first, 5)
    first.set("q", "v", depends_on=["x:1"])
    first.load_state("x:2", lambda: "s")
    _fill(conn, feed, first, 3, prefix="y")
    later = Cache(embedded, feed=feed, max_delta=1000)
    later.poll(conn)
    assert later.get("q") == "v"
    assert later.get_state("x:2") == "s"
    write(conn, feed, ["x:1"])
    later.poll(conn)
    assert later.get("q") is NO_VALUE


def test_processes_adopt_shared_checkpoints(db, embedded):
    conn, feed = db
    a = Cache(embedded, feed=feed, max_delta=10, checkpoint_interval=0)
    b = Cache(embedded, feed=feed, max_delta=10_000, checkpoint_interval=0)
    a.poll(conn)
    b.poll(conn)
    _fill(conn, feed, a, 40)
    b.poll(conn)
    assert (b.maps.view.cp0, b.maps.view.cp1) == (a.maps.view.cp0, a.maps.view.cp1)
    assert b.stats()["checkpoint_adoptions"] >= 1
    b.set("q", 1, depends_on=["k:1"])
    assert a.get("q") == 1


def test_pruned_feed_resets_a_poller_that_fell_behind(db, embedded):
    conn, feed = db
    slow = Cache(embedded, feed=feed)
    slow.poll(conn)
    slow.set("q", 1, depends_on=["k:0"])
    for i in range(10):
        write(conn, feed, [f"k:{i}"])
    conn.execute("BEGIN IMMEDIATE")
    feed.prune(conn, keep=2)
    conn.execute("COMMIT")
    slow.poll(conn)
    assert slow.stats()["resets"] == 1
    assert slow.get("q") is NO_VALUE
    slow.set("q", 2, depends_on=["k:0"])
    assert slow.get("q") == 2


def test_shared_checkpoints_beyond_the_pruned_feed_mean_a_fresh_start(db, embedded):
    conn, feed = db
    a = Cache(embedded, feed=feed)
    a.poll(conn)
    a.set("q", 1, depends_on=["k:0"])
    for i in range(5):
        write(conn, feed, [f"k:{i}"])
    conn.execute("BEGIN IMMEDIATE")
    feed.prune(conn, keep=1)
    conn.execute("COMMIT")
    late = Cache(embedded, feed=feed)
    late.poll(conn)
    assert late.stats()["resets"] == 1 and late.get("q") is NO_VALUE


@pytest.mark.parametrize("max_delta", [1000])
def test_delta_maps_memory_is_bounded(max_delta):
    m = DeltaMaps(max_delta=max_delta)
    m.reset(0)
    tracemalloc.start()
    try:
        tid = 0
        for batch in range(50):
            changes = [(tid + i + 1, f"table.column={tid + i}") for i in range(200)]
            tid += 200
            m.apply(changes, tid)
            if m.needs_shift():
                m.adopt(*m.shifted())
            assert m.size() <= 2 * int(max_delta * 1.1) + 200
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 2 * max_delta * 400  # ~2x max_delta keys, a few hundred bytes each
