"""Serve ORM reads from the cache: the read half of the compilers.

:class:`CachedReadMixin` overrides ``SQLCompiler.execute_sql`` for ``MULTI`` and ``SINGLE``
results (iteration, get, first/last, count, exists, aggregate, values/values_list,
select_related, prefetch_related's queries). Raw rows are cached, before Django's
converters, which run as usual on a hit. A read is not cached when:

- :func:`~django_cachedeps.nocache` is active or the query carries the ``uncached`` hint;
- a table it reads is not cached (``CACHEDEPS["MODELS"]``/``["EXCLUDE"]``) or it holds SQL
  the ORM cannot see into (see :mod:`.deps`), or it is ``select_for_update``;
- it streams with ``.iterator()`` (chunked cursor);
- the connection's transaction has written (read-your-own-writes: no get, no fill);
- it runs inside a snapshot transaction (SQLite, PostgreSQL REPEATABLE READ and above): the
  cache may answer, but the result is not stored, since the snapshot may be older than the
  feed position the entry would be stamped with.

A read anchored on an equality of its model's table may depend on field-change keys and
its rows' oids rather than the coarse field-value key (:mod:`.finer`), worked out when it is
filled; a hit records the keys the entry was stored with.

A hit costs the compilation of the query's SQL (its cache key), except for a full-row
select of one table by primary key (``get(pk=...)``), answered from the row's object state
before compiling; the dependencies of a query key are remembered, not worked out again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any

from cachedeps import NO_VALUE
from cachedeps.errors import CachedepsError
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE, MULTI, SINGLE
from django.core.exceptions import EmptyResultSet

from .. import runtime
from ..conf import cached_tables, get_settings
from .deps import FROM_ALIASES, ReadPlan, analyze, direct_state_oid
from .finer import row_deps
from .hints import bypassed, in_own_statement, query_opted_out
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


def _fill_allowed(connection: Any) -> bool:
    if connection.get_autocommit():
        return True
    if connection.vendor == "postgresql":
        from psycopg import IsolationLevel

        return getattr(connection, "isolation_level", None) in (None, IsolationLevel.READ_COMMITTED)
    return False


def _query_key(using: str, sql: str, params: Any, result_type: str, col_count: int | None) -> str:
    text = repr((using, sql, tuple(params), result_type, col_count))
    return "q:" + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


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
        plan = analyze(query, tables, connection)
        with self._lock:
            if self._tables is not tables:
                self._plans.clear()
                self._tables = tables
            self._plans[key] = plan
            if len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return plan


_plan = _PlanMemo().plan


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
        plan = _plan(key, self.query, connection)  # type: ignore[attr-defined]
        if plan is None or not runtime.feed_ready(self.using):  # type: ignore[attr-defined]
            return self._cachedeps_run(sql, params, result_type)
        engine = runtime.ensure_polled(self.using)  # type: ignore[attr-defined]
        if plan.oid is not None:
            return self._cachedeps_state(engine, plan, sql, params, result_type)
        finer = plan.finer if result_type == MULTI else None
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
                return answer
        stamp = engine.current_tid
        result = self._cachedeps_run(sql, params, result_type)
        deps = plan.deps
        if result_type == MULTI:
            rows = [row for chunk in result for row in chunk]
            if finer is not None:
                deps = row_deps(finer, self.select, self.col_count, rows) or plan.deps  # type: ignore[attr-defined]
        engine.record(*deps)
        if _fill_allowed(connection):
            try:
                if result_type == SINGLE:
                    value: Any = _EMPTY if result is None else encode_row(result)
                else:
                    value = encode_rows(rows)
            except Unencodable as exc:
                logger.debug("cachedeps: not caching %s: %s", key, exc)
            else:
                self._cachedeps_store(engine.set, key, value, deps, stamp)
        return result

    def get_from_clause(self) -> Any:
        """Build the FROM clause, recording its aliases on the query for :mod:`.deps`."""
        result = super().get_from_clause()  # type: ignore[misc]
        query = self.query  # type: ignore[attr-defined]
        setattr(query, FROM_ALIASES, frozenset(a for a in query.alias_map if query.alias_refcount[a]))
        return result

    def _cachedeps_store(self, setter: Any, key: str, value: Any, deps: Any, stamp: int) -> None:
        try:
            setter(key, value, depends_on=deps, timeout=get_settings().timeout, tid=stamp)
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
            or not runtime.feed_ready(self.using)  # type: ignore[attr-defined]
        ):
            return _UNANSWERED
        select, klass_info, annotation_col_map, columns = shape
        engine = runtime.ensure_polled(self.using)  # type: ignore[attr-defined]
        engine.record(oid)
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
        if result_type == SINGLE:
            return rows[0] if rows else None
        return [rows]

    def _cachedeps_state(self, engine: Any, plan: Any, sql: str, params: Any, result_type: Any) -> Any:
        """Serve a full-row select by primary key through the engine's ``(tid, oid)`` path."""
        columns = [col.target.column for col, _, _ in self.select]  # type: ignore[attr-defined]
        query = self.query  # type: ignore[attr-defined]
        if not self.annotation_col_map and direct_state_oid(query, self.connection) == plan.oid:  # type: ignore[attr-defined]
            _SELECTS[(self.using, query.model, next(iter(query.alias_map)))] = (  # type: ignore[attr-defined]
                self.select, self.klass_info, self.annotation_col_map, columns)  # type: ignore[attr-defined]
        engine.record(plan.oid)
        state = NO_VALUE if getattr(self, "_cachedeps_missed", None) == plan.oid else engine.get_state(plan.oid)
        if state is not NO_VALUE:
            try:
                cached_columns, encoded = state
                if cached_columns == columns:
                    rows = decode_rows(encoded)
                    if result_type == SINGLE:
                        return rows[0] if rows else None
                    return [rows]
            except (ValueError, TypeError, KeyError):
                logger.warning("cachedeps: discarding an undecodable cached row %s", plan.oid)
        stamp = engine.current_tid
        result = self._cachedeps_run(sql, params, result_type)
        if _fill_allowed(self.connection):  # type: ignore[attr-defined]
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
                    engine.set_state(plan.oid, value, tid=stamp)
                except CachedepsError as exc:
                    logger.debug("cachedeps: not caching %s: %s", plan.oid, exc)
        return result

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
