"""Stamps and the feed's order (issue 9, breaks 9, 12, 13, 20): an entry never claims to be
newer than the reads it holds, and a feed going backwards resets to misses."""

from __future__ import annotations

import threading

import pytest

from cachedeps import Cache
from cachedeps.feed import SqlFeed

from ._support import write


def _in_thread(fn):
    t = threading.Thread(target=fn)
    t.start()
    t.join(10)
    assert not t.is_alive()


# -- 9: set(depends_on=) without tid -----------------------------------------------------------


def test_set_is_stamped_with_this_threads_poll_not_anothers(dictstore):
    cache = Cache(dictstore)
    cache.poll()
    value = "computed from book:1 as it is now"

    def other():  # another thread changes book:1 and polls, moving the process's position
        cache.invalidate("book:1")
        cache.poll()

    _in_thread(other)
    cache.set("page", value, depends_on=["book:1"])
    assert cache.get("page", None) is None


def test_set_inside_a_recording_is_stamped_when_it_began(dictstore):
    cache = Cache(dictstore)
    cache.poll()
    with cache.recording() as rec:
        cache.record("book:1")
        _in_thread(lambda: (cache.invalidate("book:1"), cache.poll()))
        cache.poll()  # even this thread's own later poll does not move the stamp
        cache.set("page", "old", depends_on=rec.keys)
    assert cache.get("page", None) is None
    assert rec.stamp is not None


def test_set_in_a_unit_is_stamped_at_the_units_first_poll(dictstore):
    from cachedeps.recording import unit

    cache = Cache(dictstore)
    with unit():
        cache.poll()
        _in_thread(lambda: (cache.invalidate("book:1"), cache.poll()))
        cache.poll()
        cache.set("page", "old", depends_on=["book:1"])
    assert cache.get("page", None) is None


def test_set_with_the_callers_stamp_and_without_changes_is_a_hit(dictstore):
    cache = Cache(dictstore)
    cache.poll()
    stamp = cache.current_tid
    _in_thread(lambda: (cache.invalidate("author:1"), cache.poll()))
    assert cache.set("page", "v", depends_on=["book:1"], tid=stamp)
    assert cache.get("page", None) == "v"


# -- 13: the SQL feed going backwards ------------------------------------------------------


def _restart_sqlite(conn, feed):
    conn.execute(f"DELETE FROM {feed.table}")
    conn.execute(f"UPDATE sqlite_sequence SET seq = 0 WHERE name = '{feed.table}'")
    conn.commit()


def test_sqlite_feed_emptied_and_renumbered_resets_to_misses(embedded, db):
    conn, feed = db
    cache = Cache(embedded, feed=feed)
    for i in range(5):
        write(conn, feed, [f"other:{i}"])
    cache.poll(conn)
    stamp = cache.current_tid
    assert cache.set("q", "old", depends_on=["book:1"], tid=stamp)
    _restart_sqlite(conn, feed)
    tid = write(conn, feed, ["book:1"])  # the change, numbered below every position
    assert tid <= stamp
    cache.poll(conn)
    assert cache.get("q", None) is None
    assert cache.current_tid > stamp
    later = write(conn, feed, ["book:2"])
    assert later > cache.current_tid  # the numbering was moved forward
    assert cache.set("q", "new", depends_on=["book:1"], tid=cache.current_tid)
    cache.poll(conn)
    assert cache.get("q", None) == "new"


def test_sqlite_feed_rows_deleted_is_incomplete(embedded, db):
    conn, feed = db
    cache = Cache(embedded, feed=feed)
    write(conn, feed, ["x:0"])
    cache.poll(conn)
    stamp = cache.current_tid
    assert cache.set("q", "old", depends_on=["book:1"], tid=stamp)
    write(conn, feed, ["book:1"])
    conn.execute(f"DELETE FROM {feed.table}")  # lost before this process polled it
    conn.commit()
    write(conn, feed, ["x:1"])
    cache.poll(conn)
    assert cache.get("q", None) is None


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["truncate", "setval"])
def test_postgres_feed_going_backwards_resets_to_misses(postgres_dsn, embedded, how):
    import psycopg

    feed = SqlFeed("postgresql", table="cachedeps_change_backwards")
    admin = psycopg.connect(postgres_dsn, autocommit=True)
    conn = psycopg.connect(postgres_dsn)
    try:
        admin.execute(f"DROP TABLE IF EXISTS {feed.table}")
        for stmt in feed.ddl():
            admin.execute(stmt)
        cache = Cache(embedded, feed=feed)
        for i in range(5):
            feed.append(conn, [f"other:{i}"])
            conn.commit()
        cache.poll(conn)
        conn.commit()
        stamp = cache.current_tid
        assert cache.set("q", "old", depends_on=["book:1"], tid=stamp)
        if how == "truncate":
            admin.execute(f"TRUNCATE {feed.table} RESTART IDENTITY")
        else:  # Django's reset_sequences, a restored backup's sequence
            admin.execute(f"DELETE FROM {feed.table}")
            admin.execute(f"SELECT setval(pg_get_serial_sequence('{feed.table}', 'tid'), 1, false)")
        tid = feed.append(conn, ["book:1"])
        conn.commit()
        assert tid <= stamp
        cache.poll(conn)
        conn.commit()
        assert cache.get("q", None) is None
        assert cache.current_tid > stamp
        later = feed.append(conn, ["book:2"])
        conn.commit()
        assert later > cache.current_tid
        assert cache.poll(conn) == later
        conn.commit()
    finally:
        conn.close()
        admin.execute(f"DROP TABLE IF EXISTS {feed.table}")
        admin.close()
