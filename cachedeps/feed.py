"""The change feed: an ordered log of ``(tid, key)`` written with the data it describes.

Two implementations of :class:`Feed`:

:class:`SqlFeed`
    A table in the application's own database (an outbox), written inside the writer's
    transaction by :meth:`SqlFeed.append`. Pollers read it with one indexed query,
    ``WHERE tid > %s ORDER BY tid``.

    *Ordering.* A transaction that took a lower tid but commits after a higher one must not
    be missed: a poller that already saw the higher tid would never look below it again. On
    PostgreSQL every log-writing transaction first takes ``pg_advisory_xact_lock`` (held
    until commit or rollback), so log writers are serialized and tids become visible in
    increasing order. SQLite serializes writers already. Rolled-back transactions leave
    holes in the tids; holes are harmless.

    *Pruning.* :meth:`SqlFeed.prune` deletes old rows and inserts a marker row
    ``"!pruned:<P>"``. A poller whose position is below ``P`` sees the marker and is told the
    poll is incomplete, so it treats everything as changed: misses, never stale reads.

:class:`StoreFeed`
    For invalidations without a database (``cache.invalidate(*keys)``). A counter
    ``feed:<ns>tid`` allocates tids with ``incr``; it is created with ``add`` at a
    time-based start (microseconds since the epoch), so a restarted or flushed store never
    hands out a tid that pollers have already passed. Entry ``feed:<ns><tid>`` holds the keys.
    A poll reads the counter, then the missing range in one ``get_many``. Any gap it cannot
    explain — an entry evicted, the counter gone or moved backwards, too many entries to
    read — makes the poll incomplete (everything treated as changed). A missing entry just
    behind the counter may belong to an invalidation still in progress; it is waited for
    for a short grace period (the poll reports a position before it) before counting as lost.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any, Iterable, NamedTuple, Protocol, runtime_checkable

from .errors import ConfigurationError, FeedError

__all__ = [
    "Poll",
    "Feed",
    "SqlFeed",
    "StoreFeed",
    "feed_key",
    "MAX_FEED_KEY",
    "PRUNED_PREFIX",
    "ADVISORY_LOCK_ID",
]

#: the longest key the ``cachedeps_change.key`` column holds; longer keys are digested
MAX_FEED_KEY = 255
#: key of the marker row :meth:`SqlFeed.prune` inserts
PRUNED_PREFIX = "!pruned:"
#: the constant of the PostgreSQL advisory lock serializing log writers ("cachedep" in ASCII)
ADVISORY_LOCK_ID = 0x6361636865646570 & 0x7FFFFFFFFFFFFFFF

_DEFAULT_CAP = 100_000
_CHUNK = 500
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Poll(NamedTuple):
    """The result of :meth:`Feed.poll`.

    ``tid`` is the newest position seen; ``changes`` the ``(tid, key)`` pairs after the
    requested position, in tid order; ``complete`` is ``False`` when changes may be
    missing, and the caller must treat everything as changed.
    """

    tid: int
    changes: list[tuple[int, str]]
    complete: bool = True


def feed_key(key: str) -> str:
    """Return ``key`` as stored in the feed: itself, or a digest when over 255 bytes.

    Writers and readers both pass dependency keys through this function, so a long key
    still matches itself.
    """
    if len(key) <= MAX_FEED_KEY // 4 or len(key.encode("utf-8")) <= MAX_FEED_KEY:
        return key
    return "#" + hashlib.blake2b(key.encode("utf-8"), digest_size=24).hexdigest()


@runtime_checkable
class Feed(Protocol):
    """What the cache needs from a change feed."""

    def append(self, conn: Any, keys: Iterable[str]) -> int:
        """Write ``keys`` inside the writer's open transaction; return their tid."""

    def lock(self, conn: Any) -> None:
        """Take the writers' serialization lock inside the open transaction."""

    def poll(self, conn: Any, after: int) -> Poll:
        """Return the changes after position ``after``."""

    def head(self, conn: Any) -> int:
        """Return the newest position (0 for an empty feed)."""


class SqlFeed:
    """A change feed kept in a table of the application's database.

    Args:
        dialect: ``"sqlite"`` or ``"postgresql"``.
        paramstyle: ``"format"`` (``%s``: psycopg, Django cursors) or ``"qmark"``
            (``?``: sqlite3). Default: ``qmark`` for SQLite, ``format`` otherwise.
        table: the table name.
        max_rows: the most rows one poll reads; more makes the poll incomplete.

    Example::

        feed = SqlFeed(dialect="sqlite")
        for stmt in feed.ddl():
            conn.execute(stmt)
        with conn:                                  # the writer's transaction
            conn.execute("UPDATE item SET version = version + 1 WHERE id = 1")
            tid = feed.append(conn, ["item", "item:1"])
        cache.committed(["item", "item:1"], tid)
    """

    def __init__(
        self,
        dialect: str = "sqlite",
        paramstyle: str | None = None,
        table: str = "cachedeps_change",
        max_rows: int = _DEFAULT_CAP,
    ) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"SqlFeed dialect {dialect!r} is not supported; use 'sqlite' or 'postgresql'"
            )
        if paramstyle is None:
            paramstyle = "qmark" if dialect == "sqlite" else "format"
        if paramstyle not in ("format", "qmark"):
            raise ConfigurationError(
                f"SqlFeed paramstyle {paramstyle!r} is not supported; use 'format' (%s) or 'qmark' (?)"
            )
        if not _TABLE_NAME.match(table):
            raise ConfigurationError(
                f"SqlFeed table {table!r} is not a plain SQL identifier (letters, digits, _)"
            )
        if max_rows < 1:
            raise ConfigurationError(f"SqlFeed max_rows must be positive, got {max_rows!r}")
        self.dialect = dialect
        self.paramstyle = paramstyle
        self.table = table
        self.max_rows = max_rows
        self._p = "%s" if paramstyle == "format" else "?"
        self._poll_sql = (
            f"SELECT tid, key FROM {table} WHERE tid > {self._p} ORDER BY tid LIMIT {max_rows + 1}"
        )

    def __repr__(self) -> str:
        return f"SqlFeed(dialect={self.dialect!r}, table={self.table!r})"

    def ddl(self) -> list[str]:
        """Return the idempotent statements creating the feed table."""
        if self.dialect == "postgresql":
            return [
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "tid BIGSERIAL PRIMARY KEY, key VARCHAR(255) NOT NULL)"
            ]
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "tid INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(255) NOT NULL)"
        ]

    def lock(self, conn: Any) -> None:
        """Serialize log writers until the current transaction ends (PostgreSQL only)."""
        if self.dialect != "postgresql":
            return
        self._execute(conn, f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})", (), "lock the feed")

    def append(self, conn: Any, keys: Iterable[str]) -> int:
        """Write one row per key inside the open transaction; return the newest tid written.

        Raises:
            FeedError: no keys, or the database refused the write.
        """
        rows = list(dict.fromkeys(feed_key(k) for k in keys))
        if not rows:
            raise FeedError("SqlFeed.append needs at least one key; a write that changes nothing needs no tid")
        self.lock(conn)
        try:
            cur = conn.cursor()
            try:
                for i in range(0, len(rows), _CHUNK):
                    chunk = rows[i : i + _CHUNK]
                    values = ",".join([f"({self._p})"] * len(chunk))
                    cur.execute(f"INSERT INTO {self.table} (key) VALUES {values}", chunk)
                # Writers are serialized (advisory lock / SQLite write lock), so the newest
                # tid in the table is ours.
                cur.execute(f"SELECT MAX(tid) FROM {self.table}")
                tid = cur.fetchone()[0]
            finally:
                cur.close()
        except Exception as exc:
            raise FeedError(f"cannot append {len(rows)} key(s) to feed table {self.table!r}: {exc}") from exc
        return int(tid)

    def poll(self, conn: Any, after: int) -> Poll:
        """Return the changes after ``after`` with one indexed query."""
        try:
            cur = conn.cursor()
            try:
                cur.execute(self._poll_sql, (after,))
                rows = cur.fetchall()
                complete = True
                head = int(rows[-1][0]) if rows else after
                if len(rows) > self.max_rows:
                    complete = False
                    cur.execute(f"SELECT MAX(tid) FROM {self.table}")
                    rows = rows[: self.max_rows]
                    head = int(cur.fetchone()[0])
            finally:
                cur.close()
        except Exception as exc:
            raise FeedError(f"cannot poll feed table {self.table!r} after tid {after}: {exc}") from exc
        changes: list[tuple[int, str]] = []
        for tid, key in rows:
            if key.startswith(PRUNED_PREFIX):
                try:
                    pruned = int(key[len(PRUNED_PREFIX) :])
                except ValueError:
                    pruned = tid
                if after < pruned:
                    complete = False
                continue
            changes.append((int(tid), key))
        return Poll(head, changes, complete)

    def head(self, conn: Any) -> int:
        """Return the newest tid in the table (0 when empty)."""
        row = self._execute(conn, f"SELECT MAX(tid) FROM {self.table}", (), "read the feed head")
        return int(row[0]) if row and row[0] is not None else 0

    def prune(self, conn: Any, keep: int) -> int:
        """Delete all but the newest ``keep`` rows; return the tid pruned up to (0: nothing).

        Run it in its own transaction. Pollers behind the pruned tid see a marker row and
        reset (misses, never stale reads).
        """
        if keep < 0:
            raise FeedError(f"SqlFeed.prune keep must be >= 0, got {keep!r}")
        self.lock(conn)
        try:
            cur = conn.cursor()
            try:
                cur.execute(
                    f"SELECT tid FROM {self.table} ORDER BY tid DESC LIMIT 1 OFFSET {self._p}", (keep,)
                )
                row = cur.fetchone()
                if row is None:
                    return 0
                upto = int(row[0])
                cur.execute(f"DELETE FROM {self.table} WHERE tid <= {self._p}", (upto,))
                cur.execute(f"INSERT INTO {self.table} (key) VALUES ({self._p})", (f"{PRUNED_PREFIX}{upto}",))
            finally:
                cur.close()
        except Exception as exc:
            raise FeedError(f"cannot prune feed table {self.table!r}: {exc}") from exc
        return upto

    def _execute(self, conn: Any, sql: str, params: tuple, what: str) -> Any:
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return cur.fetchone()
            finally:
                cur.close()
        except Exception as exc:
            raise FeedError(f"cannot {what} ({self.table!r}): {exc}") from exc


def _default_serializer() -> Any:
    from .cache import default_serializer

    return default_serializer()


class StoreFeed:
    """A change feed kept in the store itself, for invalidations without a database.

    Args:
        store: the :class:`~cachedeps.api.Store` (shared by every process that polls).
        namespace: prefix of the feed's keys.
        max_entries: the most entries one poll reads; more makes the poll incomplete.
        grace: seconds a missing entry just behind the counter is waited for before it
            counts as lost.
    """

    def __init__(
        self,
        store: Any,
        namespace: str = "",
        max_entries: int = 10_000,
        grace: float = 1.0,
        serializer: Any = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.max_entries = max_entries
        self.grace = grace
        self.serializer = serializer if serializer is not None else _default_serializer()
        self._counter = f"feed:{namespace}tid"
        self._missing: dict[int, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoreFeed({getattr(self.store, 'name', self.store)!r})"

    def _entry(self, tid: int) -> str:
        return f"feed:{self.namespace}{tid}"

    def lock(self, conn: Any) -> None:
        """Do nothing: ``incr`` allocates tids atomically."""

    def append(self, conn: Any, keys: Iterable[str]) -> int:
        """Allocate a tid and store ``keys`` under it; return the tid.

        Raises:
            BackendError: the store is unreachable (the invalidation did not happen).
        """
        rows = list(dict.fromkeys(feed_key(k) for k in keys))
        tid = self.store.incr(self._counter, 1)
        if tid is None:
            self.store.add(self._counter, str(int(time.time() * 1_000_000)).encode())
            tid = self.store.incr(self._counter, 1)
            if tid is None:
                raise FeedError(f"store {self.store.name} lost the feed counter {self._counter!r} twice in a row")
        self.store.set(self._entry(tid), self.serializer.dumps(rows))
        return int(tid)

    def head(self, conn: Any) -> int:
        """Return the counter, creating it at a time-based start when missing."""
        raw = self.store.get(self._counter)
        if raw is None:
            self.store.add(self._counter, str(int(time.time() * 1_000_000)).encode())
            raw = self.store.get(self._counter)
            if raw is None:
                raise FeedError(f"store {self.store.name} does not keep the feed counter {self._counter!r}")
        return int(raw)

    def poll(self, conn: Any, after: int) -> Poll:
        """Read the counter and the entries after ``after`` (two round trips)."""
        head = self.head(conn)
        if head < after:
            return Poll(head, [], False)  # counter restarted behind us: entries may be lost
        if head == after:
            return Poll(head, [], True)
        if head - after > self.max_entries:
            return Poll(head, [], False)
        tids = range(after + 1, head + 1)
        found = self.store.get_many([self._entry(t) for t in tids])
        changes: list[tuple[int, str]] = []
        first_missing: int | None = None
        now = time.monotonic()
        for t in tids:
            raw = found.get(self._entry(t))
            keys = None
            if raw is not None:
                try:
                    keys = self.serializer.loads(raw)
                except Exception:
                    keys = None
            if keys is None:
                if first_missing is None:
                    first_missing = t
                continue
            changes.extend((t, k) for k in keys)
        if first_missing is None:
            with self._lock:
                self._missing.clear()
            return Poll(head, changes, True)
        with self._lock:
            since = self._missing.setdefault(first_missing, now)
            for t in [t for t in self._missing if t < first_missing]:
                del self._missing[t]
        if now - since > self.grace:
            return Poll(head, changes, False)
        # Possibly an invalidation in progress: report a position before it (so it is read
        # again next time) but apply everything present, including later entries.
        return Poll(first_missing - 1, changes, True)
