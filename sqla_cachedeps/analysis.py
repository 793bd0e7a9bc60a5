"""Turn SQLAlchemy statements into dependency keys.

A cached read depends, per table it reads, on one field-value key when the top-level
``WHERE`` is a conjunction holding ``column == constant`` on that table and
:func:`cachedeps.algebra.spell` spells the constant exactly, as the column type's bind
processor hands it to the database (an ``Enum`` binds its name, a ``Uuid`` on SQLite its hex
digits; JSON, floats, collations that are not binary and unknown types have no exact
spelling), else on the table key. Tables read inside subqueries, aliases or CTEs are
unconstrained by the outer ``WHERE`` and always give their table key; so does every table
of a statement holding an outer join (a condition on its nullable side does not restrict
the rows of the others: :mod:`cachedeps.algebra`). Tables an ORM relationship join reaches
(``join(A.bs)``: the target's tables, a ``secondary`` table) are named by the statement only
after the ORM compiles it, and are taken from its setup joins: each keeps the top-level
``WHERE``'s constraint when it is read once, as itself, under an inner join, else (aliases,
``of_type()``, self-referential joins, tables of custom join conditions) its table key.

A statement this module cannot see through (textual SQL in a ``FROM`` or ``WHERE``,
``from_statement``) is not cacheable: :func:`read_keys` returns ``None``.

Writes the adapter cannot attribute to rows (Core ``INSERT``/``UPDATE``/``DELETE``,
raw SQL) emit the table key and the all-rows key of the tables they may write
(:func:`table_write_keys`, :func:`written_tables`). SQL text is classified by the engine's
:func:`cachedeps.sqlclass.classify`: a statement not proved a read writes the mapped tables
it names (matched in the database's identifier case), or every mapped table when the
classifier cannot tell.
"""

from __future__ import annotations

import re
import weakref
from typing import Any, Iterable, Mapping

from sqlalchemy import exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.exc import UnmappedError
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseElement,
    ColumnClause,
    False_,
    Null,
    TextClause,
    True_,
)
from sqlalchemy.sql.selectable import AliasedReturnsRows, Join, SelectBase, TableClause, TextualSelect

from cachedeps import algebra, keys
from cachedeps.sqlclass import classify

from .spelling import bind_value, default_dialect, type_kind

__all__ = [
    "read_keys",
    "compiled_tables",
    "table_write_keys",
    "written_tables",
    "known_tables",
    "referencing_tables",
    "statement_mappers",
    "mapper_extra_tables",
    "primary_key_binds",
    "cascaded_tables",
]

_NO_VALUE = object()
# literal_column() text that reads no table: EXISTS (SELECT 1 ...) from any()/has(), count(*)
_NO_TABLE = re.compile(r"\A(?:\*|[0-9]+)\Z")
# (id(table), delete) -> (table, tables the database changes through cascading foreign keys)
_CASCADES: dict[tuple[int, bool], tuple[Any, list[tuple[str, list[str]]]]] = {}
# id(where clause) -> (clause, mapper, bind names of its primary key columns or None)
_PK_BINDS: dict[int, tuple[Any, Any, list[str] | None]] = {}
# mapper -> tables its loads may read beyond its statement (computed once per mapper)
_EXTRA: weakref.WeakKeyDictionary[Mapper, list[str]] = weakref.WeakKeyDictionary()


def read_keys(
    statement: Any, params: Mapping[str, Any] | None = None, dialect: Any = None,
    compiled: Iterable[str] | None = None,
) -> list[str] | None:
    """Return the dependency keys of a ``SELECT``, or ``None`` when it cannot be analysed.

    Args:
        statement: a Core or ORM ``Select``.
        params: execution parameters, consulted for bind parameters without a value
            (``session.get`` and lazy loads pass their values this way).
        dialect: the dialect the statement runs on (values are spelled as bound for it);
            SQLAlchemy's SQLite dialect when not given.
        compiled: the tables the statement reads once compiled (:func:`compiled_tables`).
            The ORM adds tables when it compiles a statement (relationship joins, loader
            options, polymorphic loads); one this analysis did not find among the
            statement's own clauses depends on its table key, whatever put it there.
    """
    dialect = dialect if dialect is not None else default_dialect()
    if not isinstance(statement, SelectBase) or isinstance(statement, TextualSelect):
        return None
    top: dict[str, None] = {}
    nested: set[str] = set()
    outer = _outer_setup_joins(statement)
    for element in visitors.iterate(statement):
        if isinstance(element, Join) and (element.isouter or element.full):
            outer = True
        if isinstance(element, (TextClause, TextualSelect)):
            return None
        if isinstance(element, ColumnClause) and element.is_literal and not _NO_TABLE.match(element.name):
            return None  # literal_column("..."): raw SQL that may read any table
        if isinstance(element, TableClause):
            top[element.name] = None
        elif element is not statement and isinstance(element, (AliasedReturnsRows, SelectBase)):
            nested.update(t.name for t in visitors.iterate(element) if isinstance(t, TableClause))
    joins = _setup_join_tables(statement)
    if joins is None:
        return None
    joined, unconstrained = joins
    nested.update(unconstrained)
    for mapper in statement_mappers(statement):
        for table in mapper_extra_tables(mapper):
            nested.add(table)
    for option in getattr(statement, "_with_options", ()):
        # with_loader_criteria(): criteria the ORM adds to the WHERE at compile time;
        # with_expression() and relationship.and_(): SQL a loader option puts in the query
        for clause in _option_clauses(option):
            if not _clause_tables(clause, nested):
                return None
    for table in compiled or ():
        if table not in top and table not in joined:
            nested.add(table)
    if not top and not nested:
        return None
    constraints = {} if outer else _constraints(getattr(statement, "whereclause", None), params or {}, dialect)
    out: list[str] = []
    for table in top:
        found = constraints.get(table)
        if found is not None and table not in nested:
            column, kind, value = found
            out.extend(algebra.table_deps(algebra.TableRead(table, column, kind, (value,))))
        else:
            out.append(keys.table_key(table))
    for table in (*nested, *joined):
        if table not in top and keys.table_key(table) not in out:
            out.append(keys.table_key(table))
    return out


def compiled_tables(compiled: Any) -> frozenset[str]:
    """Return the names of the tables a compiled ``SELECT`` reads.

    For an ORM statement these come from the Core statement the ORM compiled it into, which
    holds what the ORM added (the targets of relationship joins, ``secondary`` tables, loader
    options' expressions, the tables of a polymorphic load).
    """
    state = getattr(compiled, "compile_state", None)
    core = getattr(state, "statement", None)
    if core is None:
        core = compiled.statement
    return frozenset(t.name for t in visitors.iterate(core) if isinstance(t, TableClause))


def _option_clauses(option: Any) -> list[Any]:
    """Return the SQL expressions an ORM option adds to the statement it compiles into."""
    out: list[Any] = []
    criteria = getattr(option, "where_criteria", None)
    if criteria is not None:
        out.append(criteria)
    for element in getattr(option, "context", None) or ():
        out.extend(c for c in getattr(element, "_extra_criteria", ()) or () if isinstance(c, ClauseElement))
        for value in (getattr(element, "local_opts", None) or {}).values():
            if isinstance(value, ClauseElement):
                out.append(value)  # with_expression() on SQLAlchemy 2.0
    return out


def _setup_join_tables(statement: Any) -> tuple[set[str], set[str]] | None:
    """Return the tables an ORM ``join()``/``outerjoin()`` reads, or ``None`` when unknown.

    ``select(A).join(A.bs)`` names ``B``'s table (and a many-to-many ``secondary`` table)
    only at compile time, when the ORM turns the relationship into its ``ON`` clause: the
    statement's own clauses do not hold them. Returns ``(joined, unconstrained)``: a table
    in ``joined`` is read once, as itself, under an inner join, so the top-level ``WHERE``
    restricts its rows as it restricts a table of the ``FROM`` list; a table in
    ``unconstrained`` is read under an alias (``aliased()``, ``of_type()``), more than once
    (a self-referential join: the FROM list reads the table too), or through a custom join
    condition, and depends on its table key.
    """
    joins = (*getattr(statement, "_setup_joins", ()), *getattr(statement, "_legacy_setup_joins", ()))
    if not joins:
        return set(), set()
    base: set[str] = set()
    try:
        froms = (*statement.columns_clause_froms, *getattr(statement, "_from_obj", ()))
    except Exception:
        return None
    for element in froms:
        if not _clause_tables(element, base):
            return None
    seen: dict[str, int] = {}
    unconstrained: set[str] = set()
    for entry in joins:
        reached: set[str] = set()
        for part in entry:
            if part is None or isinstance(part, Mapping):
                continue
            if not _part_tables(part, reached, unconstrained):
                return None
        for table in reached:
            seen[table] = seen.get(table, 0) + 1
    joined = {t for t, n in seen.items() if n == 1 and t not in base and t not in unconstrained}
    unconstrained.update(t for t in seen if t not in joined)
    return joined, unconstrained


def _part_tables(part: Any, reached: set[str], unconstrained: set[str]) -> bool:
    """Add the tables a setup join's target, ``ON`` clause or left side reads.

    Returns ``False`` for a part this module cannot see through.
    """
    prop = getattr(part, "property", None)
    if prop is not None and hasattr(prop, "mapper") and hasattr(prop, "secondary"):
        of_type = getattr(part, "_of_type", None)
        if of_type is not None:
            info = sa_inspect(of_type, raiseerr=False)
            if info is None or not _entity_tables(info, reached, unconstrained):
                return False
        if not _entity_tables(prop.entity, reached, unconstrained):
            return False
        own = {t.name for t in prop.parent.tables} | {t.name for t in prop.mapper.tables}
        if prop.secondary is not None:
            if not _clause_tables(prop.secondary, reached):
                return False
            _clause_tables(prop.secondary, own)
        for clause in (prop.primaryjoin, prop.secondaryjoin):
            extra: set[str] = set()
            if clause is not None and not _clause_tables(clause, extra):
                return False  # a custom join condition may name tables of its own
            unconstrained.update(extra - own)
        return True
    if isinstance(part, str):
        return False  # a relationship named by string (legacy): not resolvable here
    info = sa_inspect(part, raiseerr=False)
    if info is not None and (getattr(info, "is_mapper", False) or getattr(info, "is_aliased_class", False)):
        return _entity_tables(info, reached, unconstrained)
    if isinstance(part, TableClause):
        reached.add(part.name)
        return True
    return _clause_tables(part, unconstrained)


def _entity_tables(info: Any, reached: set[str], unconstrained: set[str]) -> bool:
    """Add the tables of a mapper or an ``aliased()`` entity (and its selectable)."""
    mapper = info.mapper
    unconstrained.update(mapper_extra_tables(mapper))
    if getattr(info, "is_aliased_class", False):
        unconstrained.update(t.name for t in mapper.tables)
        return _clause_tables(info.selectable, unconstrained)
    reached.update(t.name for t in mapper.tables)
    return True


def _clause_tables(clause: Any, out: set[str]) -> bool:
    try:
        elements = list(visitors.iterate(clause))
    except Exception:
        return False
    for element in elements:
        if isinstance(element, (TextClause, TextualSelect)):
            return False
        if isinstance(element, ColumnClause) and element.is_literal and not _NO_TABLE.match(element.name):
            return False
        if isinstance(element, TableClause):
            out.add(element.name)
    return True


def _outer_setup_joins(statement: Any) -> bool:
    """Return whether an ORM ``select`` joins with ``outerjoin()``/``join(isouter=True)``."""
    for entry in (*getattr(statement, "_setup_joins", ()), *getattr(statement, "_legacy_setup_joins", ())):
        flags = entry[-1] if entry and isinstance(entry[-1], Mapping) else {}
        if flags.get("isouter") or flags.get("full"):
            return True
    return False


def _constraints(where: Any, params: Mapping[str, Any], dialect: Any) -> dict[str, tuple[str, str, Any]]:
    """Return, per table, one ``(column, kind, bound value)`` the conjunction ``where`` requires."""
    if where is None:
        return {}
    if isinstance(where, BooleanClauseList) and where.operator is operators.and_:
        terms: Iterable[Any] = where.clauses
    else:
        terms = (where,)
    out: dict[str, tuple[str, str, Any]] = {}
    for term in terms:
        found = _equality(term, params, dialect)
        if found is not None:
            table, column, kind, value = found
            out.setdefault(table, (column, kind, value))
    return out


def _equality(term: Any, params: Mapping[str, Any], dialect: Any) -> tuple[str, str, str, Any] | None:
    if not isinstance(term, BinaryExpression):
        return None
    if term.operator is operators.eq:
        pass
    elif term.operator is operators.is_ and isinstance(term.right, Null):
        pass
    else:
        return None
    for column, other in ((term.left, term.right), (term.right, term.left)):
        if not isinstance(column, ColumnClause) or not isinstance(column.table, TableClause):
            continue
        value = _constant(other, params)
        if value is _NO_VALUE:
            return None
        kind = type_kind(column.type, dialect)
        try:
            bound = bind_value(getattr(other, "type", column.type), value, dialect)
        except Exception:  # the statement itself will raise it
            return None
        if algebra.spell(kind, bound) is None:
            return None
        return column.table.name, column.name, kind, bound
    return None


def _constant(element: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(element, Null):
        return None
    if isinstance(element, True_):
        return True
    if isinstance(element, False_):
        return False
    if isinstance(element, BindParameter):
        if element.key in params:
            return params[element.key]
        if element.expanding:
            return _NO_VALUE
        if element.callable is not None or element.value is not None:
            try:
                return element.effective_value
            except Exception:  # noqa: BLE001 - computed at execution only: no constraint known here
                return _NO_VALUE
        return _NO_VALUE if element.required else element.value
    return _NO_VALUE


def statement_mappers(statement: Any) -> list[Mapper]:
    """Return the mappers of the ORM entities a select returns (empty for Core)."""
    out: list[Mapper] = []
    try:
        descriptions = statement.column_descriptions
    except Exception:  # a Core construct without ORM entities
        return out
    for desc in descriptions:
        entity = desc.get("entity")
        if entity is None:
            continue
        try:
            mapper = sa_inspect(entity).mapper
        except Exception:
            continue
        if mapper not in out:
            out.append(mapper)
    return out


def mapper_extra_tables(mapper: Mapper) -> list[str]:
    """Return tables a load of ``mapper`` may read that its statement does not name.

    These are the tables of other mappers in its inheritance hierarchy (polymorphic loads
    join them at compile time) and of ``column_property`` expressions over other tables.
    """
    cached = _EXTRA.get(mapper)
    if cached is not None:
        return cached
    own = {t.name for t in mapper.tables}
    extra: dict[str, None] = {}
    if mapper.inherits is not None or mapper.polymorphic_map:
        for m in mapper.base_mapper.self_and_descendants:
            for t in m.tables:
                extra[t.name] = None
    for prop in mapper.column_attrs:
        for col in prop.columns:
            if isinstance(col, ColumnClause) and isinstance(col.table, TableClause) and col.table.name in own:
                continue
            for t in visitors.iterate(col):
                if isinstance(t, TableClause):
                    extra[t.name] = None
    result = list(extra)
    _EXTRA[mapper] = result
    return result


def primary_key_binds(mapper: Mapper, where: Any) -> list[str] | None:
    """Return the bind parameter names giving each primary key column of ``mapper`` when
    ``where`` is exactly ``pk1 = :a AND pk2 = :b ...`` (a get by primary key), else None.

    Memoized per clause object: ``session.get`` reuses one clause per mapper.
    """
    memo = _PK_BINDS.get(id(where))
    if memo is not None and memo[0] is where and memo[1] is mapper:
        return memo[2]
    result = _pk_binds(mapper, where)
    if len(_PK_BINDS) > 1000:
        _PK_BINDS.clear()
    _PK_BINDS[id(where)] = (where, mapper, result)
    return result


def _pk_binds(mapper: Mapper, where: Any) -> list[str] | None:
    if isinstance(where, BooleanClauseList) and where.operator is operators.and_:
        terms: Iterable[Any] = where.clauses
    else:
        terms = (where,)
    found: dict[int, str] = {}
    pk = list(mapper.primary_key)
    for term in terms:
        if not isinstance(term, BinaryExpression) or term.operator is not operators.eq:
            return None
        col, bind = term.left, term.right
        if isinstance(col, BindParameter):
            col, bind = bind, col
        if not isinstance(bind, BindParameter) or not isinstance(col, ColumnClause):
            return None
        table = getattr(col, "table", None)
        index = next(
            (i for i, c in enumerate(pk)
             if c.name == col.name and table is not None and c.table.name == table.name),
            None,
        )
        if index is None or index in found:
            return None
        found[index] = bind.key
    if len(found) != len(pk):
        return None
    return [found[i] for i in range(len(pk))]


def cascaded_tables(table: Any, delete: bool) -> list[tuple[str, list[str]]]:
    """Return the tables whose rows the database itself changes when rows of ``table``
    are deleted (``delete``) or their referenced columns updated: foreign keys declared with
    ``ON DELETE``/``ON UPDATE`` ``CASCADE``, ``SET NULL`` or ``SET DEFAULT``, transitively.

    Each entry is ``(child table name, referenced column names of table)``: the write reaches
    the child when it deletes the row or changes one of those columns. A child's own rows
    changed by such an action change its children in turn (a key updated ``ON UPDATE
    CASCADE`` down two levels of joined inheritance, rows deleted ``ON DELETE CASCADE`` under
    rows deleted the same way): the tables reached from a child through any foreign key with
    an action, on delete or on update, follow it with the same columns (more tables than the
    database may touch, never fewer).
    """
    metadata = getattr(table, "metadata", None)
    if metadata is None:
        return []
    table = metadata.tables.get(getattr(table, "fullname", None), table)  # ORM statements annotate it
    memo_key = (id(table), delete)
    memo = _CASCADES.get(memo_key)
    if memo is not None and memo[0] is table:
        return memo[1]
    found: dict[str, dict[str, None]] = {}
    for child, columns in _acting(metadata, table, (delete,)):
        found.setdefault(child.name, {}).update(dict.fromkeys(columns))
        # what the database does to the child's rows reaches the tables referencing them
        todo, seen = [child], {table.name, child.name}
        while todo:
            for grandchild, _ in _acting(metadata, todo.pop(), (True, False)):
                if grandchild.name not in seen:
                    seen.add(grandchild.name)
                    todo.append(grandchild)
                    found.setdefault(grandchild.name, {}).update(dict.fromkeys(columns))
    out = [(name, list(columns)) for name, columns in found.items()]
    _CASCADES[memo_key] = (table, out)
    return out


def _acting(metadata: Any, table: Any, deletes: tuple[bool, ...]) -> list[tuple[Any, list[str]]]:
    """Return ``(child table, referenced column names)`` per foreign key of ``metadata``
    referring to ``table`` with an action (not ``RESTRICT``/``NO ACTION``) on delete or on
    update, as ``deletes`` asks."""
    out = []
    for child in metadata.tables.values():
        for constraint in child.foreign_key_constraints:
            actions = [constraint.ondelete if delete else constraint.onupdate for delete in deletes]
            if not any(a and a.upper() not in ("RESTRICT", "NO ACTION") for a in actions):
                continue
            try:
                referred = constraint.referred_table
            except exc.NoReferencedTableError:  # a table this metadata does not hold: not ``table``
                continue
            if referred is table:
                out.append((child, [e.column.name for e in constraint.elements]))
    return out


def table_write_keys(table: str) -> list[str]:
    """Return the keys a write to unknown rows of ``table`` emits."""
    return [keys.table_key(table), keys.all_rows_key(table)]


def written_tables(statement: Any, sql: str, dialect: str, compiled: Any = None) -> list[str] | None:
    """Return the tables an executed statement may write, or None when it provably writes none.

    Args:
        statement: the compiled construct, or ``None`` for driver SQL.
        sql: the SQL text sent to the driver.
        dialect: the engine's dialect name (identifier case differs per database).
        compiled: the ``Compiled`` object, when there is one (its CTEs are looked at).

    A Core or ORM construct without CTEs is trusted: an ``INSERT``/``UPDATE``/``DELETE``
    writes its table, a ``SELECT`` nothing. Everything else (textual SQL, DDL constructs,
    statements with CTEs, which may modify data) is classified from its text: the mapped
    tables it may write (:func:`known_tables`, all of them when the classifier cannot tell),
    and for DML and DDL the tables it names as the database spells them, mapped or not.
    """
    has_ctes = bool(getattr(compiled, "ctes", None))
    if isinstance(statement, UpdateBase) and not has_ctes:
        name = getattr(getattr(statement, "table", None), "name", None)
        if isinstance(name, str):
            return [name]
    if isinstance(statement, SelectBase) and not has_ctes:
        return None
    verdict = classify(sql, dialect)
    if verdict.is_read:
        return None
    out = dict.fromkeys(verdict.written(known_tables()))
    if verdict.kind in ("write", "ddl"):
        # Unmapped tables keep their keys, as the database spells them: a Core table that
        # is dropped and created again (or truncated) must lose the reads cached over it.
        matched = {name.casefold() for name in out}
        out.update(dict.fromkeys(n for n in verdict.spellings() if n.casefold() not in matched))
    return list(out)


def _registries() -> list[Any]:
    from sqlalchemy.orm import mapperlib

    try:
        return list(mapperlib._all_registries())
    except Exception:  # a SQLAlchemy without the helper: the registries seen through mappers
        return []


def registry_mappers(reg: Any) -> list[Mapper]:
    """Return the mappers of registry ``reg``, skipping classes not mapped (yet).

    ``registry.mappers`` raises ``UnmappedClassError`` while a class of the registry waits
    for its mapping (an ``AbstractConcreteBase`` before ``configure_mappers()``, a class
    whose declaration failed half-way): what is not mapped is not the reads' or writes' concern.
    """
    try:
        return list(reg.mappers)
    except UnmappedError:
        pass
    out: list[Mapper] = []
    for manager in list(getattr(reg, "_managers", ())):
        try:
            out.append(manager.mapper)
        except UnmappedError:
            continue
    return out


def known_tables() -> list[str]:
    """Return the name of every table of every mapped registry's metadata."""
    out: dict[str, None] = {}
    for reg in _registries():
        for table in reg.metadata.tables.values():
            out[table.name] = None
        for mapper in registry_mappers(reg):
            for table in mapper.tables:
                out[getattr(table, "name", "")] = None
    out.pop("", None)
    return list(out)


def referencing_tables(name: str) -> list[str]:
    """Return the mapped tables whose rows the database changes when rows of the mapped
    table ``name`` are deleted or their keys updated (foreign keys with an ``ON DELETE`` or
    ``ON UPDATE`` action), for writes known only by the table's name (raw SQL)."""
    out: dict[str, None] = {}
    for reg in _registries():
        for table in reg.metadata.tables.values():
            if table.name == name:
                for delete in (True, False):
                    out.update(dict.fromkeys(child for child, _ in cascaded_tables(table, delete=delete)))
    return list(out)
