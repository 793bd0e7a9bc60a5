"""The change feed: an ordered log of ``(tid, key)`` written with the data it describes.

Two implementations of :class:`Feed`:

:class:`SqlFeed`
    A table in the application's own database (an outbox), written inside the writer's
    transaction by :meth:`SqlFeed.append`. Pollers read it with one indexed query,
    ``WHERE tid >= %s ORDER BY tid`` (on PostgreSQL a second one after more than
    :data:`FIRST_ROWS` changes), which PostgreSQL can run as a prepared statement
    (``prepare``).

    *Ordering.* A transaction that took a lower tid but commits after a higher one must not
    be missed: a poller that already saw the higher tid would never look below it again. So
    tids are allocated at commit time, under a lock held only for the commit: the adapters
    collect a transaction's keys while it runs and call :meth:`SqlFeed.append` just before
    COMMIT. On PostgreSQL ``append`` takes ``pg_advisory_xact_lock`` (released by the COMMIT
    that follows), so log writers hold it for one INSERT and the commit, never while they
    wait for row locks: writers do not serialize, and cannot deadlock with row locks.
    SQLite serializes writers already. On MySQL/MariaDB ``append`` first takes an exclusive
    row lock on the one row of the lock table ``<table>_lock`` (``INSERT ... ON DUPLICATE KEY
    UPDATE``, which also creates the row if it is missing); InnoDB holds row locks until the
    COMMIT or ROLLBACK that ends the transaction, whatever the isolation level, and releases
    them when a connection drops. An AUTO_INCREMENT value is taken at INSERT time, not at
    commit, so without that lock a writer could take tid 5, another tid 6 and commit first.
    Rolled-back transactions leave holes in the tids;
    holes are harmless. ``append`` must run inside a transaction (a DB-API connection in
    autocommit mode would release the lock before the rows commit in order).

    *Pruning.* :meth:`SqlFeed.prune` deletes old rows and inserts a marker row
    ``"!pruned:<P>"``. A poller whose position is below ``P`` sees the marker and is told the
    poll is incomplete, so it treats everything as changed: misses, never stale reads.

    *Going backwards.* A poll reads from the poller's own position (``tid >= after``), so
    the row it saw last is the first row returned. When that row is gone (the table was
    truncated or flushed, a backup restored, rows deleted by hand) the poll is incomplete.
    When moreover the tid sequence is now behind the position (``TRUNCATE ... RESTART
    IDENTITY``, ``manage.py flush``, Django's ``reset_sequences``, a restored backup), new
    tids would fall below every poller's position and stamps of entries computed before
    would look newer than the changes after it: the poller moves the sequence forward, to
    its position plus :data:`RESTART_GAP`, under the writers' lock (so every tid handed out
    before has committed), and resets to that position. Every entry stamped before it
    becomes a miss. (The gap assumes no process's position is ``RESTART_GAP`` ahead of
    another's.) On SQLite the sequence is the ``sqlite_sequence`` row, moved with an UPDATE in
    the poller's transaction. On MySQL/MariaDB the sequence is the table's AUTO_INCREMENT
    counter, read only when the row at the poller's position is missing (InnoDB never sets
    the counter at or below a row still in the table), from ``information_schema.TABLES``
    (live on MariaDB; MySQL 8 caches that column unless ``information_schema_stats_expiry =
    0``, and the feed then also trusts ``MAX(tid)``), moved forward by inserting a ``"!restart:<P>"`` row at the new position
    with an explicit tid, under the lock row (``INSERT ... SELECT ... FOR UPDATE``).

    *Statistics.* On PostgreSQL the poll's plan depends on the planner's view of the feed
    table. Without statistics (a new table, before autovacuum's first ANALYZE, or a server
    with autovacuum off) it estimates ``tid >= $1`` to match a third of the table and chooses
    a sequential scan and a sort, as it also does for a table of a few pages; and a prepared
    poll keeps the plan it chose until the table's statistics change, however large the
    table grows after. Every poll would then read the whole table, up to the rows kept
    between prunes (measured: 13 µs a poll with statistics, 300 µs at 5,000 rows without).
    So the writer whose tids cross a multiple of :data:`STATS_EVERY` looks at the table
    (under the writers' lock, in its transaction) and runs ``ANALYZE`` on it, in a
    savepoint, when it holds at least :data:`STATS_MIN_ROWS` rows and has no statistics on
    ``tid`` or has grown past :data:`STATS_GROWTH` times its pages at the last ANALYZE
    (``pg_class.relpages``). ANALYZE makes every session plan the poll afresh, with the
    index once the table is large enough for it to matter; growth being geometric, a table
    is analyzed a few dozen times in its life at most. A failure is logged and rolled back
    to the savepoint, never the writer's error. Writes captured by triggers alone do not
    check.

    Errors of the database (a missing table, a broken transaction, a thread or async
    context Django refuses) propagate unchanged, with a note naming the feed table.

:class:`StoreFeed`
    For invalidations without a database (``cache.invalidate(*keys)``). A counter
    ``feed:<ns>tid`` allocates tids with ``incr``; it is created with ``add`` at a
    time-based start (microseconds since the epoch), which usually puts a recreated counter
    ahead of every poller. Correctness does not depend on clocks: a poller that finds the
    counter behind its position (a store restarted and the counter recreated by a process
    whose clock is behind) moves it forward by ``RESTART_GAP`` past its position and resets
    (misses). Entry ``feed:<ns><tid>`` holds the keys.
    A poll reads the counter, then the missing range in one ``get_many``. Any gap it cannot
    explain — an entry evicted, the counter gone or moved backwards, too many entries to
    read — makes the poll incomplete (everything treated as changed). A missing entry just
    behind the counter may belong to an invalidation still in progress; it is waited for
    for a short grace period (the poll reports a position before it) before counting as lost.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, NamedTuple, Protocol, runtime_checkable

from .errors import ConfigurationError, FeedError

logger = logging.getLogger("cachedeps.feed")

__all__ = [
    "Poll",
    "ExactPoll",
    "Feed",
    "SqlFeed",
    "StoreFeed",
    "feed_key",
    "MAX_FEED_KEY",
    "PRUNED_PREFIX",
    "RESTART_PREFIX",
    "ADVISORY_LOCK_ID",
    "RESTART_GAP",
    "DIALECTS",
    "RAW_PREFIX",
    "FIRST_ROWS",
    "unraw",
]

#: the longest key the ``cachedeps_change.key`` column holds; longer keys are digested
MAX_FEED_KEY = 255
#: key of the marker row :meth:`SqlFeed.prune` inserts
PRUNED_PREFIX = "!pruned:"
#: key of the row a MySQL feed that went backwards is moved forward with (not a change)
RESTART_PREFIX = "!restart:"
#: prefix of a row a SQLite capture trigger writes with a value the poller spells (:func:`unraw`)
RAW_PREFIX = "!raw:"
#: the constant of the PostgreSQL advisory lock serializing log writers ("cachedep" in ASCII)
ADVISORY_LOCK_ID = 0x6361636865646570 & 0x7FFFFFFFFFFFFFFF

#: how far a feed that went backwards (or a store counter recreated behind) is moved past
#: the position of the poller that noticed it
RESTART_GAP = 1 << 40

_DEFAULT_CAP = 100_000
#: the most rows the first statement of a PostgreSQL poll reads (see :meth:`SqlFeed.poll`):
#: small enough that the planner's generic plan for it is cheaper than a custom one
FIRST_ROWS = 100
_CHUNK = 500
#: PostgreSQL: an append whose tids cross a multiple of this checks the planner's statistics
#: of the feed table (see *Statistics* in :class:`SqlFeed`)
STATS_EVERY = 256
#: ... and analyzes the table when it has grown past this factor of its pages at the last ANALYZE
STATS_GROWTH = 1.5
#: the fewest rows the feed table must hold for :meth:`SqlFeed.append` to analyze it
STATS_MIN_ROWS = 50
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: the dialects :class:`SqlFeed` speaks (``"mariadb"`` is accepted as ``"mysql"``)
DIALECTS = ("sqlite", "postgresql", "mysql")


class Poll(NamedTuple):
    """The result of :meth:`Feed.poll`.

    ``tid`` is the newest position seen; ``changes`` the ``(tid, key)`` pairs after the
    requested position, in tid order; ``complete`` is ``False`` when changes may be
    missing, and the caller must treat everything as changed.

    ``exact`` (true for an :class:`ExactPoll`, from PostgreSQL's :class:`SqlFeed` only): the
    statement saw the row at ``tid``, no row after it and the sequence not behind it, so a
    poll from position ``tid`` with the same snapshot would have come back complete and
    empty. Only such a poll may stand in for another process's (:mod:`cachedeps.pollshare`).
    """

    tid: int
    changes: list[tuple[int, str]]
    complete: bool = True

    @property
    def exact(self) -> bool:
        """Whether this poll saw where the feed ends (an :class:`ExactPoll`)."""
        return False


class ExactPoll(Poll):
    """A complete :class:`Poll` that saw where the feed ends (``exact``); equal to a Poll."""

    __slots__ = ()

    @property
    def exact(self) -> bool:
        """Always true: see :class:`Poll`."""
        return True


def feed_key(key: str) -> str:
    """Return ``key`` as stored in the feed: itself, or a digest when over 255 bytes.

    Writers and readers both pass dependency keys through this function, so a long key
    still matches itself.
    """
    if len(key) <= MAX_FEED_KEY // 4 or len(key.encode("utf-8")) <= MAX_FEED_KEY:
        return key
    return "#" + hashlib.blake2b(key.encode("utf-8"), digest_size=24).hexdigest()


def unraw(key: str) -> str:
    """Return the key a raw feed row stands for: ``!raw:<head>\\x1f<tail>\\x1f<value>`` is
    ``head + canonical_value(value) + tail`` (through :func:`feed_key`).

    SQLite capture triggers (:mod:`cachedeps.capture`) cannot digest text in SQL; they write
    text values this way and the poller spells them exactly as the engine does.
    """
    from .keys import canonical_value

    parts = key[len(RAW_PREFIX):].split("\x1f", 2)
    if len(parts) != 3:
        return key
    head, tail, value = parts
    return feed_key(head + canonical_value(value) + tail)


def _table_of(key: str) -> str:
    from .keys import table_of

    return table_of(key)


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

    The table, on every dialect: ``tid`` (a 64-bit auto-increment primary key) and ``key``
    (``VARCHAR(255)``, a dependency key as :func:`feed_key` spells it). On MySQL/MariaDB
    (``key`` is a reserved word there, so it is written `` `key` ``)::

        CREATE TABLE cachedeps_change (
            tid BIGINT AUTO_INCREMENT PRIMARY KEY,
            `key` VARCHAR(255) NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
        CREATE TABLE cachedeps_change_lock (id TINYINT PRIMARY KEY) ENGINE=InnoDB;
        INSERT IGNORE INTO cachedeps_change_lock (id) VALUES (1);

    Whatever writes rows into it (a capture trigger too) takes the writers' lock first
    (:meth:`lock_sql`) and keeps it until its transaction ends.

    Args:
        dialect: ``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MySQL and MariaDB).
        paramstyle: ``"format"`` (``%s``: psycopg, mysqlclient, PyMySQL, Django cursors) or ``"qmark"``
            (``?``: sqlite3). Default: ``qmark`` for SQLite, ``format`` otherwise.
        table: the table name.
        max_rows: the most rows one poll reads; more makes the poll incomplete.
        capture: capture triggers (:mod:`cachedeps.capture`) may be installed: :meth:`append`
            leaves out the keys of tables whose triggers captured this transaction's writes
            (they are in the feed already, or staged for it) and returns a tid at least as
            new as theirs.
        prepare: PostgreSQL: run the poll as a server-side prepared statement, with
            ``cursor.execute(sql, params, prepare=True)`` (psycopg 3; ``conn.cursor()`` must
            accept it). The server then plans it for its first five executions only, and
            runs its generic plan after that (the poll's first statement reads at most
            :data:`FIRST_ROWS` rows, so that this plan is the cheaper one). A prepared
            statement lives in one server session: behind a pooler that hands each
            transaction another server connection (PgBouncer's transaction mode) it needs the
            pooler's own support (PgBouncer 1.21+, ``max_prepared_statements``, with libpq
            17+ on the client). psycopg prepares nothing on a connection whose
            ``prepare_threshold`` is ``None``. Default ``False``: the poll is sent
            unprepared, planned at every execution (psycopg may still prepare it after
            ``prepare_threshold`` executions on a server-binding cursor).

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
        capture: bool = False,
        prepare: bool = False,
    ) -> None:
        if dialect == "mariadb":
            dialect = "mysql"
        if dialect not in DIALECTS:
            raise ConfigurationError(
                f"SqlFeed dialect {dialect!r} is not supported; use 'sqlite', 'postgresql' or 'mysql'"
            )
        if paramstyle is None:
            paramstyle = "qmark" if dialect == "sqlite" else "format"
        if paramstyle not in ("format", "qmark"):
            raise ConfigurationError(
                f"SqlFeed paramstyle {paramstyle!r} is not supported; use 'format' (%s) or 'qmark' (?)"
            )
        if not _TABLE_NAME.match(table) or (dialect == "mysql" and len(table) > 59):
            raise ConfigurationError(
                f"SqlFeed table {table!r} is not a plain SQL identifier (letters, digits, _; "
                "at most 59 characters on MySQL, where the lock table adds '_lock')"
            )
        if max_rows < 1:
            raise ConfigurationError(f"SqlFeed max_rows must be positive, got {max_rows!r}")
        if prepare and dialect != "postgresql":
            raise ConfigurationError(f"SqlFeed prepare=True is for PostgreSQL (psycopg 3), not {dialect!r}")
        self.dialect = dialect
        self.paramstyle = paramstyle
        self.table = table
        self.max_rows = max_rows
        self.capture = bool(capture)
        self.prepare = bool(prepare)
        self._p = "%s" if paramstyle == "format" else "?"
        #: the key column as written in SQL (``key`` is reserved on MySQL)
        self._k = "`key`" if dialect == "mysql" else "key"
        #: the MySQL lock table whose one row serializes log writers
        self.lock_table = f"{table}_lock"
        # ``>=``: the row at the poller's own position comes back first, proving the feed
        # did not lose rows behind it; the sequence's last tid comes with it (key NULL),
        # proving the numbering did not go back (see "Going backwards").
        self._rows_sql = self._rows_from(max_rows + 2)
        self._poll_sql: str | None = None
        #: PostgreSQL: the poll's first statement (:data:`FIRST_ROWS` rows at most)
        self._first_sql: str | None = None
        #: positions this feed moved the sequence to: no row stands there
        self._restarts: set[int] = set()

    def __repr__(self) -> str:
        return f"SqlFeed(dialect={self.dialect!r}, table={self.table!r})"

    def ddl(self) -> list[str]:
        """Return the idempotent statements creating the feed table."""
        if self.dialect == "postgresql":
            return [
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "tid BIGSERIAL PRIMARY KEY, key VARCHAR(255) NOT NULL)"
            ]
        if self.dialect == "mysql":
            return [
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "tid BIGINT AUTO_INCREMENT PRIMARY KEY, `key` VARCHAR(255) NOT NULL) "
                "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                *self.lock_ddl(),
            ]
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "tid INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(255) NOT NULL)"
        ]

    def lock_ddl(self) -> list[str]:
        """Return the idempotent statements creating the MySQL lock table (none elsewhere)."""
        if self.dialect != "mysql":
            return []
        return [
            f"CREATE TABLE IF NOT EXISTS {self.lock_table} (id TINYINT PRIMARY KEY) ENGINE=InnoDB",
            f"INSERT IGNORE INTO {self.lock_table} (id) VALUES (1)",
        ]

    def lock_sql(self) -> str | None:
        """Return the statement that takes the writers' lock until the transaction ends.

        ``None`` on SQLite, which serializes writers itself. Capture triggers run the same
        statement before their first feed row.
        """
        if self.dialect == "postgresql":
            return f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})"
        if self.dialect == "mysql":
            return f"INSERT INTO {self.lock_table} (id) VALUES (1) ON DUPLICATE KEY UPDATE id = id"
        return None

    def lock(self, conn: Any) -> None:
        """Serialize log writers until the current transaction ends (not needed on SQLite)."""
        sql = self.lock_sql()
        if sql is None:
            return
        cur = conn.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    def append(self, conn: Any, keys: Iterable[str]) -> int:
        """Write one row per key inside the open transaction; return the newest tid written.

        Call it just before the transaction commits (the lock it takes is held until then).
        With ``capture``, keys of tables whose capture triggers ran in this transaction are
        left out (see :mod:`cachedeps.capture`).

        Raises:
            FeedError: no keys.
            Exception: the database's own error, unchanged.
        """
        keys = list(keys)
        rows = list(dict.fromkeys(feed_key(k) for k in keys))
        if not rows:
            raise FeedError("SqlFeed.append needs at least one key; a write that changes nothing needs no tid")
        with self._noted(f"appending {len(rows)} key(s)"):
            captured_tid = None
            if self.capture:
                captured = self._captured(conn)
                if captured:
                    rows = list(dict.fromkeys(feed_key(k) for k in keys if _table_of(k) not in captured))
                    captured_tid = self._flush(conn)
                    if not rows:
                        return int(captured_tid)
            self.lock(conn)
            cur = conn.cursor()
            try:
                for i in range(0, len(rows), _CHUNK):
                    chunk = rows[i : i + _CHUNK]
                    values = ",".join([f"({self._p})"] * len(chunk))
                    cur.execute(f"INSERT INTO {self.table} ({self._k}) VALUES {values}", chunk)
                # Writers are serialized (advisory lock / lock row / SQLite write lock), so the newest
                # tid in the table is ours.
                cur.execute(f"SELECT MAX(tid) FROM {self.table}")
                tid = cur.fetchone()[0]
            finally:
                cur.close()
            if (
                self.dialect == "postgresql"
                and tid is not None
                and int(tid) // STATS_EVERY != (int(tid) - len(rows)) // STATS_EVERY
            ):
                self._ensure_statistics(conn)
        return int(tid)

    def _ensure_statistics(self, conn: Any) -> None:
        """PostgreSQL: ANALYZE the feed table when its statistics are missing or it outgrew them.

        Runs under the writers' lock, in the writer's transaction, inside a savepoint; a
        failure is logged and undone, never raised (see *Statistics* in :class:`SqlFeed`).
        """
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {self.table} LIMIT {STATS_MIN_ROWS}) AS r), "
                "EXISTS (SELECT 1 FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname "
                "WHERE n.oid = c.relnamespace AND s.tablename = c.relname AND s.attname = 'tid'), "
                "c.relpages, pg_relation_size(c.oid) / current_setting('block_size')::int "
                f"FROM pg_class c WHERE c.oid = to_regclass({self._p})",
                (self.table,),
            )
            row = cur.fetchone()
            if row is None:
                return
            rows, known, analyzed, pages = int(row[0]), bool(row[1]), int(row[2] or 0), int(row[3] or 0)
            if rows < STATS_MIN_ROWS or (known and pages <= max(analyzed * STATS_GROWTH, analyzed + 1)):
                return
            cur.execute("SAVEPOINT cachedeps_analyze")
            try:
                cur.execute(f"ANALYZE {self.table}")
            except Exception:
                cur.execute("ROLLBACK TO SAVEPOINT cachedeps_analyze")
                logger.warning("cachedeps: ANALYZE of the change feed table %r failed; polls may scan it",
                               self.table, exc_info=True)
            cur.execute("RELEASE SAVEPOINT cachedeps_analyze")
        finally:
            cur.close()

    def _captured(self, conn: Any) -> set[str]:
        """Return the tables whose capture triggers captured this transaction's writes."""
        if self.dialect == "postgresql":
            row = self._execute(conn, "SELECT current_setting('cachedeps.captured', true)", ())
            text = row[0] if row else None
            return {t for t in (text or "").split(",") if t}
        # SQLite: the write lock is ours since the first write, so the schema now is the
        # schema our writes ran under: a table with its capture triggers was captured.
        # MySQL/MariaDB: a table this transaction wrote is under its metadata lock until
        # COMMIT, so no DROP TRIGGER on it can have run since our writes.
        if self.dialect == "sqlite":
            sql = ("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'cachedeps_cap_%' "
                   "GROUP BY tbl_name HAVING count(*) >= 3")
        else:
            sql = ("SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                   "AND TRIGGER_NAME LIKE 'cachedeps_cap_%' GROUP BY EVENT_OBJECT_TABLE HAVING count(*) >= 3")
        cur = conn.cursor()
        try:
            cur.execute(sql)
            return {str(r[0]) for r in cur.fetchall()}
        finally:
            cur.close()

    def _flush(self, conn: Any) -> int:
        """Move this transaction's staged keys into the feed (PostgreSQL) and return the
        newest tid, under the writers' lock."""
        if self.dialect == "postgresql":
            row = self._execute(conn, "SELECT cachedeps_capture_flush()", ())
        else:
            row = self._execute(conn, f"SELECT MAX(tid) FROM {self.table}", ())
        return int(row[0]) if row and row[0] is not None else 0

    def poll(self, conn: Any, after: int) -> Poll:
        """Return the changes after ``after`` with one indexed query (two after a burst).

        Incomplete when rows were pruned, when more than ``max_rows`` came, or when the feed
        lost the row at ``after`` (moving a sequence that went backwards past ``after``).

        On PostgreSQL the first statement reads at most :data:`FIRST_ROWS` rows, so that its
        generic plan is cheap and a prepared poll is planned only for its first executions
        (see :class:`SqlFeed`, *prepare*); when it comes back full, a second one reads on from
        the last row it returned, which must still stand.
        """
        with self._noted(f"polling after tid {after}"):
            if self._poll_sql is None:
                self._poll_sql = self._full_poll_sql(conn)
            if self.dialect != "postgresql":
                sequence, rows = self._fetch(conn, self._poll_sql, after, False)
                return self._judge(conn, after, sequence, rows)
            if self._first_sql is None:
                self._first_sql = f"{self._rows_from(FIRST_ROWS)} UNION ALL {self._sequence_sql(conn)}"
            sequence, rows = self._fetch(conn, self._first_sql, after, self.prepare)
            if len(rows) >= FIRST_ROWS:
                # More may follow. The second statement's snapshot is newer: its rows and its
                # sequence stand for the whole poll, provided the row the first one ended at
                # is still there (else rows between the two may be lost) and the numbering
                # did not go back in between.
                last = int(rows[-1][0])
                sequence, more = self._fetch(conn, self._poll_sql, last, False)
                if sequence < last or not (more and int(more[0][0]) == last):
                    lost = self._judge(conn, last, sequence, more)
                    return Poll(lost.tid, [], False)
                rows = rows[:-1] + more
            return self._judge(conn, after, sequence, rows)

    def _fetch(self, conn: Any, sql: str, after: int, prepare: bool) -> tuple[int, list[tuple[Any, str]]]:
        """Run one poll statement from ``after``; return the sequence's last tid and the rows."""
        cur = conn.cursor()
        try:
            params = (after, self.table) if self.dialect == "sqlite" else (after,)
            if prepare:
                cur.execute(sql, params, prepare=True)
            else:
                cur.execute(sql, params)
            got = cur.fetchall()
        finally:
            cur.close()
        sequence = 0
        rows = []
        for tid, key in got:
            if key is None:
                sequence = int(tid)
            else:
                rows.append((tid, key))
        rows.sort(key=lambda r: r[0])
        return sequence, rows

    def _judge(self, conn: Any, after: int, sequence: int, rows: list[tuple[Any, str]]) -> Poll:
        """Turn the rows from ``after`` (and the sequence's last tid) into a :class:`Poll`."""
        if self.dialect == "mysql":
            # InnoDB never sets the counter at or below MAX(tid): with the row at our
            # position still there, the numbering did not go back. Only without it is
            # the counter read (information_schema: a second, costlier query).
            if after > 0 and not (rows and int(rows[0][0]) == after):
                row = self._execute(conn, self._sequence_sql(conn), (self.table,))
                sequence = int(row[0]) if row and row[0] is not None else 0
            else:
                sequence = after
        if sequence < after:
            # The numbering went back (sequence reset, table recreated, backup restored).
            return Poll(self._restart(conn, after), [], False)
        if after > 0 and after not in self._restarts and (not rows or int(rows[0][0]) != after):
            # The row at our position is gone (truncated, deleted, restored): rows after
            # it may be lost; the numbering did not go back, so later tids are higher.
            head = max(int(rows[-1][0]) if rows else 0, self._max_tid(conn))
            if head <= after:
                self._unanchored(after)  # no row stands there now: do not reset again
            return Poll(max(head, after), [], False)
        anchored = bool(rows) and int(rows[0][0]) == after
        if anchored:
            rows = rows[1:]
        complete = True
        head = int(rows[-1][0]) if rows else after
        # The row at head stands (the last row, or the anchor) and nothing after it.
        exact = self.dialect == "postgresql" and anchored and sequence >= head
        if len(rows) > self.max_rows:
            complete = exact = False
            rows = rows[: self.max_rows]
            head = max(head, self._max_tid(conn))
        changes: list[tuple[int, str]] = []
        for tid, key in rows:
            if key[:1] == "!" and key.startswith(RAW_PREFIX):
                key = unraw(key)
            elif key.startswith(PRUNED_PREFIX):
                try:
                    pruned = int(key[len(PRUNED_PREFIX) :])
                except ValueError:
                    pruned = tid
                if after < pruned:
                    complete = False
                continue
            if key.startswith(RESTART_PREFIX):
                continue
            changes.append((int(tid), key))
        return (ExactPoll if exact and complete else Poll)(head, changes, complete)

    def _rows_from(self, limit: int) -> str:
        return (
            f"SELECT tid, {self._k} FROM (SELECT tid, {self._k} FROM {self.table} WHERE tid >= {self._p} "
            f"ORDER BY tid LIMIT {limit}) AS c"
        )

    def _full_poll_sql(self, conn: Any) -> str:
        """Return the poll's one query: the rows from the position, and (except on MySQL,
        see :meth:`poll`) the sequence's last tid."""
        if self.dialect == "mysql":
            return self._rows_sql
        return f"{self._rows_sql} UNION ALL {self._sequence_sql(conn)}"

    def _max_tid(self, conn: Any) -> int:
        row = self._execute(conn, f"SELECT MAX(tid) FROM {self.table}", ())
        return int(row[0]) if row and row[0] is not None else 0

    def _sequence_sql(self, conn: Any) -> str:
        """Return a SELECT of the last tid the table's sequence handed out, key NULL."""
        if self.dialect == "postgresql":
            return (
                f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END, NULL "
                f"FROM {self._sequence_name(conn)}"
            )
        if self.dialect == "mysql":
            # The AUTO_INCREMENT counter is the next tid; MAX(tid) is below it (and trusted
            # too where information_schema caches the counter, MySQL 8).
            return (
                "SELECT GREATEST(COALESCE((SELECT MAX(AUTO_INCREMENT) - 1 FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {self._p}), 0), "
                f"COALESCE((SELECT MAX(tid) FROM {self.table}), 0)), NULL"
            )
        return f"SELECT seq, NULL FROM sqlite_sequence WHERE name = {self._p}"

    def _sequence_name(self, conn: Any) -> str:
        row = self._execute(conn, f"SELECT pg_get_serial_sequence({self._p}, 'tid')", (self.table,))
        if not row or not row[0]:
            raise FeedError(f"feed table {self.table!r} has no sequence on its tid column")
        return str(row[0])

    def _restart(self, conn: Any, after: int) -> int:
        """Move the tid sequence to ``after + RESTART_GAP`` (if still behind); return it.

        Taken under the writers' lock, so every tid handed out before has committed (and
        was visible to the poll that found the feed behind) and every later one is higher.
        """
        target = after + RESTART_GAP
        if self.dialect == "postgresql":
            seq = self._sequence_name(conn)
            self._execute(conn, f"SELECT pg_advisory_lock({ADVISORY_LOCK_ID})", ())
            try:
                row = self._execute(conn, f"SELECT last_value FROM {seq}", ())
                if int(row[0]) < target:
                    self._execute(conn, f"SELECT setval({self._p}, {self._p})", (seq, target))
                else:
                    target = int(row[0])
            finally:
                self._execute(conn, f"SELECT pg_advisory_unlock({ADVISORY_LOCK_ID})", ())
        elif self.dialect == "mysql":
            # One statement: the lock row is read FOR UPDATE (every writer that took a tid
            # before has committed) and the row at ``target`` moves the counter past it.
            # In autocommit mode the statement is its own transaction; inside the caller's
            # transaction the lock is held until it ends.
            cur = conn.cursor()
            try:
                for stmt in self.lock_ddl()[1:]:
                    cur.execute(stmt)
                cur.execute(
                    f"INSERT IGNORE INTO {self.table} (tid, {self._k}) SELECT {self._p}, {self._p} "
                    f"FROM {self.lock_table} WHERE id = 1 FOR UPDATE",
                    (target, f"{RESTART_PREFIX}{target}"),
                )
            finally:
                cur.close()
        else:
            cur = conn.cursor()
            try:
                cur.execute(
                    f"UPDATE sqlite_sequence SET seq = {self._p} WHERE name = {self._p} AND seq < {self._p}",
                    (target, self.table, target),
                )
                cur.execute(
                    f"INSERT INTO sqlite_sequence (name, seq) SELECT {self._p}, {self._p} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {self._p})",
                    (self.table, target, self.table),
                )
                cur.execute(f"SELECT seq FROM sqlite_sequence WHERE name = {self._p}", (self.table,))
                target = int(cur.fetchone()[0])
            finally:
                cur.close()
        self._unanchored(target)
        return target

    def _unanchored(self, position: int) -> None:
        """Remember a position no row stands at (polls from it skip the row check)."""
        if len(self._restarts) > 64:
            self._restarts.clear()
        self._restarts.add(position)

    def head(self, conn: Any) -> int:
        """Return the newest tid in the table (0 when empty)."""
        with self._noted("reading the head"):
            if self._poll_sql is None:  # resolved here, so that polls are one query each
                self._poll_sql = self._full_poll_sql(conn)
                if self.dialect == "postgresql":
                    self._first_sql = f"{self._rows_from(FIRST_ROWS)} UNION ALL {self._sequence_sql(conn)}"
            return self._max_tid(conn)

    def prune(self, conn: Any, keep: int) -> int:
        """Delete all but the newest ``keep`` rows; return the tid pruned up to (0: nothing).

        Run it in its own transaction. Pollers behind the pruned tid see a marker row and
        reset (misses, never stale reads).
        """
        if keep < 0:
            raise FeedError(f"SqlFeed.prune keep must be >= 0, got {keep!r}")
        with self._noted("pruning"):
            self.lock(conn)
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
                cur.execute(
                    f"INSERT INTO {self.table} ({self._k}) VALUES ({self._p})", (f"{PRUNED_PREFIX}{upto}",)
                )
            finally:
                cur.close()
        return upto

    def prune_in_savepoint(self, conn: Any, keep: int) -> int:
        """Prune inside the caller's open transaction, in a savepoint; return the tid pruned up to.

        For adapters that prune every so many commits in a committing transaction: a failure
        is rolled back to the savepoint and logged, never the writer's error (0 returned);
        the next prune retries. After a prune the transaction holds the writers' lock.
        """
        cur = conn.cursor()
        try:
            cur.execute("SAVEPOINT cachedeps_prune")
            try:
                upto = self.prune(conn, keep)
            except Exception:  # pruning is housekeeping; the next one retries
                cur.execute("ROLLBACK TO SAVEPOINT cachedeps_prune")
                logger.warning("cachedeps: pruning the change feed table %r failed", self.table, exc_info=True)
                upto = 0
            cur.execute("RELEASE SAVEPOINT cachedeps_prune")
        finally:
            cur.close()
        return upto

    def _execute(self, conn: Any, sql: str, params: tuple) -> Any:
        cur = conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchone()
        finally:
            cur.close()

    @contextmanager
    def _noted(self, what: str) -> Iterator[None]:
        """Let the database's errors through unchanged, noting which feed call met them."""
        try:
            yield
        except Exception as exc:
            if not isinstance(exc, FeedError):
                exc.add_note(
                    f"cachedeps: raised while {what} in change feed table {self.table!r} "
                    "(if the table is missing, create it: Django: manage.py migrate; "
                    "SQLAlchemy: sqla_cachedeps.create_feed_table(engine))"
                )
            raise


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

    def _restart(self, head: int, after: int) -> int:
        """Move the counter to at least ``after + RESTART_GAP``; return its new value.

        ``incr`` is atomic, so concurrent moves only add up. An invalidation that took a
        tid below the new value changed its state before it took the tid: whatever is
        computed after the move already sees it.
        """
        tid = self.store.incr(self._counter, after - head + RESTART_GAP)
        if tid is None:
            self.store.add(self._counter, str(after + RESTART_GAP).encode())
            return self.head(None)
        return int(tid)

    def poll(self, conn: Any, after: int) -> Poll:
        """Read the counter and the entries after ``after`` (two round trips)."""
        head = self.head(conn)
        if head < after:
            # The counter was recreated behind us (a store restarted, a process whose clock
            # is behind): entries may be lost, and its tids would fall below stamps already
            # given. Move it past our position; everything before becomes a miss.
            return Poll(self._restart(head, after), [], False)
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
