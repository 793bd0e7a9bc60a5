"""Shared polls: when a request may use a poll it did not run (cachedeps.pollshare, Cache.poll)."""

from __future__ import annotations

import os
import stat
import threading
import uuid

import pytest

from cachedeps.cache import Cache
from cachedeps.feed import ExactPoll, SqlFeed
from cachedeps.pollshare import PollSlot, slot_path
from cachedeps.work import unit_of_work

from ._support import pg_feed_table


def test_slot_keeps_the_newest_poll_and_is_private(tmp_path):
    slot = PollSlot("x", path=str(tmp_path / "slot"))
    assert slot.read() == (0, 0)
    slot.publish(10, 5)
    slot.publish(8, 3)  # sent earlier: not kept
    assert slot.read() == (10, 5)
    assert slot.covers(9, 5) and not slot.covers(10, 5) and not slot.covers(9, 4)
    assert stat.S_IMODE(os.stat(tmp_path / "slot").st_mode) == 0o600
    other = PollSlot("x", path=str(tmp_path / "slot"))  # another process opening the same slot
    assert other.read() == (10, 5)
    slot.close()
    other.close()


def test_slot_paths_differ_by_feed():
    assert slot_path("db1\0cachedeps_change") != slot_path("db2\0cachedeps_change")


def test_slot_open_to_others_is_refused(tmp_path):
    path = tmp_path / "slot"
    path.write_bytes(b"\0" * 16)
    os.chmod(path, 0o666)
    with pytest.raises(OSError):
        PollSlot("x", path=str(path))


class Counting:
    """A psycopg connection that counts the statements run through it."""

    def __init__(self, conn):
        self.conn, self.count = conn, 0

    def cursor(self):
        self.count += 1
        return self.conn.cursor()


@pytest.fixture
def pg(postgres_dsn):
    psycopg = pytest.importorskip("psycopg")
    conns = []

    def connect():
        c = psycopg.connect(postgres_dsn, autocommit=True)
        conns.append(c)
        return c

    with pg_feed_table(postgres_dsn, "cachedeps_share_") as (feed, admin, table):
        try:
            yield feed, admin, connect, table
        finally:
            for c in conns:
                c.close()


def _write(conn, feed, *keys):
    with conn.transaction():
        return feed.append(conn, keys)


def _caches(pg, embedded, identity):
    feed, admin, connect, table = pg
    a = Cache(embedded, feed=SqlFeed(dialect="postgresql", table=table), namespace="a", shared_polls=identity)
    b = Cache(embedded, feed=SqlFeed(dialect="postgresql", table=table), namespace="b", shared_polls=identity)
    return a, b


def test_poll_reports_where_the_feed_ends(pg):
    feed, admin, connect, table = pg
    t1 = _write(admin, feed, "item:1")
    feed.head(admin)
    assert isinstance(feed.poll(admin, 0), ExactPoll) is False  # no row at 0: not anchored
    p = feed.poll(admin, t1)
    assert p.exact and p.tid == t1
    t2 = _write(admin, feed, "item:2")
    p = feed.poll(admin, t1)
    assert p.exact and p.tid == t2 and p.changes == [(t2, "item:2")]
    admin.execute(f"DELETE FROM {table} WHERE tid = {t2}")  # the row at our position is gone
    assert not feed.poll(admin, t2).exact


def test_a_process_uses_another_process_poll_sent_after_its_request_began(pg, embedded):
    feed, admin, connect, table = pg
    identity = "test:" + uuid.uuid4().hex
    a, b = _caches(pg, embedded, identity)
    ca, cb = Counting(connect()), Counting(connect())
    try:
        _write(admin, feed, "item:1")
        a.poll(ca, fresh=True)
        b.poll(cb, fresh=True)
        assert a.current_tid == b.current_tid > 0
        with unit_of_work():  # b's request begins, then a polls: b skips its own poll
            a.poll(ca, fresh=True)
            before = cb.count
            assert b.poll(cb, fresh=True) == a.current_tid
            assert cb.count == before and b.stats()["polls_shared"] == 1
        a.poll(ca, fresh=True)  # sent before b's next request began: b polls itself
        with unit_of_work():
            before = cb.count
            b.poll(cb, fresh=True)
            assert cb.count == before + 1
        with unit_of_work():  # a write committed before b's request: a's poll sees the feed past b
            t = _write(admin, feed, "item:1")
            a.poll(ca, fresh=True)
            b.poll(cb, fresh=True)
            assert b.current_tid == t and b.maps.last_change("item:1") == t
            assert b.stats()["polls_shared"] == 1
    finally:
        os.unlink(slot_path(identity))


def test_a_poll_inside_a_transaction_is_not_shared(pg, embedded):
    feed, admin, connect, table = pg
    identity = "test:" + uuid.uuid4().hex
    a, b = _caches(pg, embedded, identity)
    ca, cb = connect(), Counting(connect())
    try:
        _write(admin, feed, "item:1")
        a.poll(ca, fresh=True)
        b.poll(cb, fresh=True)
        with unit_of_work():
            a.poll(ca)  # not known to have a snapshot of its own (a REPEATABLE READ transaction...)
            before = cb.count
            b.poll(cb, fresh=True)
            assert cb.count == before + 1 and b.stats().get("polls_shared", 0) == 0
    finally:
        os.unlink(slot_path(identity))


def test_threads_of_a_process_share_a_poll_sent_after_their_request_began(pg, embedded):
    feed, admin, connect, table = pg
    cache = Cache(embedded, feed=SqlFeed(dialect="postgresql", table=table))
    conn = Counting(connect())
    _write(admin, feed, "item:1")
    cache.poll(conn, fresh=True)
    began = threading.Event()
    polled = threading.Event()
    seen = []

    def request():
        with unit_of_work():
            began.set()
            polled.wait(10)  # another thread's poll is sent after this request began
            seen.append(cache.poll(conn, fresh=True))

    t = threading.Thread(target=request)
    t.start()
    began.wait(10)
    tid = _write(admin, feed, "item:2")  # committed before the other thread's poll
    cache.poll(conn, fresh=True)
    count = conn.count
    polled.set()
    t.join(10)
    assert seen == [tid] and conn.count == count  # no statement of its own, and the write seen
    assert cache.stats()["polls_shared"] == 1
    with unit_of_work():  # began after every poll: polls
        cache.poll(conn, fresh=True)
    assert conn.count == count + 1


def test_a_request_inside_a_transaction_polls_itself(pg, embedded):
    """A unit whose connection has a transaction open may hold a snapshot older than another
    thread's poll: it runs its own poll (inside its snapshot) instead of taking the maps'."""
    feed, admin, connect, table = pg
    cache = Cache(embedded, feed=SqlFeed(dialect="postgresql", table=table))
    conn = Counting(connect())
    _write(admin, feed, "item:1")
    cache.poll(conn, fresh=True)
    with unit_of_work():
        cache.poll(Counting(connect()), fresh=True)  # another thread's poll, sent after the unit began
        count = conn.count
        cache.poll(conn)  # not fresh: a transaction may be open on conn
        assert conn.count == count + 1 and cache.stats().get("polls_shared", 0) == 0


def test_a_begin_run_through_a_cursor_is_seen(postgres_dsn):
    """Django's autocommit flag misses a BEGIN sent as SQL; libpq's status does not."""
    psycopg = pytest.importorskip("psycopg")
    pytest.importorskip("django")
    from django_cachedeps.runtime import idle

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        assert idle(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT 1")
        assert not idle(conn)
        conn.execute("COMMIT")
        assert idle(conn)
    assert not idle(object())  # unknown driver: not known to be idle
