"""Finer dependencies for SQLAlchemy reads of one table: field-change keys and row oids.

The same rule as Django's (``django_cachedeps/db/finer.py``), stated once in
:mod:`cachedeps.algebra` (:func:`~cachedeps.algebra.change_deps`): a read of table ``T``
alone, returning ``T``'s primary key, depends on the change keys of the columns its WHERE
and ORDER BY read (anchored on ``T.k=v`` when the top conjunction holds ``k == v`` with an
exact spelling, else table-wide) and on the oids of the rows it returned, instead of the
field-value key or the table key. Its rows enter, leave or move only through an insert, a
delete or an update of one of those columns; any other update changes a returned row,
whose oid every update emits.

Recognised shape, anything else keeps the coarse keys of :func:`.analysis.read_keys`:
one ``Table`` in the FROM clause (no join, alias, subquery, CTE, ``text()``), selecting one
ORM entity mapped to that table alone or plain columns of it including its primary key;
a WHERE made of comparisons, ``AND``/``OR``/``NOT``, ``IN``, ``IS NULL`` over that table's
columns and bound constants only (no function: ``now()``/``random()`` change without a
write); ORDER BY over that table's columns; integer LIMIT/OFFSET; no GROUP BY, HAVING,
DISTINCT, FOR UPDATE or options other than cachedeps' own. The primary key is one or more
``Integer``/``String`` columns (no ``TypeDecorator``: its result value must bind back to
the stored value). A result of more than one row needs the primary key in its ORDER BY; a
result of at most one row without it must hold every matching row (no offset, fewer rows
than the limit); above :data:`MAX_ROW_OIDS` rows the coarse keys stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import types as sat
from sqlalchemy.orm.interfaces import UserDefinedOption
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseList,
    ColumnClause,
    False_,
    Grouping,
    Null,
    True_,
    UnaryExpression,
)
from sqlalchemy.sql.selectable import Select

from cachedeps import algebra

from .analysis import _constraints, mapper_extra_tables
from .spelling import pk_oid

__all__ = ["MAX_ROW_OIDS", "FinerRead", "finer_read", "row_deps"]

#: A result of more rows than this keeps the coarse keys.
MAX_ROW_OIDS = 100
_MAX_DEPTH = 50
_PK_TYPES = (sat.Integer, sat.String)
_ORDER_MODIFIERS = (operators.desc_op, operators.asc_op, operators.nulls_first_op, operators.nulls_last_op)


class _Unsure(Exception):
    pass


@dataclass(frozen=True)
class FinerRead:
    """What a fill needs to name its rows' oids: the change keys and where the key is."""

    table: Any
    deps: tuple[str, ...]
    entity: bool  # rows hold one ORM entity; else ``pk_positions`` index the columns
    pk_positions: tuple[int, ...]
    ordered_by_pk: bool
    limit: int | None
    offset: int | None


def finer_read(statement: Any, params: Mapping[str, Any], dialect: Any) -> FinerRead | None:
    """Return the finer form of a one-table read, or ``None`` to keep the coarse keys."""
    try:
        return _finer(statement, params, dialect)
    except (_Unsure, AttributeError, TypeError, ValueError, LookupError, NotImplementedError):
        return None
    except Exception:  # SQLAlchemy's own errors on shapes this module does not know
        return None


def row_deps(read: FinerRead, rows: Sequence[Any], dialect: Any) -> tuple[str, ...] | None:
    """Return the dependencies of a filled result, or ``None`` for the coarse ones."""
    if len(rows) > MAX_ROW_OIDS:
        return None
    if not read.ordered_by_pk and len(rows) > 1:
        return None
    if not read.ordered_by_pk and rows and (read.offset or (read.limit is not None and len(rows) >= read.limit)):
        return None
    oids: list[str] = []
    for row in rows:
        if read.entity:
            state = sa_inspect(row[0])
            if state.mapper.local_table is not read.table or state.identity is None:
                return None
            pk = tuple(state.identity)
        else:
            pk = tuple(row[i] for i in read.pk_positions)
        found = pk_oid(read.table, pk, dialect)
        if found is None:
            return None
        oids.append(found)
    return tuple(dict.fromkeys([*read.deps, *oids]))


def _finer(statement: Any, params: Mapping[str, Any], dialect: Any) -> FinerRead | None:
    if type(statement) is not Select:
        return None
    if (
        statement._setup_joins
        or getattr(statement, "_legacy_setup_joins", ())
        or statement._group_by_clauses
        or statement._having_criteria
        or statement._distinct
        or statement._distinct_on
        or statement._for_update_arg is not None
        or statement._fetch_clause is not None
        or statement._independent_ctes
        or statement._prefixes
        or statement._suffixes
        or statement._hints
        or statement._statement_hints
    ):
        return None
    if any(not isinstance(o, UserDefinedOption) for o in statement._with_options):
        return None
    froms = statement.get_final_froms()
    if len(froms) != 1:
        return None
    table = froms[0]
    table = getattr(table, "_deannotate", lambda: table)()
    if type(table).__name__ != "Table":
        return None
    pk_columns = list(table.primary_key.columns)
    if not pk_columns or any(
        isinstance(c.type, sat.TypeDecorator) or not isinstance(c.type, _PK_TYPES) for c in pk_columns
    ):
        return None
    entity, positions = _selected(statement, table, pk_columns)
    columns: dict[str, None] = {}
    where = statement.whereclause
    if where is not None:
        _where_columns(where, table, columns, 0)
    ordered_by_pk = False
    for clause in statement._order_by_clauses:
        column = _order_column(clause, table)
        columns[column] = None
        ordered_by_pk = ordered_by_pk or (len(pk_columns) == 1 and column == pk_columns[0].name)
    limit, offset = statement._limit, statement._offset
    if limit is not None and not isinstance(limit, int) or offset is not None and not isinstance(offset, int):
        return None
    found = _constraints(where, params, dialect).get(table.name) if where is not None else None
    if found is None:
        read = algebra.TableRead(table=table.name)
    else:
        column, kind, value = found
        read = algebra.TableRead(table=table.name, column=column, kind=kind, values=(value,))
    deps = algebra.change_deps(read, list(columns))
    if deps is None:
        return None
    return FinerRead(table=table, deps=tuple(deps), entity=entity, pk_positions=positions,
                     ordered_by_pk=ordered_by_pk, limit=limit, offset=offset)


def _same_table(column: Any, table: Any) -> bool:
    owner = getattr(column, "table", None)
    return owner is not None and getattr(owner, "_deannotate", lambda: owner)() is table


def _selected(statement: Any, table: Any, pk_columns: list[Any]) -> tuple[bool, tuple[int, ...]]:
    """Return how rows carry the primary key: one entity of ``table``, or column positions."""
    raw = statement._raw_columns
    descriptions = statement.column_descriptions
    if len(raw) == 1 and len(descriptions) == 1:
        desc = descriptions[0]
        entity = desc.get("entity")
        if entity is not None and desc.get("expr") is entity and not desc.get("aliased"):
            mapper = sa_inspect(entity).mapper
            if (
                mapper.local_table is table
                and len(mapper.tables) == 1
                and mapper.inherits is None
                and not mapper.polymorphic_map
                and not mapper_extra_tables(mapper)
            ):
                return True, ()
            raise _Unsure
    positions: list[int] = []
    selected = list(statement.selected_columns)
    if len(selected) != len(raw):
        raise _Unsure
    names = []
    for col in selected:
        if not isinstance(col, ColumnClause) or col.is_literal or not _same_table(col, table):
            raise _Unsure
        names.append(col.name)
    for pk in pk_columns:
        if pk.name not in names:
            raise _Unsure
        positions.append(names.index(pk.name))
    return False, tuple(positions)


def _order_column(clause: Any, table: Any) -> str:
    for _ in range(4):
        if isinstance(clause, UnaryExpression) and clause.modifier in _ORDER_MODIFIERS:
            clause = clause.element
        else:
            break
    if not isinstance(clause, ColumnClause) or clause.is_literal or not _same_table(clause, table):
        raise _Unsure
    return clause.name


def _where_columns(node: Any, table: Any, out: dict[str, None], depth: int) -> None:
    """Add the columns of ``table`` that ``node`` reads; raise on anything else."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    if isinstance(node, ColumnClause):
        if node.is_literal or not _same_table(node, table):
            raise _Unsure
        out[node.name] = None
    elif isinstance(node, (BindParameter, Null, True_, False_)):
        return
    elif isinstance(node, (BooleanClauseList, ClauseList)):
        for child in node.clauses:
            _where_columns(child, table, out, depth + 1)
    elif isinstance(node, BinaryExpression):
        _where_columns(node.left, table, out, depth + 1)
        _where_columns(node.right, table, out, depth + 1)
    elif isinstance(node, Grouping):
        _where_columns(node.element, table, out, depth + 1)
    elif isinstance(node, UnaryExpression) and node.operator is operators.inv:
        _where_columns(node.element, table, out, depth + 1)
    else:
        raise _Unsure
