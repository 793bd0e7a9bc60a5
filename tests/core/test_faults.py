"""A store that is down costs hits, never correctness, and is logged once per interval."""

from __future__ import annotations

import logging

from cachedeps import NO_VALUE
from cachedeps.cache import Cache

from ._support import write


def test_store_down_reads_miss_writes_noop_and_one_warning(dictstore, db, caplog):
    conn, feed = db
    cache = Cache(dictstore, feed=feed)
    cache.poll(conn)
    cache.set("q", 1, depends_on=["b:1"])
    dictstore.down = True
    with caplog.at_level(logging.WARNING, logger="cachedeps"):
        assert cache.get("q") is NO_VALUE
        assert cache.get_state("b:1") is NO_VALUE
        assert not cache.set("q", 2, depends_on=["b:1"])
        assert not cache.set_state("b:1", 2)
        assert cache.get_or_compute("q", lambda: 3) == 3
        assert cache.load_state("b:2", lambda: "row") == "row"
        cache.delete("q")
        write(conn, feed, ["b:1"], cache=cache)  # committed(): purge fails quietly
        cache.poll(conn)  # checkpoint sync fails quietly
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert "dict://test" in warnings[0].getMessage() and "database" in warnings[0].getMessage()
    assert cache.stats()["store_errors"] >= 8
    dictstore.down = False
    assert cache.get("q") is NO_VALUE  # the write while down still counts
    cache.set("q", 4, depends_on=["b:1"])
    assert cache.get("q") == 4


def test_store_feed_unreadable_means_blind_then_rebuilt(dictstore):
    a = Cache(dictstore)
    b = Cache(dictstore)
    a.poll()
    b.poll()
    a.set("q", 1, depends_on=["k:1"])
    dictstore.down = True
    b.poll()  # cannot read the feed: nothing can be proven current
    dictstore.down = False
    assert b.get("q") is NO_VALUE
    a.invalidate("other:1")
    b.poll()  # rebuilt from the shared checkpoints: the feed proves k:1 did not change
    assert b.get("q") == 1
    a.invalidate("k:1")
    b.poll()
    assert b.get("q") is NO_VALUE


def test_flushed_store_with_store_feed_never_serves_stale(dictstore):
    a = Cache(dictstore)
    b = Cache(dictstore)
    a.poll()
    b.poll()
    dictstore.flush_all()
    a.set("q", "old", depends_on=["k:1"])  # filled after the flush
    a.invalidate("k:1")  # counter re-created at a time-based start
    b.poll()
    assert b.get("q") is NO_VALUE
