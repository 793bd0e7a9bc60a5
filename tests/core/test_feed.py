"""The change feed: SqlFeed on SQLite and PostgreSQL, StoreFeed with gap detection."""

from __future__ import annotations

import threading
import time

import pytest

from cachedeps.errors import ConfigurationError, FeedError
from cachedeps.feed import PRUNED_PREFIX, RESTART_GAP, SqlFeed, StoreFeed, feed_key

from ._support import write


def test_sqlfeed_append_poll_head(db):
    conn, feed = db
    assert feed.head(conn) == 0
    assert feed.poll(conn, 0) == (0, [], True)
    t1 = write(conn, feed, ["book", "book:1"])
    t2 = write(conn, feed, ["book:2"])
    assert t2 > t1 and feed.head(conn) == t2
    p = feed.poll(conn, 0)
    assert p.complete and p.tid == t2
    assert [k for _, k in p.changes] == ["book", "book:1", "book:2"]
    assert [t for t, _ in p.changes] == sorted(t for t, _ in p.changes)
    assert feed.poll(conn, t1).changes == [(t2, "book:2")]
    assert feed.poll(conn, t2) == (t2, [], True)


def test_sqlfeed_append_rolled_back_leaves_nothing(db):
    conn, feed = db
    conn.execute("BEGIN")
    feed.append(conn, ["a:1"])
    conn.execute("ROLLBACK")
    assert feed.poll(conn, 0).changes == []


def test_sqlfeed_append_many_keys_in_chunks(db):
    conn, feed = db
    keys = [f"t:{i}" for i in range(1234)]
    tid = write(conn, feed, keys)
    p = feed.poll(conn, 0)
    assert [k for _, k in p.changes] == keys and p.tid == tid


def test_sqlfeed_cap_makes_poll_incomplete_with_true_head(db):
    conn, _ = db
    feed = SqlFeed("sqlite", max_rows=5)
    tid = write(conn, feed, [f"k:{i}" for i in range(6)])
    p = feed.poll(conn, 0)
    assert not p.complete and p.tid == tid
    assert feed.poll(conn, 1).complete


def test_sqlfeed_prune_marks_behind_pollers_incomplete(db):
    conn, feed = db
    tids = [write(conn, feed, [f"k:{i}"]) for i in range(10)]
    conn.execute("BEGIN IMMEDIATE")
    upto = feed.prune(conn, keep=3)
    conn.execute("COMMIT")
    assert upto == tids[6]
    behind = feed.poll(conn, tids[2])
    assert not behind.complete and behind.tid > tids[-1]
    current = feed.poll(conn, tids[8])
    assert current.complete and current.changes == [(tids[9], "k:9")]
    assert all(not k.startswith(PRUNED_PREFIX) for _, k in current.changes)


def test_sqlfeed_rejects_bad_configuration():
    with pytest.raises(ConfigurationError, match="dialect"):
        SqlFeed("oracle")
    with pytest.raises(ConfigurationError, match="table"):
        SqlFeed("sqlite", table="x; drop table y")


def test_sqlfeed_database_errors_propagate_unchanged_with_a_note(db):
    import sqlite3

    conn, _ = db
    with pytest.raises(sqlite3.OperationalError, match="nosuch") as info:
        SqlFeed("sqlite", table="nosuch").poll(conn, 0)
    assert not isinstance(info.value, FeedError)
    assert any("'nosuch'" in note and "create_feed_table" in note for note in info.value.__notes__)
    with pytest.raises(FeedError, match="at least one key"):
        SqlFeed("sqlite").append(conn, [])


def test_long_keys_are_digested_consistently(db):
    conn, feed = db
    long_key = "t.c=" + "é" * 200
    write(conn, feed, [long_key])
    (_, stored), = feed.poll(conn, 0).changes
    assert stored == feed_key(long_key) and len(stored.encode()) <= 255
    assert feed_key("short") == "short"


@pytest.mark.postgres
def test_postgres_late_commit_of_lower_tid_is_not_missed(postgres_dsn):
    """Two writers interleaved: the advisory lock keeps tids visible in increasing order."""
    import psycopg

    feed = SqlFeed("postgresql", table="cachedeps_change_feedtest")
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {feed.table}")
        for stmt in feed.ddl():
            admin.execute(stmt)
    a = psycopg.connect(postgres_dsn)
    b = psycopg.connect(postgres_dsn)
    poller = psycopg.connect(postgres_dsn, autocommit=True)
    try:
        tid_a = feed.append(a, ["x:1"])  # A holds the lock, uncommitted
        got: dict[str, int] = {}
        tb = threading.Thread(target=lambda: got.setdefault("b", feed.append(b, ["x:2"])))
        tb.start()
        time.sleep(0.3)
        assert "b" not in got, "B must wait for A's transaction to end"
        seen = feed.poll(poller, 0)
        assert seen.changes == []
        a.commit()
        tb.join(5)
        assert got["b"] > tid_a
        mid = feed.poll(poller, 0)
        assert mid.changes == [(tid_a, "x:1")]
        b.commit()
        end = feed.poll(poller, mid.tid)
        assert end.changes == [(got["b"], "x:2")]
    finally:
        for c in (a, b, poller):
            c.close()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {feed.table}")


# -- StoreFeed -------------------------------------------------------------------------------


def test_storefeed_append_and_poll(dictstore):
    feed = StoreFeed(dictstore, namespace="n:")
    head = feed.head(None)
    assert head > 1_000_000_000_000_000  # time-based start (microseconds)
    t1 = feed.append(None, ["a", "b"])
    t2 = feed.append(None, ["c"])
    assert t1 == head + 1 and t2 == head + 2
    p = feed.poll(None, head)
    assert p == (t2, [(t1, "a"), (t1, "b"), (t2, "c")], True)
    assert feed.poll(None, t2) == (t2, [], True)


def test_storefeed_lost_entry_is_a_gap_after_grace(dictstore):
    feed = StoreFeed(dictstore, grace=0.05)
    head = feed.head(None)
    t1 = feed.append(None, ["a"])
    t2 = feed.append(None, ["b"])
    dictstore.delete(f"feed:{t1}")
    early = feed.poll(None, head)
    # maybe an invalidation in progress: position held before it, later entries applied
    assert early.complete and early.tid == head and early.changes == [(t2, "b")]
    time.sleep(0.08)
    late = feed.poll(None, head)
    assert not late.complete and late.tid == t2


def test_storefeed_flush_or_counter_reset_is_a_gap(dictstore):
    feed = StoreFeed(dictstore)
    t1 = feed.append(None, ["a"])
    dictstore.flush_all()
    p = feed.poll(None, t1)
    # a re-created counter starts at the current time in microseconds: never behind, but
    # the entries between are gone
    assert p.tid >= t1
    dictstore.set("feed:tid", b"5")
    p = feed.poll(None, t1)
    assert not p.complete and p.tid >= t1 + RESTART_GAP  # moved forward, never behind
    assert feed.append(None, ["b"]) > p.tid


def test_storefeed_recreated_by_a_process_whose_clock_is_behind(dictstore, monkeypatch):
    """The counter is lost with a store restart and recreated by a process whose clock is a
    day behind: the cache resets to misses and the write is seen, whatever the clocks."""
    from cachedeps import Cache

    ahead = Cache(dictstore, feed=StoreFeed(dictstore))
    ahead.poll()
    stamp = ahead.current_tid
    assert ahead.set("q", "old value", depends_on=["book:1"], tid=stamp)
    dictstore.delete("feed:tid")  # the server holding the counter restarted
    behind = Cache(dictstore, feed=StoreFeed(dictstore))
    day = 86_400
    monkeypatch.setattr("cachedeps.feed.time.time", lambda: stamp / 1_000_000 - day)
    behind.invalidate("book:1")
    monkeypatch.undo()
    ahead.poll()
    assert ahead.get("q", None) is None
    assert ahead.current_tid > stamp
    ahead.set("q", "new value", depends_on=["book:1"])
    behind.invalidate("book:1")  # tids now above every stamp given before
    ahead.poll()
    assert ahead.get("q", None) is None


def test_storefeed_too_many_entries_is_incomplete(dictstore):
    feed = StoreFeed(dictstore, max_entries=3)
    head = feed.head(None)
    for i in range(5):
        feed.append(None, [f"k{i}"])
    assert not feed.poll(None, head).complete
    assert feed.poll(None, head + 2).complete


def test_storefeed_own_invalidation_on_a_counter_recreated_behind_is_seen_at_once(dictstore, monkeypatch):
    from cachedeps import Cache

    cache = Cache(dictstore, feed=StoreFeed(dictstore), trees=False)  # validity from the maps alone
    cache.poll()
    stamp = cache.current_tid
    assert cache.set("q", "old value", depends_on=["book:1"], tid=stamp)
    dictstore.delete("feed:tid")
    monkeypatch.setattr("cachedeps.feed.time.time", lambda: stamp / 1_000_000 - 3600)
    StoreFeed(dictstore).head(None)  # another process, an hour behind, recreates the counter
    monkeypatch.undo()
    cache.invalidate("book:1")  # a tid below this process's position
    assert cache.get("q", None) is None  # read-your-writes without waiting for a poll
