"""Finer dependencies for reads of their model's table, anchored on an equality or not.

A read of table ``T`` filtered on ``T.K = v`` depends, in the coarse form of :mod:`.deps`,
on the field-value key ``T.K=v``, which every write to a row with ``K = v`` emits, whatever
column it changes. This module finds the reads that may depend on field-change keys
(:func:`cachedeps.keys.change_key`) and row oids instead, so that an edit of a column the
read neither filters nor orders on drops only the results holding that row.

Correctness. Let ``C`` be the columns of ``T`` (the main alias) the query's WHERE clause,
the ON conditions of joins from ``T`` and its ORDER BY reference, and let the query return
``T``'s primary key. Its result changes only if

a. a row it returned changes: every update or delete of a row emits the row's oid, and the
   result's rows are named by their oids (read from the primary key in each cached row);
b. the set of matching rows, or their order, changes. Rows of ``T`` enter or leave the
   result, or move in it, only through an insert or a delete of a row with ``K = v``
   (``T.K=v/*``) or an update of a row having ``K = v`` before or after the write that
   changes a column of ``C`` (``T.K=v/c``); any other update leaves every condition and
   sort key of every row as it was. ``LIMIT``/``OFFSET`` select by position in that order,
   so they are covered by (b) too;
c. a row of another table changes: other tables keep the keys of :mod:`.deps`.

Writes whose rows are unknown emit ``T:*``, which every key of ``T`` implies. A result is
a list whose order (b) takes as fixed by the ORDER BY: a result of more than one row needs
the primary key in its ORDER BY (ties are otherwise broken by the database's storage order,
which any update may move), and a result of at most one row without it must hold every
matching row (no offset, fewer rows than the limit). Above :data:`MAX_ROW_OIDS` rows, or
when the primary key's place in the row cannot be found with certainty, the read keeps
``T.K=v``.

``count()`` and ``exists()`` depend on membership alone: (b) without the order, so on
``T.K=v/c`` for the WHERE and join columns and ``T.K=v/*``.

Without an equality anchor. A read of ``T`` that, anchored, would pass every rule above
depends, in the coarse form, on the table key ``T``, which every write to ``T`` emits. The
same argument holds with the anchor "true", which every row satisfies before and after any
write: the rows of ``T`` enter, leave or move in the result only through an insert or a
delete of any row (``T/*``, :func:`cachedeps.keys.table_change_key`) or an update of any
row changing a column of ``C`` (``T/c``). Such a read depends on ``T/c`` for ``c`` in
``C``, ``T/*`` and the oids of its rows (``count()``/``exists()``: the WHERE and join
columns and ``T/*``) instead of ``T``, under the same limits; anything else keeps ``T``.

Anything this module cannot see through keeps the coarse keys: annotations (other than the
count or the constant of ``count()``/``exists()``), aggregates, ``extra()``, ``distinct()``,
``GROUP BY``, combined queries, filtered relations, ordering by anything but the model's own
columns, subqueries reading ``T`` or referring to the outer query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from cachedeps import algebra
from django.db.models.aggregates import Count
from django.db.models.expressions import Col, F, OrderBy, ResolvedOuterRef, Star, Value
from django.db.models.lookups import Lookup
from django.db.models.sql.datastructures import BaseTable, Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import WhereNode

from .spelling import column_kind

__all__ = ["MAX_ROW_OIDS", "MEMBERSHIP", "ROWS", "Anchor", "FinerRows", "anchor", "row_deps"]

#: A result of more rows than this depends on the coarse field-value key instead of oids.
MAX_ROW_OIDS = 100
#: The result depends on which rows match only (``count()``, ``exists()``).
MEMBERSHIP = "membership"
#: The result returns rows of the main table, primary key included.
ROWS = "rows"

_MAX_DEPTH = 50


class _Unsure(Exception):
    pass


@dataclass(frozen=True)
class Anchor:
    """The main table's equality anchor and the field-change keys a read may use.

    ``keys`` are ``T.K=v/c`` for every anchor value and column of ``C`` and ``T.K=v/*``
    (without an anchor: ``T/c`` and ``T/*``); ``kind`` is :data:`MEMBERSHIP` or :data:`ROWS`.
    """

    alias: str
    table: str
    kind: str
    keys: tuple[str, ...]
    pk_column: str
    ordered_by_pk: bool
    low_mark: int
    high_mark: int | None
    pk_kind: str = algebra.OTHER


@dataclass(frozen=True)
class FinerRows:
    """What a ``ROWS`` read needs at fill time: its keys without the coarse anchor key."""

    alias: str
    table: str
    pk_column: str
    deps: tuple[str, ...]
    ordered_by_pk: bool
    low_mark: int
    high_mark: int | None
    pk_kind: str = algebra.OTHER


def anchor(
    query: Query, values_by_alias: dict[str, tuple[str, str, list[Any]]], in_from: Any, connection: Any
) -> Anchor | None:
    """Return the finer form of ``query``'s main-table dependency, or ``None`` to keep it coarse.

    ``values_by_alias`` is the anchors :mod:`.deps` found (alias → column, kind, constants
    as bound); ``in_from`` the aliases of the compiled FROM clause.
    """
    try:
        return _anchor(query, values_by_alias, in_from, connection)
    except (_Unsure, AttributeError, TypeError, ValueError, LookupError):
        return None  # a query shape this module does not know: the coarse keys are right


def row_deps(finer: FinerRows, select: Sequence[Any], col_count: int, rows: list[Any]) -> tuple[str, ...] | None:
    """Return the dependencies of a filled ``ROWS`` result, or ``None`` for the coarse ones.

    ``select`` is the compiler's select list (the raw rows' columns, in order).
    """
    if len(rows) > MAX_ROW_OIDS:
        return None
    if not finer.ordered_by_pk and len(rows) > 1:
        return None
    if (
        not finer.ordered_by_pk
        and rows
        and (finer.low_mark or (finer.high_mark is not None and len(rows) >= finer.high_mark))
    ):
        return None  # not every matching row was returned, and which one is not fixed
    index = None
    for i, item in enumerate(select[:col_count]):
        expr = item[0]
        if isinstance(expr, Col) and expr.alias == finer.alias and expr.target.column == finer.pk_column:
            index = i
            break
    if index is None:
        return None
    oids: list[str] = []
    for row in rows:
        found = algebra.oid(finer.table, finer.pk_kind, row[index])  # raw rows: stored values
        if found is None:
            return None
        oids.append(found)
    return tuple(dict.fromkeys([*finer.deps, *oids]))


def _anchor(
    query: Query, values_by_alias: dict[str, tuple[str, str, list[Any]]], in_from: Any, connection: Any
) -> Anchor | None:
    model = query.model
    if model is None or type(query) is not Query:
        return None
    opts = model._meta
    pk_kind = column_kind(opts.pk, connection)
    if getattr(opts, "is_composite_pk", False) or pk_kind not in algebra.KINDS:
        return None
    if (
        query.extra
        or query.extra_tables
        or query.extra_order_by
        or query.distinct
        or query.distinct_fields
        or query.group_by is not None
        or query.combinator
        or query.combined_queries
        or query.select_for_update
        or getattr(query, "inner_query", None) is not None
    ):
        return None
    alias = next(iter(query.alias_map), None)
    base = query.alias_map.get(alias) if alias is not None else None
    if not isinstance(base, BaseTable) or base.table_name != opts.db_table or alias not in in_from:
        return None
    found = values_by_alias.get(alias)  # None: no anchor, the table change keys
    if query.annotations:
        if not _membership(query):
            return None
        kind = MEMBERSHIP
    else:
        kind = ROWS
    table = opts.db_table
    columns: dict[str, None] = {}
    for join_alias, join in query.alias_map.items():
        if getattr(join, "filtered_relation", None) is not None:
            return None
        if isinstance(join, Join) and join.parent_alias == alias:
            restriction = getattr(join.join_field, "get_extra_restriction", None)
            if restriction is not None and restriction(join_alias, alias) is not None:
                return None
            columns.update(dict.fromkeys(lhs for lhs, _ in join.join_cols))
    _where_columns(query.where, alias, table, columns, 0)
    ordered_by_pk = False
    if kind == ROWS:
        order = _order_columns(query, opts)
        if order is None:
            return None
        columns.update(dict.fromkeys(order))
        ordered_by_pk = opts.pk.column in order
    if found is None:
        read = algebra.TableRead(table=table)
    else:
        column, column_kind_, values = found
        read = algebra.TableRead(table=table, column=column, kind=column_kind_, values=tuple(values))
    keys = algebra.change_deps(read, list(columns))
    if keys is None:
        return None
    return Anchor(alias=alias, table=table, kind=kind, keys=tuple(keys),
                  pk_column=opts.pk.column, ordered_by_pk=ordered_by_pk,
                  low_mark=query.low_mark, high_mark=query.high_mark, pk_kind=pk_kind)


def _membership(query: Query) -> bool:
    """Return whether the query selects only ``COUNT(*)`` or a constant (count, exists)."""
    if query.select or query.default_cols or len(query.annotations) != 1:
        return False
    selected = list(query.annotation_select.values())
    if len(selected) != 1:
        return False
    expr = selected[0]
    if isinstance(expr, Value):
        return not hasattr(expr.value, "resolve_expression")
    if type(expr) is Count and not expr.distinct and expr.filter is None:
        sources = expr.get_source_expressions()
        return bool(sources) and isinstance(sources[0], Star) and all(s is None for s in sources[1:])
    return False


def _order_columns(query: Query, opts: Any) -> list[str] | None:
    """Return the main table's columns the ORDER BY names, ``None`` when it names anything else."""
    if query.order_by:
        items = query.order_by
    elif query.default_ordering:
        items = opts.ordering or ()
    else:
        items = ()
    out: list[str] = []
    local = {f.name: f for f in opts.local_concrete_fields}
    local.update({f.attname: f for f in opts.local_concrete_fields})
    for item in items:
        if isinstance(item, OrderBy):
            item = item.expression
        if isinstance(item, F):
            item = item.name
        if not isinstance(item, str):
            return None
        name = item[1:] if item.startswith("-") else item
        if name == "pk":
            out.append(opts.pk.column)
            continue
        field = local.get(name)
        if field is None or "__" in name:
            return None
        if field.is_relation and name != field.attname:
            return None  # ordering by a relation orders by the related model's ordering
        out.append(field.column)
    return out


def _where_columns(node: Any, alias: str, table: str, out: dict[str, None], depth: int) -> None:
    """Add the main table's columns ``node`` references to ``out``; raise when unsure."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    if node is None or isinstance(node, (str, bytes, int, float, bool)):
        return
    if isinstance(node, Col):
        if node.alias == alias:
            column = getattr(node.target, "column", None)
            if column is None:
                raise _Unsure
            out[column] = None
        return
    if isinstance(node, Query):
        _check_subquery(node, table, depth + 1)
        return
    if isinstance(node, ResolvedOuterRef):
        raise _Unsure
    if isinstance(node, WhereNode):
        for child in node.children:
            _where_columns(child, alias, table, out, depth + 1)
        return
    if isinstance(node, Lookup):
        _where_columns(node.lhs, alias, table, out, depth + 1)
        _where_columns(node.rhs, alias, table, out, depth + 1)
        return
    if isinstance(node, (list, tuple, set, frozenset)):
        for item in node:
            _where_columns(item, alias, table, out, depth + 1)
        return
    inner = getattr(node, "query", None)
    if isinstance(inner, Query):  # Subquery, Exists
        _check_subquery(inner, table, depth + 1)
        return
    get_sources = getattr(node, "get_source_expressions", None)
    if get_sources is not None:
        for child in get_sources():
            _where_columns(child, alias, table, out, depth + 1)
        return
    if hasattr(node, "as_sql"):
        raise _Unsure  # SQL this module cannot look into


def _check_subquery(query: Query, table: str, depth: int) -> None:
    """Raise unless ``query`` neither reads ``table`` nor refers to an outer query."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    own = set(query.alias_map)
    if any(join.table_name == table for join in query.alias_map.values()):
        raise _Unsure
    if query.extra or query.extra_tables or query.combined_queries:
        raise _Unsure
    parts: list[Any] = [query.where, list(query.select), list(query.annotations.values())]
    parts.extend(o for o in query.order_by if not isinstance(o, str))
    for join in query.alias_map.values():
        if getattr(join, "filtered_relation", None) is not None:
            raise _Unsure
    found: dict[str, None] = {}
    for part in parts:
        _collect_aliases(part, found, table, depth + 1)
    if any(a not in own for a in found):
        raise _Unsure


def _collect_aliases(node: Any, out: dict[str, None], table: str, depth: int) -> None:
    """Add the aliases of every column ``node`` references to ``out``; raise when unsure."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    if node is None or isinstance(node, (str, bytes, int, float, bool)):
        return
    if isinstance(node, Col):
        out[node.alias] = None
        return
    if isinstance(node, ResolvedOuterRef):
        raise _Unsure
    if isinstance(node, Query):
        _check_subquery(node, table, depth + 1)
        return
    if isinstance(node, WhereNode):
        for child in node.children:
            _collect_aliases(child, out, table, depth + 1)
        return
    if isinstance(node, Lookup):
        _collect_aliases(node.lhs, out, table, depth + 1)
        _collect_aliases(node.rhs, out, table, depth + 1)
        return
    if isinstance(node, (list, tuple, set, frozenset)):
        for item in node:
            _collect_aliases(item, out, table, depth + 1)
        return
    inner = getattr(node, "query", None)
    if isinstance(inner, Query):
        _check_subquery(inner, table, depth + 1)
        return
    get_sources = getattr(node, "get_source_expressions", None)
    if get_sources is not None:
        for child in get_sources():
            _collect_aliases(child, out, table, depth + 1)
        return
    if hasattr(node, "as_sql"):
        raise _Unsure
