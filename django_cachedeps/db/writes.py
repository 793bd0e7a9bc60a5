"""Turn ORM writes into dependency keys, appended to the feed in the writer's transaction.

The write half of the compilers: INSERT, UPDATE and DELETE statements built by the ORM
(``save``, ``delete`` with its cascades, ``QuerySet.update/delete``, ``bulk_create``,
``bulk_update``, m2m ``add/remove/clear/set``) all pass through
:class:`InsertTracking`, :class:`UpdateTracking` or :class:`DeleteTracking`. Each write runs
inside ``transaction.atomic(savepoint=False)`` so that data and feed rows commit together:

1. take the feed's writers' lock;
2. read the old column values of the rows the statement will touch (UPDATE, DELETE);
3. run the statement;
4. read the new values by primary key (INSERT, UPDATE);
5. ``keys.row_keys(table, pk, old, new)`` per row, appended to the feed → tid; rows are
   read as the database returns them (before ``from_db_value``), so keys are spelled from
   stored values and a change the database sees (JSON ``1`` → ``true``) is a change
   (:mod:`cachedeps.algebra`);
6. ``on_commit``: ``engine.committed(keys, tid)`` (dropped with a rolled-back savepoint).

A statement touching more than :data:`MAX_TRACKED_ROWS` rows, changing a primary key, or
whose rows cannot be known (an INSERT with ON CONFLICT, no returned primary key) emits the
table key and the all-rows key instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Iterator

from cachedeps import keys as ck
from django.db import connections, transaction
from django.db.models.query import QuerySet
from django.db.models.sql.constants import MULTI
from django.db.models.sql.query import Query

from .. import runtime
from ..conf import get_settings, table_is_cached
from .hints import own_statements

__all__ = [
    "MAX_TRACKED_ROWS",
    "PRUNE_EVERY",
    "InsertTracking",
    "UpdateTracking",
    "DeleteTracking",
    "write_scope",
    "tracked",
]

logger = logging.getLogger("django_cachedeps")

#: Above this many rows in one statement, emit the table and all-rows keys instead of row keys.
MAX_TRACKED_ROWS = 1000
#: Prune the feed after this many commits in one process.
PRUNE_EVERY = 1000
_CHUNK = 500

_commits = 0
_commits_lock = threading.Lock()


def tracked(compiler: Any) -> bool:
    """Return whether ``compiler``'s write must emit dependency keys."""
    if not get_settings().enabled:
        return False
    return table_is_cached(compiler.query.get_meta().db_table) and runtime.feed_ready(compiler.using)


def _committed(engine: Any, keys: list[str], tid: int, using: str) -> None:
    global _commits
    engine.committed(keys, tid)
    with _commits_lock:
        _commits += 1
        due = _commits % PRUNE_EVERY == 0
    if due:
        _prune(engine, using)


def _prune(engine: Any, using: str) -> None:
    keep = get_settings().feed_keep
    try:
        with transaction.atomic(using=using), own_statements():
            engine.feed.prune(connections[using], keep)
    except Exception:  # pruning is housekeeping; the next one retries
        logger.warning("cachedeps: pruning the change feed of %r failed", using, exc_info=True)


@contextlib.contextmanager
def write_scope(using: str) -> Iterator[list[str]]:
    """Run a write with its feed bookkeeping; the caller adds keys to the yielded list.

    Opens ``atomic(savepoint=False)``, marks the connection's transaction as written, takes
    the feed lock, and after the block appends the keys and registers ``engine.committed``
    to run on commit.
    """
    connection = connections[using]
    engine = runtime.get_engine(using=using)
    with transaction.atomic(using=using, savepoint=False), own_statements():
        connection.cachedeps_written = True
        engine.feed.lock(connection)
        keys: list[str] = []
        yield keys
        if keys:
            keys = list(dict.fromkeys(keys))
            tid = engine.feed.append(connection, keys)
            transaction.on_commit(lambda: _committed(engine, keys, tid, using), using=using)


def _local_fields(model: Any) -> list[Any]:
    return list(model._meta.local_concrete_fields)


class _Row:
    """One row as stored: its primary key's database value and its columns' values."""

    __slots__ = ("pk", "values")

    def __init__(self, pk: Any, values: dict[str, Any]) -> None:
        self.pk = pk
        self.values = values


def _rows_by_pk(model: Any, using: str, queryset: QuerySet, limit: int | None) -> dict[Any, _Row] | None:
    """Return ``{pk: row}`` for the table's own columns (``pk`` the Python value, the row's
    values as the database returns them, before converters), ``None`` over ``limit``."""
    fields = _local_fields(model)
    pk = model._meta.pk
    names = [f.attname for f in fields]
    if pk.attname not in names:
        names.append(pk.attname)
    qs = queryset.values_list(*names)
    if limit is not None:
        qs = qs[: limit + 1]
    compiler = qs.query.get_compiler(using=using)
    raw: list[tuple[Any, ...]] = []
    for chunk in compiler.execute_sql(MULTI) or ():
        raw.extend(tuple(r[: len(names)]) for r in chunk)
    pk_index = names.index(pk.attname)
    out: dict[Any, _Row] = {}
    # The Python value of each primary key (to filter on it again), through the converters.
    for stored, converted in zip(raw, compiler.results_iter(results=[[list(r) for r in raw]])):
        out[converted[pk_index]] = _Row(stored[pk_index], {f.column: stored[i] for i, f in enumerate(fields)})
    if limit is not None and len(out) > limit:
        return None
    return out


def _rows_for_pks(model: Any, using: str, pks: list[Any]) -> dict[Any, _Row]:
    out: dict[Any, _Row] = {}
    manager = model._base_manager.using(using)
    for i in range(0, len(pks), _CHUNK):
        found = _rows_by_pk(model, using, manager.filter(pk__in=pks[i : i + _CHUNK]), None)
        out.update(found or {})
    return out


def _matching_rows(compiler: Any) -> dict[Any, _Row] | None:
    """Return the current rows an UPDATE/DELETE query's WHERE selects (``None``: too many)."""
    model = compiler.query.model
    select = compiler.query.chain(klass=Query)
    select.select_related = False
    select.clear_ordering(force=True)
    select.extra = {}
    select.select = ()
    select.default_cols = True
    return _rows_by_pk(model, compiler.using, QuerySet(model=model, query=select, using=compiler.using),
                       MAX_TRACKED_ROWS)


def _unknown_rows(table: str) -> list[str]:
    return [ck.table_key(table), ck.all_rows_key(table)]


def _row_keys(table: str, old: dict[Any, _Row], new: dict[Any, _Row]) -> list[str]:
    out: list[str] = []
    for pk in old.keys() | new.keys():
        before, after = old.get(pk), new.get(pk)
        stored_pk = (before or after).pk  # type: ignore[union-attr]
        out.extend(ck.row_keys(table, stored_pk, before and before.values, after and after.values))
    return out


class InsertTracking:
    """Emit the keys of inserted rows; mix in before Django's ``SQLInsertCompiler``."""

    def execute_sql(self, returning_fields: Any = None) -> Any:
        """Insert, then emit the inserted rows' keys (values read back by primary key)."""
        if not tracked(self):
            return super().execute_sql(returning_fields)  # type: ignore[misc]
        query = self.query  # type: ignore[attr-defined]
        model = query.model
        opts = query.get_meta()
        table = opts.db_table
        with write_scope(self.using) as keys:  # type: ignore[attr-defined]
            rows = super().execute_sql(returning_fields)  # type: ignore[misc]
            pks = self._cachedeps_pks(rows, returning_fields)
            if pks is None or len(pks) > MAX_TRACKED_ROWS or query.on_conflict is not None:
                keys.extend(_unknown_rows(table))
            elif pks:
                keys.extend(_row_keys(table, {}, _rows_for_pks(model, self.using, pks)))  # type: ignore[attr-defined]
                # A pk the read-back missed still had its oid cached as "no such row".
                connection = connections[self.using]  # type: ignore[attr-defined]
                keys.extend(ck.oid(table, opts.pk.get_db_prep_value(pk, connection, prepared=False))
                            for pk in pks)
        return rows

    def _cachedeps_pks(self, rows: Any, returning_fields: Any) -> list[Any] | None:
        query = self.query  # type: ignore[attr-defined]
        pk = query.get_meta().pk
        if any(f is pk for f in query.fields):
            values = [getattr(obj, pk.attname) for obj in query.objs]
            if any(hasattr(v, "resolve_expression") or v is None for v in values):
                return None
            return values
        if returning_fields and rows and len(rows) == len(query.objs):
            for i, field in enumerate(returning_fields):
                if field is pk:
                    return [row[i] for row in rows]
        return None


class UpdateTracking:
    """Emit the keys of updated rows (old and new values); mix in before ``SQLUpdateCompiler``."""

    def execute_sql(self, result_type: Any) -> Any:
        """Read the rows the UPDATE will change, run it, read them again, emit their keys."""
        if not tracked(self):
            return super().execute_sql(result_type)  # type: ignore[misc]
        query = self.query  # type: ignore[attr-defined]
        model = query.model
        table = query.get_meta().db_table
        pk = query.get_meta().pk
        with write_scope(self.using) as keys:  # type: ignore[attr-defined]
            changes_pk = any(field.column == pk.column for field, _, _ in query.values)
            old = None if changes_pk else _matching_rows(self)
            count = super().execute_sql(result_type)  # type: ignore[misc]
            if old is None:
                keys.extend(_unknown_rows(table))
            elif old:
                new = _rows_for_pks(model, self.using, list(old))  # type: ignore[attr-defined]
                keys.extend(_row_keys(table, old, new))
        return count


class DeleteTracking:
    """Emit the keys of deleted rows (their last values); mix in before ``SQLDeleteCompiler``."""

    def execute_sql(self, result_type: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Read the rows the DELETE will remove, run it, emit their keys."""
        if not tracked(self):
            return super().execute_sql(result_type, *args, **kwargs)  # type: ignore[misc]
        table = self.query.get_meta().db_table  # type: ignore[attr-defined]
        with write_scope(self.using) as keys:  # type: ignore[attr-defined]
            old = _matching_rows(self)
            count = super().execute_sql(result_type, *args, **kwargs)  # type: ignore[misc]
            if old is None:
                keys.extend(_unknown_rows(table))
            elif old:
                keys.extend(_row_keys(table, old, {}))
        return count
