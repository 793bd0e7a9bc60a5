"""Helpers for the engine tests: a dict-backed store (optionally "down") and a SQLite feed."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

from cachedeps.errors import BackendUnavailable
from cachedeps.feed import SqlFeed

__all__ = ["DictStore", "herd", "sqlite_feed", "write"]


class DictStore:
    """A plain memcache-like store without native dependency trees.

    ``down = True`` makes every call raise :class:`BackendUnavailable`, like a dead server;
    ``calls`` counts round trips.
    """

    name = "dict://test"

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, int]] = {}
        self.lock = threading.Lock()
        self.down = False
        self.calls = 0
        self._cas = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("connection refused", address="dict://test")

    def _put(self, key: str, value: bytes) -> None:
        self._cas += 1
        self.data[key] = (bytes(value), self._cas)

    def get(self, key: str) -> bytes | None:
        self._check()
        item = self.data.get(key)
        return None if item is None else item[0]

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        self._check()
        return {k: self.data[k][0] for k in keys if k in self.data}

    def gets(self, key: str) -> tuple[bytes, int] | None:
        self._check()
        return self.data.get(key)

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        self._check()
        with self.lock:
            self._put(key, value)

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        for k, v in mapping.items():
            self.set(k, v)
        return []

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        self._check()
        with self.lock:
            if key in self.data:
                return False
            self._put(key, value)
            return True

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        self._check()
        with self.lock:
            item = self.data.get(key)
            if item is None:
                return None
            if item[1] != cas:
                return False
            self._put(key, value)
            return True

    def append(self, key: str, value: bytes) -> bool:
        self._check()
        with self.lock:
            item = self.data.get(key)
            if item is None:
                return False
            self._put(key, item[0] + value)
            return True

    def delete(self, key: str) -> bool:
        self._check()
        with self.lock:
            return self.data.pop(key, None) is not None

    def delete_many(self, keys: Iterable[str]) -> None:
        self._check()
        with self.lock:
            for k in keys:
                self.data.pop(k, None)

    def incr(self, key: str, delta: int = 1) -> int | None:
        self._check()
        with self.lock:
            item = self.data.get(key)
            if item is None:
                return None
            n = int(item[0]) + delta
            self._put(key, str(n).encode())
            return n

    def flush_all(self, delay: float = 0) -> None:
        self._check()
        with self.lock:
            self.data.clear()

    def close(self) -> None:
        pass


@contextmanager
def pg_feed_table(dsn: str, prefix: str) -> Iterator[tuple[SqlFeed, Any, str]]:
    """Create a PostgreSQL feed table of a unique name; yield ``(feed, autocommit admin
    connection, table)``; drop it afterwards."""
    import psycopg

    table = prefix + uuid.uuid4().hex[:8]
    feed = SqlFeed(dialect="postgresql", table=table)
    admin = psycopg.connect(dsn, autocommit=True)
    try:
        for stmt in feed.ddl():
            admin.execute(stmt)
        yield feed, admin, table
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


def sqlite_feed(path: Any) -> tuple[sqlite3.Connection, SqlFeed]:
    """Open an autocommit SQLite connection at ``path`` with the feed table created."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    feed = SqlFeed(dialect="sqlite")
    for stmt in feed.ddl():
        conn.execute(stmt)
    return conn, feed


def write(conn: sqlite3.Connection, feed: SqlFeed, keys: list[str], cache: Any = None) -> int:
    """Append ``keys`` in a transaction of their own; tell ``cache`` after the commit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tid = feed.append(conn, keys)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if cache is not None:
        cache.committed(keys, tid)
    return tid


def herd(cache: Any, n: int, work: float, depends_on: Iterable[str] = (), record: str | None = None) -> tuple[list, list]:
    """Let ``n`` threads miss ``"hot"`` at once through ``get_or_compute``; return (calls, results).

    ``fn`` takes ``work`` seconds and records ``record`` (a dependency key) when given.
    """
    calls: list[int] = []
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def fn() -> str:
        calls.append(1)
        time.sleep(work)
        if record is not None:
            cache.record(record)
        return "value"

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = cache.get_or_compute("hot", fn, depends_on=list(depends_on))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return calls, results
