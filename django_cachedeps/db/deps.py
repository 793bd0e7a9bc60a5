"""Work out what a read depends on from the ORM's query tree (no SQL parsing).

For every table a query reads (outer query, joins, subqueries, combined queries, the inner
query of an aggregate) the result depends on:

- one field-value key ``table.column=value`` when that query's WHERE clause is a conjunction
  holding ``column = constant`` on the table's alias and :func:`cachedeps.algebra.spell`
  spells the constant exactly, as Django binds it for the column's kind and collation
  (``column IN (c1, c2, ...)`` gives one key per constant): a row that matches neither
  before nor after a write cannot change the result, and every write emits field-value keys
  for the old and new stored values of every column;
- else, and always for an alias on the nullable side of an outer join (``LEFT OUTER JOIN``:
  ``filter(books__isnull=True)``), the table key. See :mod:`cachedeps.algebra` for the
  argument.

A read of the model's own table anchored on such an equality and returning that table's
primary key (or counting its rows, or testing their existence) may depend on field-change
keys and the oids of the rows it returned instead of ``table.column=value``; one without
such an equality, on table change keys and its rows' oids instead of the table key: see
:mod:`.finer` for the rule and why it is never stale. :attr:`ReadPlan.finer` carries what
the fill needs to name those oids.

A full-row select of one model by primary key (``Model.objects.get(pk=...)``) is also
marked for the engine's ``(tid, oid)`` state path.

A query holding SQL the ORM cannot see into (``extra()``, ``RawSQL``), a non-deterministic
function (``Random``, ``Now``, ``order_by("?")``), ``select_for_update`` or a table that is
not cached is not cacheable: :func:`analyze` returns ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from cachedeps import algebra
from cachedeps import keys as ck
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.expressions import Col, RawSQL, Subquery
from django.db.models.functions import Now, Random
from django.db.models.lookups import Lookup
from django.db.models.sql.query import Query
from django.db.models.sql.constants import INNER
from django.db.models.sql.where import AND, ExtraWhere, NothingNode, WhereNode

from .finer import MEMBERSHIP, FinerRows, anchor
from .spelling import column_kind, db_value

__all__ = ["ReadPlan", "analyze", "direct_state_oid", "MAX_IN_KEYS", "FROM_ALIASES"]

#: The Query attribute where the compiler records the aliases of the FROM clause.
FROM_ALIASES = "cachedeps_from_aliases"

#: An ``IN`` list longer than this depends on the table key instead of one key per value.
MAX_IN_KEYS = 64
_MAX_DEPTH = 50
_NON_DETERMINISTIC = (Random, Now)
# "t"."c" (PostgreSQL, SQLite) or `t`.`c` (MySQL)
_COLUMN_REF = re.compile(r'^\s*["`]?(\w+)["`]?\s*\.\s*["`]?\w+["`]?\s*$')


@dataclass(frozen=True)
class ReadPlan:
    """How one read is cached.

    ``deps`` are the dependency keys of the result; ``oid`` is set when the read is a
    full-row select of one row by primary key (the state path), with ``deps == (oid,)``.
    ``finer`` is set when the result may depend on field-change keys and the oids of its
    rows instead (:func:`.finer.row_deps` at fill time); ``deps`` are then the coarse keys,
    used when the result is too large or its primary keys cannot be read.
    """

    deps: tuple[str, ...]
    oid: str | None = None
    finer: FinerRows | None = None


class _Uncacheable(Exception):
    pass


def analyze(query: Query, cached_tables: frozenset[str] | set[str], connection: Any = None) -> ReadPlan | None:
    """Return the :class:`ReadPlan` of ``query``, or ``None`` when it must not be cached.

    ``connection``: the database the query runs on (values are spelled as bound for it).
    """
    if getattr(query, "select_for_update", False):
        return None
    if connection is None:
        connection = connections[DEFAULT_DB_ALIAS]
    try:
        oid = _state_oid(query, connection)
        if oid is not None:
            table = query.model._meta.db_table
            if table not in cached_tables:
                return None
            return ReadPlan(deps=(oid,), oid=oid)
        deps: dict[str, None] = {}
        _query_deps(query, cached_tables, deps, 0, connection)
        if not deps:
            return None
        found = anchor(query, _constraints(query.where, connection), _from_aliases(query), connection)
        if found is None:
            return ReadPlan(deps=tuple(deps))
        rest: dict[str, None] = {}
        _query_deps(query, cached_tables, rest, 0, connection, skip_alias=found.alias)
    except _Uncacheable:
        return None
    finer = tuple(dict.fromkeys([*rest, *found.keys]))
    if found.kind == MEMBERSHIP:
        return ReadPlan(deps=finer)
    return ReadPlan(deps=tuple(deps), finer=FinerRows(
        alias=found.alias, table=found.table, pk_column=found.pk_column, pk_kind=found.pk_kind, deps=finer,
        ordered_by_pk=found.ordered_by_pk, low_mark=found.low_mark, high_mark=found.high_mark))


def direct_state_oid(query: Query, connection: Any = None) -> str | None:
    """Return the oid of a full-row select by primary key, recognized before compiling.

    Stricter than the state path :func:`analyze` finds after compiling: the query holds one
    table and nothing else (not even a join the compiler would trim), and its ordering names
    the model's own fields only, so compiling could not add a table. A read passing this
    test may be answered from the object state without compiling its SQL.
    """
    model = query.model
    if model is None or len(query.alias_map) != 1 or query.extra_order_by or query.group_by is not None:
        return None
    ordering = query.order_by or (model._meta.ordering if query.default_ordering else ())
    for item in ordering:
        if not isinstance(item, str) or item in ("?", "-?") or "__" in item:
            return None
    return _state_oid(query, connection or connections[DEFAULT_DB_ALIAS], query.alias_map.keys())


def _state_oid(query: Query, connection: Any, aliases: Any = None) -> str | None:
    """Return the oid when ``query`` selects every column of one row by primary key."""
    model = query.model
    if model is None or type(query) is not Query:
        return None
    opts = model._meta
    if getattr(opts, "is_composite_pk", False) or opts.proxy:
        return None
    if (
        len(_from_aliases(query) if aliases is None else aliases) != 1
        or not query.default_cols
        or query.select_related
        or query.annotation_select
        or query.extra_select
        or query.extra_tables
        or query.deferred_loading != (frozenset(), True)
        or query.distinct
        or query.combinator
        or query.low_mark
        or query.select_for_update
    ):
        return None
    where = query.where
    if where.negated or len(where.children) != 1:
        return None
    lookup = where.children[0]
    if not isinstance(lookup, Lookup) or lookup.lookup_name != "exact":
        return None
    lhs, value = lookup.lhs, lookup.rhs
    if not isinstance(lhs, Col) or lhs.target is not opts.pk or not _is_constant(value):
        return None
    if value is None or not ck.keyable(value):
        return None
    # Spelled from the value as bound, like the stored key every write of the row spells.
    return algebra.oid(opts.db_table, column_kind(opts.pk, connection), db_value(opts.pk, value, connection))


def _from_aliases(query: Query) -> Any:
    """Return the aliases the last compilation put in the FROM clause (all when unknown).

    Reference counts are reset after compiling, so the compiler records them
    (:meth:`django_cachedeps.db.reads.CachedReadMixin.get_from_clause`).
    """
    recorded = getattr(query, FROM_ALIASES, None)
    return query.alias_map.keys() if recorded is None else recorded


def _is_constant(value: Any) -> bool:
    return not hasattr(value, "resolve_expression") and not hasattr(value, "as_sql")


def _query_deps(
    query: Query, cached: Any, out: dict[str, None], depth: int, connection: Any,
    skip_alias: str | None = None,
) -> None:
    if depth > _MAX_DEPTH:
        raise _Uncacheable
    if query.extra_tables or query.extra_order_by or query.select_for_update:
        raise _Uncacheable
    if query.extra and not all(_plain_column(sql, query) for sql, _ in query.extra.values()):
        raise _Uncacheable
    if any(o == "?" for o in query.order_by if isinstance(o, str)):
        raise _Uncacheable
    constrained = _constraints(query.where, connection)
    in_from = _from_aliases(query)
    for alias, join in query.alias_map.items():
        if alias not in in_from:
            continue  # a trimmed join: not in the FROM clause
        table = join.table_name
        if table not in cached:
            raise _Uncacheable
        found = constrained.get(alias)
        if alias == skip_alias:
            pass  # the caller depends on this alias's rows its own way (.finer)
        else:
            column, kind, values = found if found is not None else (None, algebra.OTHER, ())
            read = algebra.TableRead(table=table, column=column, kind=kind, values=tuple(values),
                                     nullable=_nullable(query, alias))
            out.update(dict.fromkeys(algebra.table_deps(read)))
        filtered = getattr(join, "filtered_relation", None)
        if filtered is not None:
            # A FilteredRelation's ON condition can hold subqueries of its own.
            condition = getattr(filtered, "resolved_condition", None)
            if condition is None:
                raise _Uncacheable
            _walk(condition, cached, out, depth + 1, connection)
    _walk(query.where, cached, out, depth + 1, connection)
    for expr in query.annotations.values():
        _walk(expr, cached, out, depth + 1, connection)
    for expr in query.select:
        _walk(expr, cached, out, depth + 1, connection)
    for expr in query.order_by:
        if not isinstance(expr, str):
            _walk(expr, cached, out, depth + 1, connection)
    for sub in query.combined_queries:
        _query_deps(sub, cached, out, depth + 1, connection)
    inner = getattr(query, "inner_query", None)
    if isinstance(inner, Query):
        _query_deps(inner, cached, out, depth + 1, connection)


def _plain_column(sql: str, query: Query) -> bool:
    """Return whether an ``extra(select=...)`` entry only names a column of a joined table.

    m2m prefetching selects the through table's column this way.
    """
    match = _COLUMN_REF.match(sql)
    if match is None:
        return False
    tables = {join.table_name for join in query.alias_map.values()} | set(query.alias_map)
    return match.group(1) in tables


def _walk(node: Any, cached: Any, out: dict[str, None], depth: int, connection: Any) -> None:
    """Visit an expression tree, adding the dependencies of every query nested in it."""
    if depth > _MAX_DEPTH:
        raise _Uncacheable
    if node is None or isinstance(node, (str, bytes, int, float, bool)):
        return
    if isinstance(node, Query):
        _query_deps(node, cached, out, depth + 1, connection)
        return
    if isinstance(node, (ExtraWhere, RawSQL, *_NON_DETERMINISTIC)):
        raise _Uncacheable
    if isinstance(node, NothingNode):
        return
    if isinstance(node, WhereNode):
        for child in node.children:
            _walk(child, cached, out, depth + 1, connection)
        return
    if isinstance(node, Subquery):
        _walk(node.query, cached, out, depth + 1, connection)
        return
    if isinstance(node, Lookup):
        _walk(node.lhs, cached, out, depth + 1, connection)
        rhs = node.rhs
        if isinstance(rhs, (list, tuple)):
            for item in rhs:
                _walk(item, cached, out, depth + 1, connection)
        else:
            _walk(rhs, cached, out, depth + 1, connection)
        return
    if isinstance(node, (list, tuple)):
        for item in node:
            _walk(item, cached, out, depth + 1, connection)
        return
    get_sources = getattr(node, "get_source_expressions", None)
    if get_sources is not None:
        for child in get_sources():
            _walk(child, cached, out, depth + 1, connection)


def _constraints(where: WhereNode, connection: Any) -> dict[str, tuple[str, str, list[Any]]]:
    """Return, per table alias, one ``column = constant`` (or ``IN``, ``IS NULL``) from the top
    conjunction: ``(column, kind, values as bound for the database)``, only when
    :func:`cachedeps.algebra.spell` spells every value exactly."""
    found: dict[str, tuple[str, str, list[Any]]] = {}
    for lookup in _conjuncts(where):
        lhs = lookup.lhs
        if not isinstance(lhs, Col) or getattr(lhs.target, "column", None) is None:
            continue
        name = lookup.lookup_name
        if name == "exact":
            values = [lookup.rhs]
        elif name == "isnull" and lookup.rhs is True:
            values = [None]
        elif name == "in":
            values = _in_values(lookup.rhs)
            if values is None:
                continue
        else:
            continue
        if not all(_is_constant(v) for v in values):
            continue
        field = lhs.target
        kind = column_kind(field, connection)
        try:
            bound = [db_value(field, v, connection) for v in values]
        except Exception:  # Django raises the same when it runs the query
            continue
        if algebra.spell_all(kind, bound) is None:
            continue
        current = found.get(lhs.alias)
        # The fewest keys win: an equality beats an IN list.
        if current is None or len(bound) < len(current[2]):
            found[lhs.alias] = (field.column, kind, bound)
    return found


def _nullable(query: Query, alias: str) -> bool:
    """Return whether ``alias`` is on the nullable side of an outer join (or joined to one)."""
    seen = 0
    while alias is not None and seen < _MAX_DEPTH:
        join = query.alias_map.get(alias)
        join_type = getattr(join, "join_type", None)
        if join_type is not None and join_type != INNER:
            return True
        alias = getattr(join, "parent_alias", None)
        seen += 1
    return False


def _in_values(rhs: Any) -> list[Any] | None:
    if isinstance(rhs, (str, bytes)) or not isinstance(rhs, Iterable) or not _is_constant(rhs):
        return None
    values = list(rhs)
    if len(values) > MAX_IN_KEYS:
        return None
    return values


def _conjuncts(where: WhereNode) -> list[Lookup]:
    """Return the lookups that every row of the result satisfies (AND-ed, not negated)."""
    if where.negated or (where.connector != AND and len(where.children) > 1):
        return []
    out: list[Lookup] = []
    for child in where.children:
        if isinstance(child, Lookup):
            out.append(child)
        elif isinstance(child, WhereNode):
            out.extend(_conjuncts(child))
    return out
