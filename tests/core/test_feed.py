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


# -- MariaDB/MySQL ---------------------------------------------------------------------------


@pytest.fixture
def mysql_feed(mysql_url):
    """A fresh MySQL-dialect feed table in the test MariaDB: ``(feed, connect)``."""
    from tests.conftest import mysql_connect

    feed = SqlFeed("mysql", table="cachedeps_change_feedtest")
    admin = mysql_connect(autocommit=True)
    cur = admin.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {feed.table}, {feed.lock_table}")
    for stmt in feed.ddl() + feed.ddl():  # idempotent
        cur.execute(stmt)
    opened = [admin]

    def connect(autocommit: bool = False):
        conn = mysql_connect(autocommit=autocommit)
        opened.append(conn)
        return conn

    yield feed, connect
    for conn in opened[1:]:
        conn.close()
    cur.execute(f"DROP TABLE IF EXISTS {feed.table}, {feed.lock_table}")
    admin.close()


@pytest.mark.mysql
def test_mysql_append_poll_prune(mysql_feed):
    feed, connect = mysql_feed
    conn = connect()
    assert feed.head(conn) == 0 and feed.poll(conn, 0) == (0, [], True)
    t1 = feed.append(conn, ["book", "book:1", "book.title=Dune"])
    conn.commit()
    keys = [f"t:{i}" for i in range(1234)] + ["t.c=" + "é" * 200]
    t2 = feed.append(conn, keys)
    conn.commit()
    p = feed.poll(conn, 0)
    assert p.complete and p.tid == t2 > t1
    assert [k for _, k in p.changes] == ["book", "book:1", "book.title=Dune", *keys[:-1], feed_key(keys[-1])]
    assert feed.poll(conn, t1).changes[0][1] == "t:0"
    feed.append(conn, ["rolled:back"])
    conn.rollback()
    assert feed.poll(conn, t2) == (t2, [], True)
    upto = feed.prune(conn, keep=10)
    conn.commit()
    assert not feed.poll(conn, t1).complete  # behind the pruned tid: a reset, never stale
    assert feed.poll(conn, t2).complete


@pytest.mark.mysql
@pytest.mark.parametrize("autocommit_poller", [True, False])
def test_mysql_late_commit_of_lower_tid_is_not_missed(mysql_feed, autocommit_poller):
    """Writers interleaved on three connections: the lock row keeps tids visible in order.

    A takes its tids and holds the lock row; B's append waits for A's COMMIT (without the
    lock B would take a higher tid and could commit first, and a poller that saw B's tid
    would never look below it again).
    """
    feed, connect = mysql_feed
    a, b, poller = connect(), connect(), connect(autocommit=autocommit_poller)
    tid_a = feed.append(a, ["x:1"])  # A holds the lock, uncommitted
    got: dict[str, int] = {}
    tb = threading.Thread(target=lambda: got.setdefault("b", feed.append(b, ["x:2"])))
    tb.start()
    time.sleep(0.3)
    assert "b" not in got, "B must wait for A's transaction to end"

    def poll(after):
        p = feed.poll(poller, after)
        if not autocommit_poller:
            poller.commit()
        return p

    assert poll(0).changes == []
    a.commit()
    tb.join(5)
    assert got["b"] > tid_a
    mid = poll(0)
    assert mid.changes == [(tid_a, "x:1")]
    b.commit()
    end = poll(mid.tid)
    assert end.changes == [(got["b"], "x:2")] and end.complete


class _Counting:
    """A DB-API connection proxy counting the statements its cursors run."""

    def __init__(self, conn):
        self.conn, self.statements = conn, []

    def cursor(self):
        cur, statements = self.conn.cursor(), self.statements

        class Cursor:
            def execute(self, sql, params=()):
                statements.append(sql)
                return cur.execute(sql, params)

            def __getattr__(self, name):
                return getattr(cur, name)

        return Cursor()


@pytest.mark.mysql
def test_mysql_poll_is_one_query_while_the_row_at_its_position_stands(mysql_feed):
    feed, connect = mysql_feed
    conn = connect(autocommit=True)
    tid = feed.append(conn, ["a:1"])
    counted = _Counting(conn)
    feed.head(counted)
    counted.statements.clear()
    assert feed.poll(counted, tid) == (tid, [], True)
    assert len(counted.statements) == 1 and "information_schema" not in counted.statements[0]


@pytest.mark.mysql
def test_mysql_lock_row_is_recreated_when_missing(mysql_feed):
    feed, connect = mysql_feed
    a, b = connect(), connect()
    cur = a.cursor()
    cur.execute(f"DELETE FROM {feed.lock_table}")
    a.commit()
    feed.append(a, ["y:1"])  # upserts the lock row, and holds it
    got: dict[str, int] = {}
    tb = threading.Thread(target=lambda: got.setdefault("b", feed.append(b, ["y:2"])))
    tb.start()
    time.sleep(0.3)
    assert "b" not in got
    a.commit()
    tb.join(5)
    b.commit()
    assert "b" in got


@pytest.mark.mysql
@pytest.mark.parametrize("how", ["truncate", "recreate"])
def test_mysql_feed_going_backwards_resets_to_misses(mysql_feed, embedded, how):
    from cachedeps.cache import Cache

    feed, connect = mysql_feed
    conn, admin = connect(), connect(autocommit=True)
    cache = Cache(embedded, feed=feed)
    for i in range(5):
        feed.append(conn, [f"other:{i}"])
        conn.commit()
    cache.poll(conn)
    conn.commit()
    stamp = cache.current_tid
    assert cache.set("q", "old", depends_on=["book:1"], tid=stamp)
    cur = admin.cursor()
    if how == "truncate":  # TRUNCATE resets AUTO_INCREMENT
        cur.execute(f"TRUNCATE TABLE {feed.table}")
    else:  # a restored backup / a re-run migration
        cur.execute(f"DROP TABLE {feed.table}")
        for stmt in feed.ddl():
            cur.execute(stmt)
    tid = feed.append(conn, ["book:1"])
    conn.commit()
    assert tid <= stamp
    cache.poll(conn)
    conn.commit()
    assert cache.get("q", None) is None
    assert cache.current_tid > stamp
    later = feed.append(conn, ["book:2"])
    conn.commit()
    assert later > cache.current_tid  # the numbering was moved forward
    assert cache.set("q", "new", depends_on=["book:1"], tid=cache.current_tid)
    assert cache.poll(conn) == later
    conn.commit()
    assert cache.get("q", None) == "new"
    # A poller still behind the restart position resets too.
    assert feed.poll(conn, stamp).complete is False
    conn.commit()


@pytest.mark.mysql
def test_mysql_rows_deleted_by_hand_is_incomplete(mysql_feed):
    feed, connect = mysql_feed
    conn, admin = connect(), connect(autocommit=True)
    t0 = feed.append(conn, ["x:0"])
    conn.commit()
    feed.append(conn, ["book:1"])
    conn.commit()
    admin.cursor().execute(f"DELETE FROM {feed.table}")
    feed.append(conn, ["x:1"])
    conn.commit()
    p = feed.poll(conn, t0)
    conn.commit()
    assert not p.complete and p.tid > t0


@pytest.mark.mysql
def test_mysql_database_errors_propagate_unchanged(mysql_feed):
    feed, connect = mysql_feed
    conn = connect()
    with pytest.raises(Exception, match="nosuch") as info:
        SqlFeed("mysql", table="nosuch").poll(conn, 0)
    assert not isinstance(info.value, FeedError)
    assert any("'nosuch'" in note for note in info.value.__notes__)


def test_mysql_dialect_spellings():
    feed = SqlFeed("mariadb")
    assert feed.dialect == "mysql" and feed.paramstyle == "format"
    assert "`key` VARCHAR(255)" in feed.ddl()[0] and "BIGINT AUTO_INCREMENT PRIMARY KEY" in feed.ddl()[0]
    assert feed.lock_sql().startswith("INSERT INTO cachedeps_change_lock")
    with pytest.raises(ConfigurationError, match="59"):
        SqlFeed("mysql", table="t" * 60)


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
