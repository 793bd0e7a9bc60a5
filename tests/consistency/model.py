"""The model application the checker drives: ``item(id, version)`` behind a Cache.

``ctx`` keys: ``dialect`` (``sqlite``/``postgresql``/``mysql``), ``db`` (a file path, a DSN,
or for MySQL/MariaDB the keyword arguments of the driver's ``connect``),
``store`` (a store URL), ``namespace``, ``items``; optional ``crash_after`` (a writer
index 0 kills itself with SIGKILL after that many commits, between the commit and
``cache.committed``), ``max_delta``, ``never_poll`` (readers poll once at start only: a
deliberately broken application, to show that the checker catches stale reads);
``shared_polls`` (PostgreSQL: readers share polls through a slot named by this identity,
each read a unit of work that polls ``fresh``, waiting ``poll_delay`` seconds between the
unit's start and its poll, as a request's middleware would; with ``share_ignores_time``
taking any shared poll that saw their position, however old: deliberately unsound).

Writers bump a version in a transaction that also appends the row's keys to the feed,
then call ``cache.committed``. Readers poll once per read, then read through the cache,
alternating a derived entry (``item-version:<id>`` depending on ``item:<id>``) and the
object-state path (``load_state("item:<id>")``), loading from the database on a miss.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from typing import Any, Callable

from cachedeps import keys
from cachedeps.cache import Cache
from cachedeps.config import open_store
from cachedeps.feed import SqlFeed
from cachedeps.work import unit_of_work

from . import checker

__all__ = ["setup", "make_writer", "make_reader", "open_store"]


def _connect(ctx: dict) -> Any:
    if ctx["dialect"] == "sqlite":
        conn = sqlite3.connect(ctx["db"], isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = OFF")  # a test database: commits need not reach the disk
        return conn
    if ctx["dialect"] == "mysql":
        try:
            import MySQLdb as driver
        except ImportError:
            import pymysql as driver
        return driver.connect(**ctx["db"], autocommit=True)
    import psycopg

    return psycopg.connect(ctx["db"], autocommit=True)


def setup(ctx: dict) -> None:
    """Create the feed and item tables with every version at 0 (dropping old ones)."""
    feed = SqlFeed(ctx["dialect"])
    conn = _connect(ctx)
    try:
        cur = conn.cursor()
        if ctx["dialect"] == "sqlite":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("DROP TABLE IF EXISTS item")
        cur.execute(f"DROP TABLE IF EXISTS {feed.table}")
        if feed.lock_ddl():
            cur.execute(f"DROP TABLE IF EXISTS {feed.lock_table}")
        for stmt in feed.ddl():
            cur.execute(stmt)
        cur.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        for i in range(ctx["items"]):
            cur.execute(f"INSERT INTO item (id, version) VALUES ({i}, 0)")
    finally:
        conn.close()


def _cache(ctx: dict) -> Cache:
    return Cache(
        open_store(ctx["store"]),
        # PostgreSQL: the poll prepared, as a site with prepared statements allowed runs it
        feed=SqlFeed(ctx["dialect"], prepare=ctx["dialect"] == "postgresql"),
        namespace=ctx["namespace"],
        max_delta=ctx.get("max_delta", 10_000),
        warn_interval=3600,
        shared_polls=ctx.get("shared_polls"),
    )


def make_writer(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``write(item) -> version`` for one writer process."""
    conn = _connect(ctx)
    cache = _cache(ctx)
    feed = cache.feed
    crash_after = ctx.get("crash_after") if index == 0 else None
    done = [0]
    p = "?" if ctx["dialect"] == "sqlite" else "%s"

    def write(item: int) -> int:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if ctx["dialect"] == "sqlite" else "BEGIN")
        try:
            feed.lock(conn)
            cur.execute(f"UPDATE item SET version = version + 1 WHERE id = {p}", (item,))
            cur.execute(f"SELECT version FROM item WHERE id = {p}", (item,))
            version = int(cur.fetchone()[0])
            changed = [keys.table_key("item"), keys.oid("item", item)]
            tid = feed.append(conn, changed)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        checker.note_commit(item, version)
        done[0] += 1
        if crash_after is not None and done[0] >= crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # between commit and purge
        cache.committed(changed, tid)
        return version

    return write


def make_reader(ctx: dict, index: int) -> Callable[[int], int]:
    """Return ``read(item) -> version`` for one reader process."""
    conn = _connect(ctx)
    cache = _cache(ctx)
    p = "?" if ctx["dialect"] == "sqlite" else "%s"
    turn = [index]

    def load(item: int) -> int:
        cur = conn.cursor()
        cur.execute(f"SELECT version FROM item WHERE id = {p}", (item,))
        row = cur.fetchone()
        cur.close()
        return int(row[0])

    broken = bool(ctx.get("never_poll"))  # a deliberately wrong reader, to test the checker
    cache.poll(conn)

    def read_polled(item: int) -> int:
        oid = keys.oid("item", item)
        turn[0] += 1
        if turn[0] % 2:
            return cache.get_or_compute(f"item-version:{item}", lambda: load(item), depends_on=[oid])
        return cache.load_state(oid, lambda: load(item))

    if ctx.get("shared_polls"):
        delay = ctx.get("poll_delay", 0.0)
        if ctx.get("share_ignores_time"):  # deliberately unsound: any poll that saw our position
            slot = cache._slot
            slot.covers = lambda since, position: slot.read()[1] == position

        def read_in_unit(item: int) -> int:
            with unit_of_work():  # began after the checker took the read's start
                if delay:
                    time.sleep(delay)
                cache.poll(conn, fresh=True)  # autocommit: a snapshot of its own
                return read_polled(item)

        read_in_unit.stats = cache.stats  # type: ignore[attr-defined]
        return read_in_unit

    def read(item: int) -> int:
        if not broken:
            cache.poll(conn)
        return read_polled(item)

    read.stats = cache.stats  # type: ignore[attr-defined]
    return read
