"""Capture triggers: the database itself appends every write's keys to the change feed.

The adapters see only the writes that pass through the ORM. A row changed by ``psql``, a
job in another language, a trigger of the application's schema or an ``ON DELETE CASCADE``
is invisible to them. Capture triggers close that gap: installed on a cached table, they
append to the change feed, in the writer's transaction, the keys the adapters emit for the
same write (:func:`cachedeps.algebra.write_keys`): the table key, the row oids, the table
change keys (``t/*`` on insert and delete, ``t/<column>`` per changed column), and the
field-value and field-change keys of every column whose kind :data:`cachedeps.algebra.KINDS`
spells, for the old and the new version of each row.

This module is framework-free: it turns a table description (:class:`CaptureTable`: name,
primary key, columns with their :mod:`cachedeps.algebra` kinds) into DDL per dialect, and
installs, removes and inspects it on a DB-API connection. The adapters describe their tables
(``manage.py cachedeps_capture``, ``sqla_cachedeps.capture``).

Spelling
--------
Values are spelled in SQL exactly as :func:`cachedeps.keys.canonical_value` spells the
stored value, one SQL expression per kind (:data:`SPELLING`; a kind missing there is a test
failure). A value the SQL cannot spell exactly (an integer column holding a real on SQLite,
a boolean column holding 2) makes the row emit the all-rows key ``t:*`` instead: coarser,
never missing. Text needs care: the engine replaces text over 64 characters, holding a
space or a character Python does not call printable, by a digest. On PostgreSQL the
trigger computes the digest (SHA-256, built in); for short non-ASCII text, whose
printability SQL cannot decide the way Python does, it emits both the text and its digest
(one key too many costs nothing). SQLite has no hash function: its triggers write such a
value *raw* (``!raw:<head>\\x1f<tail>\\x1f<value>``) and the poller spells it
(:func:`cachedeps.feed.unraw`). Columns of a kind outside the table (floats, dates, JSON,
case-insensitive text...) get no field-value keys: no read depends on them (reads anchor
only on spellable kinds); their changes still emit ``t/<column>``.

A table without a primary key, with a composite one, or whose key column is not spellable,
is captured with table keys only (``t`` and ``t:*`` per statement or row); so is a
statement over more than :data:`MAX_ROWS` rows (as the adapters do), and a row whose key
would not fit the feed's column (over 255 bytes). :func:`status` reports each fallback.

Drift
-----
A trigger knows the columns of the table when it was installed. When the table's columns
change (a migration adds one), every trigger checks, before spelling anything, that the
table's column names are still the ones it was generated for; if not, it emits the table's
coarse keys (``t``, ``t:*``) until capture is installed again. :func:`status` lists it.

Ordering (PostgreSQL)
---------------------
The feed requires that a poller never misses a lower tid committed after a higher one
(:mod:`cachedeps.feed`): tids are taken at COMMIT under ``pg_advisory_xact_lock``
(:data:`~cachedeps.feed.ADVISORY_LOCK_ID`). Triggers run mid-transaction, so they must not
take tids. Instead:

1. A statement-level ``AFTER`` trigger with transition tables (one per INSERT, UPDATE,
   DELETE; TRUNCATE has its own) computes the statement's keys with one query over the
   transition tables and stages them in ``cachedeps_capture_stage`` under the transaction's
   id (``txid_current()``). The first staging of a transaction also inserts one row into
   ``cachedeps_capture_tx``, whose ``DEFERRABLE INITIALLY DEFERRED`` constraint trigger fires
   at COMMIT, and records in the transaction-local setting ``cachedeps.captured`` which
   tables it captured (the adapters read it, below).
2. At COMMIT the constraint trigger calls ``cachedeps_capture_flush()``: it takes the same
   advisory lock as :meth:`SqlFeed.append <cachedeps.feed.SqlFeed.append>` and moves the
   staged keys into the feed, taking tids from the feed's sequence. The lock is held until
   the COMMIT completes.

Proof: every tid is taken by a transaction holding the lock, and held until it commits
(or aborts, leaving a hole). Two transactions' tid ranges are therefore disjoint and
ordered like their commits: when a poller's snapshot shows tid ``T``, every transaction that
took a tid below ``T`` had released the lock, i.e. had committed or aborted, before ``T``'s
transaction took it; a poller cannot later find a lower tid. Writes staged *during*
COMMIT (a deferred trigger of the application writing a captured table after the flush
ran) stage again, queue a new deferred event (``cachedeps.pending`` was cleared by the
flush) and are flushed by it in the same COMMIT, still under the lock. Staged rows,
settings and queued events all follow savepoints: a rolled-back savepoint takes its keys
with it. The staging table is ``UNLOGGED`` (rows never outlive their transaction).

Every function pins the ``search_path`` it was created under (``SET search_path FROM
CURRENT``): a writer connected with another ``search_path`` still reaches the staging table
and the feed of the captured table's schema.

An event trigger turns ``ALTER TABLE`` and ``DROP TABLE`` of a captured table into its
table keys through the same staging (it needs a superuser to install; without one,
:func:`status` says DDL is not captured).

Ordering (SQLite)
-----------------
SQLite serializes writers: row triggers insert into the feed directly; the write lock is
held from the transaction's first write to its COMMIT, so tids are ordered like commits.

Ordering (MariaDB/MySQL)
------------------------
Row triggers (there are no statement triggers) first take the MySQL feed's lock row
(``INSERT INTO <feed>_lock ... ON DUPLICATE KEY UPDATE``, the lock its appends take), which
InnoDB holds until the transaction ends, then insert into the feed: tids come from the
AUTO_INCREMENT counter under that lock, so tid ranges are disjoint and ordered like
commits. The cost: writers of captured tables are serialized from their first captured row
to their COMMIT. Values are digested with ``SHA2``, as on PostgreSQL.

One source of truth
-------------------
With capture installed, a feed built with ``capture=True`` (:class:`~cachedeps.feed.SqlFeed`)
does not append the adapters' keys of captured tables: :meth:`SqlFeed.append` asks the
transaction which tables the triggers captured (PostgreSQL: the ``cachedeps.captured``
setting, set only by a trigger that ran in this transaction; SQLite: the capture triggers in
the schema, read in the writer's own write transaction, so no DDL can have changed them
since its writes; MySQL: the same, the tables it wrote being under its metadata locks), appends only the other keys, flushes the staged ones and returns the
newest tid. The writer still hands its keys to its own cache (read-your-writes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import algebra
from ._capture_ddl import _REGISTRY, MAX_ROWS, SPELLING, _check_dialect, _fname, _lit, _q, capture_ddl, remove_ddl
from .errors import ConfigurationError

__all__ = [
    "MAX_ROWS",
    "SPELLING",
    "CaptureColumn",
    "CaptureTable",
    "TableStatus",
    "capture_ddl",
    "remove_ddl",
    "install",
    "remove",
    "status",
    "describe",
    "ddl_captured",
]


@dataclass(frozen=True)
class CaptureColumn:
    """One column: its name and its :mod:`cachedeps.algebra` kind (``OTHER``: not spelled)."""

    name: str
    kind: str = algebra.OTHER


@dataclass(frozen=True)
class CaptureTable:
    """A table as the triggers see it: name, primary key column(s), columns with kinds."""

    name: str
    pk: tuple[str, ...]
    columns: tuple[CaptureColumn, ...] = field(default=())

    def fallback(self) -> str | None:
        """Return why the table is captured with table keys only (``None``: row keys)."""
        if not self.pk:
            return "no primary key"
        if len(self.pk) > 1:
            return "composite primary key"
        kinds = {c.name: c.kind for c in self.columns}
        if kinds.get(self.pk[0], algebra.OTHER) not in algebra.KINDS:
            return f"primary key column {self.pk[0]!r} has no exact spelling"
        return None

    def unspelled(self) -> list[str]:
        """Return the columns that get no field-value keys (kind outside the type table)."""
        return [c.name for c in self.columns if c.kind not in algebra.KINDS]

    def spec(self) -> str:
        """Return the description as a stable JSON text (recorded at install)."""
        return json.dumps({"pk": list(self.pk), "columns": [[c.name, c.kind] for c in self.columns]},
                          sort_keys=True)

    def names(self) -> str:
        """Return the sorted column names, comma-separated (the triggers' drift check)."""
        return ",".join(sorted(c.name for c in self.columns))


def describe(name: str, pk: Sequence[str] | str | None, columns: Iterable[tuple[str, str]]) -> CaptureTable:
    """Return a :class:`CaptureTable` from plain values.

    Raises:
        ConfigurationError: a name holds characters the key spelling reserves.
    """
    pk_t = (pk,) if isinstance(pk, str) else tuple(pk or ())
    cols = tuple(CaptureColumn(n, k) for n, k in columns)
    for n in (name, *(c.name for c in cols)):
        if not n or any(ch in n for ch in "\x00\x1f\"'"):
            raise ConfigurationError(f"capture: table or column name {n!r} cannot be captured (quotes or control characters)")
    return CaptureTable(name, pk_t, cols)



def _run(conn: Any, statements: Iterable[str]) -> None:
    cur = conn.cursor()
    try:
        for sql in statements:
            cur.execute(sql)
    finally:
        cur.close()


def _rows(conn: Any, sql: str) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def _superuser(conn: Any) -> bool:
    return bool(_rows(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0])


def install(conn: Any, dialect: str, tables: Iterable[CaptureTable], feed_table: str = "cachedeps_change") -> list[str]:
    """Install capture for ``tables`` in ``conn``'s open transaction; return the statements run.

    Installing again replaces the triggers with identical ones (a no-op in effect). The
    caller commits. On PostgreSQL the DDL event trigger is installed only by a superuser.
    """
    dialect = _check_dialect(dialect)
    events = dialect == "postgresql" and _superuser(conn)
    statements = capture_ddl(dialect, tables, feed_table, ddl_events=events)
    _run(conn, statements)
    return statements


def _installed(conn: Any, dialect: str) -> dict[str, str]:
    """Return ``{table: recorded spec}`` of the registry (empty without one)."""
    if dialect == "postgresql":
        present = _rows(conn, f"SELECT to_regclass('{_REGISTRY}') IS NOT NULL")[0][0]
    elif dialect == "mysql":
        present = bool(_rows(conn, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                   f"AND TABLE_NAME = '{_REGISTRY}'"))
    else:
        present = bool(_rows(conn, f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{_REGISTRY}'"))
    if not present:
        return {}
    return {str(t): str(s) for t, s in _rows(conn, f"SELECT tbl, spec FROM {_REGISTRY}")}


def remove(conn: Any, dialect: str, tables: Iterable[str] | None = None) -> list[str]:
    """Remove capture from ``tables`` (``None``: every captured table) in ``conn``'s open
    transaction; the shared objects go with the last table. Return the statements run."""
    dialect = _check_dialect(dialect)
    installed = _installed(conn, dialect)
    names = list(installed) if tables is None else list(tables)
    rest = set(installed) - set(names)
    statements = remove_ddl(dialect, names, everything=not rest)
    if dialect != "postgresql" and rest:
        statements += [f"DELETE FROM {_REGISTRY} WHERE tbl = {_lit(t)}" for t in names]
    _run(conn, statements)
    return statements


@dataclass(frozen=True)
class TableStatus:
    """What :func:`status` found for one table."""

    table: str
    installed: bool
    fallback: str | None = None
    unspelled: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    #: MySQL: tables its foreign key actions reach, which its triggers invalidate whole
    cascades: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Installed and without drift."""
        return self.installed and not self.drift

    def describe(self) -> str:
        """Return one line for ``cachedeps_capture status``."""
        if not self.installed:
            return f"{self.table}: not captured"
        parts = [f"{self.table}: captured"]
        parts.append(f"table keys only ({self.fallback})" if self.fallback else "row keys")
        if self.unspelled:
            parts.append("no field-value keys for " + ", ".join(self.unspelled) + " (type not spelled)")
        if self.cascades:
            parts.append("table keys of " + ", ".join(self.cascades) + " on UPDATE/DELETE (foreign key actions fire no triggers)")
        if self.drift:
            parts.append("DRIFT: " + "; ".join(self.drift))
        return "; ".join(parts)


def _db_columns(conn: Any, dialect: str, table: str) -> list[str] | None:
    if dialect == "postgresql":
        rows = _rows(conn, f"SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass({_lit(_q(table))}) "
                           "AND attnum > 0 AND NOT attisdropped")
        exists = _rows(conn, f"SELECT to_regclass({_lit(_q(table))}) IS NOT NULL")[0][0]
    elif dialect == "mysql":
        rows = _rows(conn, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                           f"AND TABLE_NAME = {_lit(table)}")
        exists = bool(rows)
    else:
        rows = _rows(conn, f"SELECT name FROM pragma_table_info({_lit(table)})")
        exists = bool(rows)
    return [str(r[0]) for r in rows] if exists else None


def _triggers(conn: Any, dialect: str, table: str) -> int:
    if dialect == "postgresql":
        return int(_rows(conn, f"SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass({_lit(_q(table))}) "
                               "AND tgname LIKE 'cachedeps\\_capture\\_%'")[0][0])
    if dialect == "mysql":
        return int(_rows(conn, "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                               f"AND EVENT_OBJECT_TABLE = {_lit(table)} AND TRIGGER_NAME LIKE {_lit(_fname(table) + '_%')}")[0][0])
    return int(_rows(conn, f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = {_lit(table)} "
                           f"AND name LIKE {_lit(_fname(table) + '_%')}")[0][0])


def _my_cascades(conn: Any, table: str) -> list[str]:
    """Return the tables ``table``'s foreign key actions reach, transitively (MySQL)."""
    acts = "(r.DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR r.UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))"
    rc = "information_schema.REFERENTIAL_CONSTRAINTS r"
    return sorted(str(r[0]) for r in _rows(conn, (
        f"WITH RECURSIVE d (t) AS (SELECT r.TABLE_NAME FROM {rc} WHERE r.CONSTRAINT_SCHEMA = DATABASE() "
        f"AND r.REFERENCED_TABLE_NAME = {_lit(table)} AND {acts} UNION SELECT r.TABLE_NAME FROM {rc} "
        f"JOIN d ON r.REFERENCED_TABLE_NAME = d.t WHERE r.CONSTRAINT_SCHEMA = DATABASE() AND {acts}) SELECT t FROM d")))


def status(conn: Any, dialect: str, tables: Iterable[CaptureTable]) -> list[TableStatus]:
    """Return the capture status of ``tables`` (their current descriptions) on ``conn``.

    Drift: triggers missing, the description recorded at install differs from the current
    one, or the table's columns differ from the description (the triggers then emit table
    keys only until capture is installed again).
    """
    dialect = _check_dialect(dialect)
    installed = _installed(conn, dialect)
    out = []
    for table in tables:
        recorded = installed.get(table.name)
        if recorded is None:
            out.append(TableStatus(table.name, False))
            continue
        drift = []
        want = 4 if dialect == "postgresql" else 3
        if _triggers(conn, dialect, table.name) < want:
            drift.append("triggers missing (install again)")
        if recorded != table.spec():
            drift.append("the model changed since install (install again)")
        columns = _db_columns(conn, dialect, table.name)
        if columns is None:
            drift.append("the table does not exist")
        else:
            described = {c.name for c in table.columns}
            extra, missing = sorted(set(columns) - described), sorted(described - set(columns))
            if extra or missing:
                drift.append("columns differ from the description"
                             + (f" (in the table only: {', '.join(extra)})" if extra else "")
                             + (f" (described only: {', '.join(missing)})" if missing else "")
                             + "; the triggers emit table keys only")
        cascades = tuple(_my_cascades(conn, table.name)) if dialect == "mysql" else ()
        out.append(TableStatus(table.name, True, table.fallback(), tuple(table.unspelled()), tuple(drift), cascades))
    return out


def ddl_captured(conn: Any) -> bool:
    """Return whether PostgreSQL's DDL event trigger is installed."""
    return bool(_rows(conn, "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'cachedeps\\_capture\\_%'")[0][0])
