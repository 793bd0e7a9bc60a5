"""Serve ORM reads from the cache: the read half of the compilers.

:class:`CachedReadMixin` overrides ``SQLCompiler.execute_sql`` for ``MULTI`` and ``SINGLE``
results (iteration, get, first/last, count, exists, aggregate, values/values_list,
select_related, prefetch_related's queries). Raw rows are cached, before Django's
converters, which run as usual on a hit. A read is not cached when:

- :func:`~django_cachedeps.nocache` is active or the query carries the ``uncached`` hint;
- a table it reads is not cached (``CACHEDEPS["MODELS"]``/``["EXCLUDE"]``, an unmanaged
  model without ``CACHEDEPS["VIEWS"]``) or it holds SQL the ORM cannot see into (see
  :mod:`.deps`), or it is ``select_for_update``;
- a parameter has no exact query key (:mod:`cachedeps.querykey`);
- it streams with ``.iterator()`` (chunked cursor);
- the connection's transaction has written (read-your-own-writes: no get, no fill);
- (filled, not skipped) inside a transaction, the result is stamped with the position noted
  when the transaction began, before its first statement, so that whatever the isolation
  level the snapshot is at least as new as the stamp.

A read anchored on an equality of its model's table may depend on field-change keys and
its rows' oids rather than the coarse field-value key (:mod:`.finer`), worked out when it is
filled; a hit records the keys the entry was stored with.

Every uncached read inside a ``@cached_view``, fragment or recording poisons it
(:mod:`.guard`). With ``CACHEDEPS["VERIFY"]`` every hit also runs its SQL on the database
and compares rows (:mod:`cachedeps.verify`).

A hit costs the compilation of the query's SQL (its cache key), except for a full-row
select of one table by primary key (``get(pk=...)``), answered from the row's object state
before compiling; the dependencies of a query key are remembered, not worked out again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from cachedeps import NO_VALUE
from cachedeps.errors import CachedepsError
from cachedeps.querykey import query_key
from cachedeps.recording import accounted
from cachedeps.verify import compare_rows, sql_shape
from cachedeps.views import base_keys, tables_in
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE, MULTI, SINGLE
from django.core.exceptions import EmptyResultSet
from django.utils.asyncio import async_unsafe

from .. import runtime
from ..conf import cached_tables, get_settings, read_timeout, view_tables
from .deps import FROM_ALIASES, ReadPlan, analyze, direct_state_oid
from .finer import row_deps
from .hints import bypassed, in_own_statement, own_statements, query_opted_out, query_timeout
from .rows import Unencodable, decode_row, decode_rows, encode_row, encode_rows

__all__ = ["CachedReadMixin", "reads_bypass_cache"]

logger = logging.getLogger("django_cachedeps")
_EMPTY = "-"
_PLAN_MEMO_SIZE = 4096
_UNANSWERED: Any = object()
# (database alias, model, table alias) -> what compiling a full-row select by primary key
# sets up: (select, klass_info, annotation_col_map, columns); the same for every such read.
_SELECTS: dict[tuple[str, Any, str], tuple[Any, Any, Any, list[str]]] = {}


def reads_bypass_cache(connection: Any) -> bool:
    """Return whether reads on ``connection`` must go to the database only, right now."""
    if bypassed() or in_own_statement():
        return True
    if getattr(connection, "cachedeps_written", False) and not connection.get_autocommit():
        return True
    return False


def _fill_stamp(connection: Any, engine: Any) -> int | None:
    """Return the stamp of a fill by a query about to run on ``connection`` (None: no fill).

    In autocommit the query's snapshot is taken after this call: the engine's position now.
    Inside a transaction the snapshot may be as old as its first statement, whatever the
    isolation level (a ``SET TRANSACTION ISOLATION LEVEL`` inside ``atomic()`` included):
    the position noted when it began (:class:`~.backends.base.CachedepsWrapperMixin`).
    """
    if connection.get_autocommit():
        return engine.current_tid
    began = getattr(connection, "cachedeps_tx_stamp", None)
    if began is None:
        return None  # not a cachedeps connection: the snapshot's age is unknown
    return min(began, engine.current_tid)


def _sql_text(sql: str, params: Any) -> str:
    """Return a query's SQL with its parameters, for people (the ``/cachedeps/`` page)."""
    params = tuple(params or ())
    return f"{sql}\n-- parameters: {params!r}" if params else sql


def _query_key(using: str, sql: str, params: Any, result_type: str, col_count: int | None) -> str | None:
    """Return the read's cache key (:func:`cachedeps.querykey.query_key`), None if not exact."""
    return query_key("q:", using, sql, tuple(params), result_type, col_count)


class _PlanMemo:
    """Remember the read plan of each query key (bounded, least recently used).

    The key digests the database alias, the SQL text and its parameters, which fix what the
    query reads and filters on, so every query compiling to it has the same dependencies;
    a hit then skips walking the query tree. Plans are dropped when the set of cached tables
    changes (settings).
    """

    def __init__(self, size: int = _PLAN_MEMO_SIZE) -> None:
        self._size = size
        self._plans: OrderedDict[str, ReadPlan | None] = OrderedDict()
        self._tables: frozenset[str] | None = None
        self._lock = threading.Lock()

    def plan(self, key: str, query: Any, connection: Any = None) -> ReadPlan | None:
        tables = cached_tables()
        with self._lock:
            if self._tables is tables and key in self._plans:
                self._plans.move_to_end(key)
                return self._plans[key]
        plan = _over_views(analyze(query, tables, connection))
        with self._lock:
            if self._tables is not tables:
                self._plans.clear()
                self._tables = tables
            self._plans[key] = plan
            if len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return plan


_plan = _PlanMemo().plan


def _over_views(plan: ReadPlan | None) -> ReadPlan | None:
    """Make a read of a declared view (an unmanaged model) depend on its base tables' table keys.

    Writes to the base tables never emit the view's own keys, so neither the view's
    field-value keys nor its rows' oids (the state path) can be trusted: the read keeps its
    keys (writes through the model emit them) plus each base table's table and all-rows keys.
    """
    views = view_tables()
    if plan is None or not views:
        return plan
    touched = tables_in([*plan.deps, *(plan.finer.deps if plan.finer is not None else ())], views)
    if not touched:
        return plan
    extra = base_keys(b for view in touched for b in views[view])
    return ReadPlan(deps=tuple(dict.fromkeys([*plan.deps, *extra])))


@async_unsafe
def _cursor_check() -> None:
    """Raise ``SynchronousOnlyOperation`` in an async context, as ``connection.cursor()`` does
    before anything else: the cached path polls the feed (which may connect, or ask the
    connection its state) before it needs a cursor, and Django's check must come first."""


class CachedReadMixin:
    """Cache the rows of ``MULTI``/``SINGLE`` reads; mix in before Django's ``SQLCompiler``."""

    def execute_sql(self, result_type: Any = MULTI, chunked_fetch: bool = False,
                    chunk_size: int = GET_ITERATOR_CHUNK_SIZE) -> Any:
        """Run the query, or answer it from the cache (see the module docstring)."""
        connection = self.connection  # type: ignore[attr-defined]
        if (
            result_type not in (MULTI, SINGLE)
            or (chunked_fetch and connection.features.can_use_chunked_reads)
            or not get_settings().enabled
            or query_opted_out(self.query)  # type: ignore[attr-defined]
            or reads_bypass_cache(connection)
        ):
            return super().execute_sql(result_type, chunked_fetch, chunk_size)  # type: ignore[misc]
        _cursor_check()  # Django's own first check (connection.cursor()), before the feed poll
        direct = self._cachedeps_direct(result_type)
        if direct is not _UNANSWERED:
            return direct
        try:
            sql, params = self.as_sql()  # type: ignore[attr-defined]
            if not sql:
                raise EmptyResultSet
        except EmptyResultSet:
            return iter([]) if result_type == MULTI else None
        key = _query_key(self.using, sql, params, result_type, self.col_count)  # type: ignore[attr-defined]
        if key is None:  # a parameter the key cannot spell exactly: never share an entry
            return self._cachedeps_run(sql, params, result_type)
        plan = _plan(key, self.query, connection)  # type: ignore[attr-defined]
        if plan is None or not runtime.feed_ready(self.using):  # type: ignore[attr-defined]
            return self._cachedeps_run(sql, params, result_type)
        engine = runtime.ensure_polled(self.using)  # type: ignore[attr-defined]
        if plan.oid is not None:
            return self._cachedeps_state(engine, plan, sql, params, result_type)
        finer = plan.finer if result_type == MULTI else None
        verifier = get_settings().verifier
        verifying = verifier.rate and verifier.sample()
        if verifying:
            position = engine.current_tid
            hit, hit_stamp, hit_deps = engine.get_meta(key)
        else:
            hit = engine.get(key)
        if hit is not NO_VALUE:
            try:
                if result_type == SINGLE:
                    answer: Any = None if hit == _EMPTY else decode_row(hit)
                else:
                    answer = [decode_rows(hit)]
            except (ValueError, TypeError, KeyError):
                logger.warning("cachedeps: discarding an undecodable cached result %s", key)
            else:
                if finer is None:
                    engine.record(*plan.deps)
                # else the hit recorded the keys the entry was stored with (its rows' oids)
                if verifying:
                    self._cachedeps_verify(verifier, engine, sql, params, result_type, answer,
                                           hit_deps, hit_stamp, position)
                return answer
        stamp = _fill_stamp(connection, engine)
        with accounted():  # its keys are recorded below
            result = self._cachedeps_run(sql, params, result_type)
        deps = plan.deps
        if result_type == MULTI:
            rows = [row for chunk in result for row in chunk]
            if finer is not None:
                deps = row_deps(finer, self.select, self.col_count, rows) or plan.deps  # type: ignore[attr-defined]
        engine.record(*deps)
        if stamp is not None:
            try:
                if result_type == SINGLE:
                    value: Any = _EMPTY if result is None else encode_row(result)
                else:
                    value = encode_rows(rows)
            except Unencodable as exc:
                logger.debug("cachedeps: not caching %s: %s", key, exc)
            else:
                self._cachedeps_store(engine.set, key, value, deps, stamp)
                engine.activity.describe(key, _sql_text(sql, params))
        return result

    def get_from_clause(self) -> Any:
        """Build the FROM clause, recording its aliases on the query for :mod:`.deps`."""
        result = super().get_from_clause()  # type: ignore[misc]
        query = self.query  # type: ignore[attr-defined]
        setattr(query, FROM_ALIASES, frozenset(a for a in query.alias_map if query.alias_refcount[a]))
        return result

    def _cachedeps_timeout(self, deps: Any) -> float | None:
        """Return how long this read's entry lives: ``.cache(timeout=...)``, else its models' timeouts."""
        hinted = query_timeout(self.query)  # type: ignore[attr-defined]
        if hinted is not None:
            return hinted or None
        return read_timeout(deps)

    def _cachedeps_store(self, setter: Any, key: str, value: Any, deps: Any, stamp: int) -> None:
        try:
            setter(key, value, depends_on=deps, timeout=self._cachedeps_timeout(deps), tid=stamp)
        except CachedepsError as exc:  # too large, unserializable: the read still succeeded
            logger.debug("cachedeps: not caching %s: %s", key, exc)

    def _cachedeps_direct(self, result_type: Any) -> Any:
        """Answer a full-row select by primary key from its object state without compiling.

        Compiling the SQL costs more than the rest of a hit. A read that
        :func:`~.deps.direct_state_oid` recognizes needs no SQL: its cache key is the oid,
        and what compiling would set up for the result (select list, converters) is the same
        for every such read of the model, remembered from the first one compiled. Returns
        ``_UNANSWERED`` when the read must take the compiled path (after a miss, that path
        does not read the store again).
        """
        self._cachedeps_missed = None
        query = self.query  # type: ignore[attr-defined]
        oid = direct_state_oid(query, self.connection)  # type: ignore[attr-defined]
        if oid is None:
            return _UNANSWERED
        shape = _SELECTS.get((self.using, query.model, next(iter(query.alias_map))))  # type: ignore[attr-defined]
        if (
            shape is None
            or query.model._meta.db_table not in cached_tables()
            or query.model._meta.db_table in view_tables()  # no state path over a view
            or not runtime.feed_ready(self.using)  # type: ignore[attr-defined]
        ):
            return _UNANSWERED
        select, klass_info, annotation_col_map, columns = shape
        engine = runtime.ensure_polled(self.using)  # type: ignore[attr-defined]
        engine.record(oid)
        verifier = get_settings().verifier
        verifying = verifier.rate and verifier.sample()
        if verifying:
            position = engine.current_tid
            state, stamp = engine.get_state_meta(oid)
        else:
            state = engine.get_state(oid)
        self._cachedeps_missed = oid
        if state is NO_VALUE:
            return _UNANSWERED
        try:
            cached_columns, encoded = state
            if cached_columns != columns:
                return _UNANSWERED
            rows = decode_rows(encoded)
        except (ValueError, TypeError, KeyError):
            logger.warning("cachedeps: discarding an undecodable cached row %s", oid)
            return _UNANSWERED
        self.select, self.klass_info, self.annotation_col_map = select, klass_info, annotation_col_map
        self.col_count = len(select)
        answer = (rows[0] if rows else None) if result_type == SINGLE else [rows]
        if verifying:
            # The SQL this read would have run (compiling sets up the same select list).
            sql, params = self.as_sql()  # type: ignore[attr-defined]
            self._cachedeps_verify(verifier, engine, sql, params, result_type, answer, [oid], stamp, position)
        return answer

    def _cachedeps_state(self, engine: Any, plan: Any, sql: str, params: Any, result_type: Any) -> Any:
        """Serve a full-row select by primary key through the engine's ``(tid, oid)`` path."""
        columns = [col.target.column for col, _, _ in self.select]  # type: ignore[attr-defined]
        query = self.query  # type: ignore[attr-defined]
        if not self.annotation_col_map and direct_state_oid(query, self.connection) == plan.oid:  # type: ignore[attr-defined]
            _SELECTS[(self.using, query.model, next(iter(query.alias_map)))] = (  # type: ignore[attr-defined]
                self.select, self.klass_info, self.annotation_col_map, columns)  # type: ignore[attr-defined]
        engine.record(plan.oid)
        verifier = get_settings().verifier
        verifying = verifier.rate and verifier.sample()
        state_stamp = None
        if getattr(self, "_cachedeps_missed", None) == plan.oid:
            state = NO_VALUE
        elif verifying:
            position = engine.current_tid
            state, state_stamp = engine.get_state_meta(plan.oid)
        else:
            state = engine.get_state(plan.oid)
        if state is not NO_VALUE:
            try:
                cached_columns, encoded = state
                if cached_columns == columns:
                    rows = decode_rows(encoded)
                    answer = (rows[0] if rows else None) if result_type == SINGLE else [rows]
                    if verifying:
                        self._cachedeps_verify(verifier, engine, sql, params, result_type, answer,
                                               [plan.oid], state_stamp, position)
                    return answer
            except (ValueError, TypeError, KeyError):
                logger.warning("cachedeps: discarding an undecodable cached row %s", plan.oid)
        stamp = _fill_stamp(self.connection, engine)  # type: ignore[attr-defined]
        with accounted():  # the oid was recorded above
            result = self._cachedeps_run(sql, params, result_type)
        if stamp is not None:
            if result_type == SINGLE:
                rows = [] if result is None else [result]
            else:
                rows = [row for chunk in result for row in chunk]
            try:
                value = [columns, encode_rows(rows)]
            except Unencodable as exc:
                logger.debug("cachedeps: not caching %s: %s", plan.oid, exc)
            else:
                try:
                    engine.set_state(plan.oid, value, tid=stamp, timeout=self._cachedeps_timeout([plan.oid]))
                except CachedepsError as exc:
                    logger.debug("cachedeps: not caching %s: %s", plan.oid, exc)
        return result

    def _cachedeps_verify(self, verifier: Any, engine: Any, sql: str, params: Any, result_type: Any,
                          answer: Any, deps: Any, stamp: int | None, position: int) -> None:
        """Verify mode: run the read on the database too and compare its raw rows with the hit.

        The query runs on the driver's own cursor of the same connection (so in the read's
        transaction), outside Django's cursor wrapper: it is not logged, counted by
        ``assertNumQueries`` or seen by execute wrappers. A broken transaction (a read there
        raises Django's own error) is not verified.
        """
        connection = self.connection  # type: ignore[attr-defined]
        if connection.needs_rollback:
            return
        connection.ensure_connection()
        with connection.wrap_database_errors:
            cursor = connection.create_cursor()
            try:
                cursor.execute(sql, params)
                fresh = [tuple(r) for r in cursor.fetchall()]
            finally:
                cursor.close()
        col_count = self.col_count  # type: ignore[attr-defined]
        if result_type == SINGLE or self.has_extra_select:  # type: ignore[attr-defined]
            fresh = [r[:col_count] for r in fresh]
        ordered, limited = sql_shape(sql)
        if result_type == SINGLE:
            cached = [] if answer is None else [answer]
            if answer is not None and len(fresh) > 1 and not ordered and any(
                compare_rows([answer], [r]) is None for r in fresh
            ):
                return  # fetchone() of an unordered result: any of its rows
            fresh = fresh[:1]
        else:
            cached = [row for chunk in answer for row in chunk]
        query = sql if params is None else f"{sql} -- params {tuple(params)!r}"

        def concurrent() -> bool:
            with own_statements():
                return bool(engine.changed_after(connection, position, deps or ()))

        verifier.check(query, cached, fresh, ordered=ordered, limited=limited, deps=deps or (),
                       stamp=stamp, position=position, concurrent=concurrent)

    def _cachedeps_run(self, sql: str, params: Any, result_type: Any) -> Any:
        """Run already compiled SQL like ``SQLCompiler.execute_sql`` does, fully fetched."""
        cursor = self.connection.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute(sql, params)
            if result_type == SINGLE:
                row = cursor.fetchone()
                return row[0 : self.col_count] if row else row  # type: ignore[attr-defined]
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if self.has_extra_select:  # type: ignore[attr-defined]
            rows = [r[: self.col_count] for r in rows]  # type: ignore[attr-defined]
        return [rows] if rows else []
