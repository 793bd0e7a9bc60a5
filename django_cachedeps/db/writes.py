"""Turn ORM writes into dependency keys, appended to the feed in the writer's transaction.

The write half of the compilers: INSERT, UPDATE and DELETE statements built by the ORM
(``save``, ``delete`` with its cascades, ``QuerySet.update/delete``, ``bulk_create``,
``bulk_update``, m2m ``add/remove/clear/set``) all pass through
:class:`InsertTracking`, :class:`UpdateTracking` or :class:`DeleteTracking`. Each write runs
inside ``transaction.atomic(savepoint=False)`` so that data and feed rows commit together:

1. read the old column values of the rows the statement will touch (UPDATE, DELETE), with
   ``FOR UPDATE`` where the database has it, so no concurrent writer changes them before
   this transaction ends (their keys are then exact without a transaction-long lock);
2. run the statement (more rows than were read: phantoms, keyed by table);
3. read the new values by primary key (INSERT, UPDATE);
4. ``keys.row_keys(table, pk, old, new)`` per row join the transaction's pending keys;
5. at COMMIT the connection (:mod:`.backends.base`) appends them to the feed under the feed
   lock, commits, and calls ``engine.committed(keys, tid)`` before any ``on_commit`` hook.

Rows are read as the database returns them (before ``from_db_value``), so keys are spelled
from stored values and a change the database sees (JSON ``1`` → ``true``) is a change
(:mod:`cachedeps.algebra`).

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
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models.query import QuerySet
from django.db.models.sql.constants import MULTI
from django.db.models.sql.query import Query

from .. import runtime
from ..conf import get_settings, table_is_written_through, unknown_rows_keys, view_base_keys
from .hints import own_statements

__all__ = [
    "MAX_TRACKED_ROWS",
    "PRUNE_EVERY",
    "InsertTracking",
    "UpdateTracking",
    "DeleteTracking",
    "write_scope",
    "emit",
    "pending",
    "publish",
    "committed",
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
    table = compiler.query.get_meta().db_table
    return table_is_written_through(table) and runtime.feed_ready(compiler.using)


@contextlib.contextmanager
def write_scope(using: str) -> Iterator[list[str]]:
    """Run a write with its feed bookkeeping; the caller adds keys to the yielded list.

    Opens ``atomic(savepoint=False)`` and marks the connection's transaction as written;
    after the block the keys join the transaction's pending keys, which the connection
    appends to the feed just before it commits (and hands to ``engine.committed`` right
    after, before Django's ``on_commit`` hooks run). Keys of a savepoint rolled back are
    dropped with it.
    """
    connection = connections[using]
    engine = runtime.get_engine(using=using)
    with transaction.atomic(using=using, savepoint=False), own_statements():
        connection.cachedeps_written = True
        keys: list[str] = []
        yield keys
        if keys:
            pending(connection, engine).update(dict.fromkeys(keys))


def emit(engine: Any, using: str, keys: Any) -> int:
    """Emit ``keys`` on ``engine``'s feed as a write on database ``using`` does (by hand:
    ``cache.invalidate()``, ``invalidate_model()``); return the tid (0 until COMMIT).

    In a cachedeps backend's transaction they join its pending keys (appended just before
    COMMIT, at once outside a transaction). On a stock Django backend (``cachedeps.E006``),
    whose commit is not ours, they are appended now, in its transaction.
    """
    from .backends.base import CachedepsWrapperMixin

    keys = list(dict.fromkeys(keys))
    if not keys:
        return 0
    connection = connections[using]
    if not isinstance(connection, CachedepsWrapperMixin):
        with transaction.atomic(using=using, savepoint=False), own_statements():
            tid = engine.feed.append(connection, keys)
            transaction.on_commit(lambda: engine.committed(keys, tid), using=using)
        return tid
    was_autocommit = connection.get_autocommit()
    with transaction.atomic(using=using, savepoint=False), own_statements():
        connection.cachedeps_written = True
        pending(connection, engine).update(dict.fromkeys(keys))
    if not was_autocommit:
        return 0  # appended when the transaction commits
    return max((t for e, _, t in connection.cachedeps_published if e is engine), default=0)


def _savepoint(connection: Any) -> Any:
    """Return the innermost savepoint of the open ``atomic()`` blocks (``None``: none)."""
    for sid in reversed(connection.savepoint_ids):
        if sid:
            return sid
    return None


def pending(connection: Any, engine: Any) -> dict[str, None]:
    """Return the keys ``connection``'s open transaction will append to ``engine``'s feed.

    Kept per savepoint: a savepoint rolled back drops its keys, a released one gives them
    to the enclosing level (:class:`~.backends.base.CachedepsWrapperMixin`).
    """
    levels = connection.__dict__.setdefault("cachedeps_pending", {})
    return levels.setdefault(_savepoint(connection), {}).setdefault(engine, {})


def publish(connection: Any) -> list[tuple[Any, list[str], int]]:
    """Append the open transaction's pending keys to the feed, just before COMMIT.

    Returns ``(engine, keys, tid)`` per engine, for :func:`committed` after the commit.
    """
    by_engine: dict[Any, dict[str, None]] = {}
    for level in connection.__dict__.get("cachedeps_pending", {}).values():
        for engine, keys in level.items():
            by_engine.setdefault(engine, {}).update(keys)
    out = []
    with own_statements():
        for engine, keys in by_engine.items():
            if keys:
                ks = list(keys)
                _maybe_prune(engine, connection)
                out.append((engine, ks, engine.feed.append(connection, ks)))
    return out


def committed(connection: Any, published: list[tuple[Any, list[str], int]]) -> None:
    """Hand the keys a commit published to their engines (local maps, purges)."""
    for engine, keys, tid in published:
        engine.committed(keys, tid)


def _maybe_prune(engine: Any, connection: Any) -> None:
    """Every :data:`PRUNE_EVERY` commits, prune the feed in the committing transaction."""
    global _commits
    with _commits_lock:
        _commits += 1
        due = _commits % PRUNE_EVERY == 0
    if not due:
        return
    engine.feed.prune_in_savepoint(connection, get_settings().feed_keep)


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
    # A composite primary key (Django 5.2) by its columns: ``pk`` would select them as one
    # tuple column, longer than its one name.
    pk_fields = list(getattr(model._meta, "pk_fields", None) or [model._meta.pk])
    names = [f.attname for f in fields]
    names.extend(f.attname for f in pk_fields if f.attname not in names)
    qs = queryset.values_list(*names)
    if limit is not None:
        qs = qs[: limit + 1]
    compiler = qs.query.get_compiler(using=using)
    raw: list[tuple[Any, ...]] = []
    for chunk in compiler.execute_sql(MULTI) or ():
        raw.extend(tuple(r[: len(names)]) for r in chunk)
    at = [names.index(f.attname) for f in pk_fields]

    def key(row: Any) -> Any:
        return row[at[0]] if len(at) == 1 else tuple(row[i] for i in at)

    out: dict[Any, _Row] = {}
    # The Python value of each primary key (to filter on it again), through the converters.
    try:
        for stored, converted in zip(raw, compiler.results_iter(results=[[list(r) for r in raw]])):
            out[key(converted)] = _Row(key(stored), {f.column: stored[i] for i, f in enumerate(fields)})
    except TypeError:  # a primary key whose Python value is unhashable: rows not told apart
        return None
    if limit is not None and len(out) > limit:
        return None
    return out


def _rows_for_pks(model: Any, using: str, pks: list[Any]) -> dict[Any, _Row] | None:
    """Return the rows of ``pks`` (Python values), or None when they cannot be read by them.

    A custom primary key field whose Python value its own ``get_prep_value`` cannot prepare
    (a wrapper ``from_db_value`` returns), or that is unhashable, cannot address its rows:
    the caller emits the table's keys. Django's and the database's errors at the statement
    itself are not caught here: this runs after the user's statement succeeded.
    """
    out: dict[Any, _Row] = {}
    manager = model._base_manager.using(using)
    for i in range(0, len(pks), _CHUNK):
        try:
            found = _rows_by_pk(model, using, manager.filter(pk__in=pks[i : i + _CHUNK]), None)
        except (TypeError, ValueError, ValidationError) as exc:
            logger.debug("cachedeps: rows of %s not read back by pk (%s); table keys", model._meta.db_table, exc)
            return None
        if found is None:
            return None
        out.update(found)
    return out


def _pk_oids(table: str, pk: Any, connection: Any, pks: list[Any]) -> list[str] | None:
    """Return the oids of ``pks`` (Python values), or None if the field cannot prepare one."""
    try:
        return [ck.oid(table, pk.get_db_prep_value(v, connection, prepared=False)) for v in pks]
    except (TypeError, ValueError, ValidationError):
        return None


def _matching_rows(compiler: Any) -> dict[Any, _Row] | None:
    """Return the current rows an UPDATE/DELETE query's WHERE selects (``None``: too many)."""
    model = compiler.query.model
    select = compiler.query.chain(klass=Query)
    select.select_related = False
    select.clear_ordering(force=True)
    select.extra = {}
    select.select = ()
    select.default_cols = True
    features = connections[compiler.using].features
    if features.has_select_for_update:
        if select.group_by is not None or select.distinct or select.combinator:
            return None  # cannot be locked FOR UPDATE: old values unsure, keyed by table
        # Lock the rows until this transaction ends: no concurrent writer changes them
        # between this read and the statement, so their old values are the ones replaced.
        select.select_for_update = True
        if features.has_select_for_update_of:
            select.select_for_update_of = ("self",)
        # else (MariaDB): FOR UPDATE locks the joined tables' matching rows too (more than
        # needed, never less); InnoDB's locking read sees the newest committed rows, as the
        # UPDATE will, whatever the transaction's snapshot.
        # FOR NO KEY UPDATE (PostgreSQL): what an UPDATE itself takes, so a child row's
        # foreign key check (KEY SHARE) does not wait on it where plain Django would not.
        select.select_for_no_key_update = features.has_select_for_no_key_update
    return _rows_by_pk(model, compiler.using, QuerySet(model=model, query=select, using=compiler.using),
                       MAX_TRACKED_ROWS)


def _check_values(compiler: Any, values: list[tuple[Any, Any]]) -> None:
    """Prepare plain values as Django's compiler will, so an invalid one raises Django's own
    ``TypeError``/``ValidationError``/``ValueError`` before cachedeps runs any statement."""
    connection = compiler.connection
    for field, value in values:
        if value is None or hasattr(value, "resolve_expression") or hasattr(value, "prepare_database_save"):
            continue
        field.get_db_prep_save(value, connection=connection)


def _phantoms(count: Any, old: dict[Any, Any]) -> bool:
    """Return whether a statement changed rows its old-row read did not see.

    The rows read are locked, so they all still match; more rows changed means rows that
    started matching in between (committed by another transaction): keyed by table.
    """
    return isinstance(count, int) and count > len(old)


def _unknown_rows(table: str) -> list[str]:
    return unknown_rows_keys(table)


def _row_keys(table: str, old: dict[Any, _Row], new: dict[Any, _Row]) -> list[str]:
    out: list[str] = view_base_keys(table)  # a write through a view changes its base tables
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
        _check_values(self, [(f, getattr(obj, f.attname, None)) for obj in query.objs for f in query.fields])
        with write_scope(self.using) as keys:  # type: ignore[attr-defined]
            rows = super().execute_sql(returning_fields)  # type: ignore[misc]
            pks = self._cachedeps_pks(rows, returning_fields)
            if pks is None or len(pks) > MAX_TRACKED_ROWS or query.on_conflict is not None:
                keys.extend(_unknown_rows(table))
            elif pks:
                new = _rows_for_pks(model, self.using, pks)  # type: ignore[attr-defined]
                oids = _pk_oids(table, opts.pk, connections[self.using], pks)  # type: ignore[attr-defined]
                if new is None or oids is None:
                    keys.extend(_unknown_rows(table))
                else:
                    keys.extend(_row_keys(table, {}, new))
                    # A pk the read-back missed still had its oid cached as "no such row".
                    keys.extend(oids)
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
        _check_values(self, [(field, val) for field, _, val in query.values])
        with write_scope(self.using) as keys:  # type: ignore[attr-defined]
            changes_pk = any(field.column == pk.column for field, _, _ in query.values)
            old = None if changes_pk else _matching_rows(self)
            count = super().execute_sql(result_type)  # type: ignore[misc]
            if old is None or _phantoms(count, old):
                keys.extend(_unknown_rows(table))
            elif old:
                new = _rows_for_pks(model, self.using, list(old))  # type: ignore[attr-defined]
                keys.extend(_unknown_rows(table) if new is None else _row_keys(table, old, new))
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
            if old is None or _phantoms(count, old):
                keys.extend(_unknown_rows(table))
            elif old:
                keys.extend(_row_keys(table, old, {}))
        return count
