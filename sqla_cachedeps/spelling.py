"""Translate SQLAlchemy column types and values into the terms of :mod:`cachedeps.algebra`.

A column's *kind* comes from its type for the dialect (a ``TypeDecorator`` by its ``impl``,
unless it rewrites the bound SQL with ``bind_expression``); values are spelled after the
type's bind processor for the dialect (``Enum`` binds ``Color.RED`` as ``"RED"``, ``Uuid``
on SQLite as 32 hex digits), rows are read without result processors.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select, type_coerce, types as sat
from sqlalchemy.types import NullType

from cachedeps import algebra

__all__ = ["type_kind", "bind_value", "default_dialect", "stored_select", "pk_oid"]

_DEFAULT: list[Any] = []
# Exactly these classes (not subclasses: CITEXT is a TEXT that ignores case).
_TEXT_TYPES = frozenset({sat.String, sat.Text, sat.Unicode, sat.UnicodeText, sat.VARCHAR, sat.NVARCHAR, sat.TEXT})
_CHAR_TYPES = frozenset({sat.CHAR, sat.NCHAR})


def _mysql_text_types() -> frozenset:
    """The MySQL dialect's own text types (``mysql.VARCHAR(collation=...)``)."""
    from sqlalchemy.dialects import mysql

    return frozenset({mysql.VARCHAR, mysql.NVARCHAR, mysql.TEXT, mysql.TINYTEXT, mysql.MEDIUMTEXT, mysql.LONGTEXT})


def default_dialect() -> Any:
    """Return the dialect assumed when none is given (SQLAlchemy's SQLite dialect)."""
    if not _DEFAULT:
        from sqlalchemy.dialects import sqlite

        _DEFAULT.append(sqlite.dialect())
    return _DEFAULT[0]


def type_kind(type_: Any, dialect: Any) -> str:
    """Return the :mod:`cachedeps.algebra` kind of a column of ``type_`` on ``dialect``."""
    name = dialect.name
    if name not in ("sqlite", "postgresql", "mysql", "mariadb"):
        return algebra.OTHER
    mysql = name in ("mysql", "mariadb")
    try:
        variant = (getattr(type_, "_variant_mapping", None) or {}).get(name)
        if variant is not None:  # with_variant(): the type this dialect creates and compares
            return type_kind(variant, dialect)
        if getattr(type_, "_has_bind_expression", False):
            return algebra.OTHER  # the database compares an expression of the value
        if isinstance(type_, sat.TypeDecorator):
            return type_kind(type_.impl_instance, dialect)
        if isinstance(type_, sat.Boolean):
            return algebra.BOOLEAN
        if isinstance(type_, sat.Integer):
            return algebra.INTEGER
        if isinstance(type_, sat.Uuid):
            native = type_.native_uuid and dialect.supports_native_uuid
            if native:
                return algebra.UUID
            # 32 hex digits in CHAR(32): exact on SQLite/PostgreSQL, case-insensitive on MySQL
            return algebra.OTHER if mysql else algebra.TEXT
        if mysql and type(type_) in _mysql_text_types():
            return algebra.text_kind(getattr(type_, "collation", None), name)
        if isinstance(type_, sat.Enum) or type(type_) in _TEXT_TYPES:
            # MySQL: OTHER unless a NO PAD binary collation is declared (its defaults ignore
            # case and trailing spaces); ENUM columns compare under a collation too.
            return algebra.text_kind(getattr(type_, "collation", None), name)
        if type(type_) in _CHAR_TYPES and name == "sqlite":
            return algebra.text_kind(getattr(type_, "collation", None))  # blank-padded elsewhere
    except Exception:
        return algebra.OTHER
    return algebra.OTHER


def bind_value(type_: Any, value: Any, dialect: Any) -> Any:
    """Return ``value`` as ``type_``'s bind processor hands it to the driver on ``dialect``."""
    if value is None:
        return None
    processor = type_._cached_bind_processor(dialect)
    return processor(value) if processor is not None else value


def stored_select(table: Any, columns: Sequence[Any]) -> Any:
    """Return a select of ``columns`` (typed, for matching) followed by every column of
    ``table`` without result processing (as stored)."""
    raw = [type_coerce(c, NullType()).label(f"_cd_{i}") for i, c in enumerate(table.columns)]
    return select(*columns, *raw)


# (id(table), id(dialect)) -> (table, dialect, [(kind, bind processor)] of its primary key)
_PK_SPELLING: dict[tuple[int, int], tuple[Any, Any, list[tuple[str, Any]]]] = {}


def _pk_spelling(table: Any, dialect: Any) -> list[tuple[str, Any]]:
    memo_key = (id(table), id(dialect))
    memo = _PK_SPELLING.get(memo_key)
    if memo is not None and memo[0] is table and memo[1] is dialect:
        return memo[2]
    out = [(type_kind(c.type, dialect), c.type._cached_bind_processor(dialect)) for c in table.primary_key.columns]
    if len(_PK_SPELLING) > 1000:
        _PK_SPELLING.clear()
    _PK_SPELLING[memo_key] = (table, dialect, out)
    return out


def pk_oid(table: Any, pk: Sequence[Any], dialect: Any) -> str | None:
    """Return the oid of the row of ``table`` with primary key values ``pk`` (Python values),
    spelled from their bound form like the stored key writes spell; ``None`` when a value
    has no exact spelling (the row is then not cached by its oid)."""
    spelling = _pk_spelling(table, dialect)
    if len(spelling) != len(pk):
        return None
    bound = []
    for (kind, processor), value in zip(spelling, pk):
        try:
            stored = processor(value) if processor is not None and value is not None else value
        except Exception:
            return None
        if stored is None or algebra.spell(kind, stored) is None:
            return None
        bound.append((kind, stored))
    if len(bound) == 1:
        return algebra.oid(table.name, *bound[0])
    if not all(kind in (algebra.INTEGER, algebra.TEXT) and type(v) in (int, str) for kind, v in bound):
        return None
    from cachedeps import keys

    return keys.oid(table.name, tuple(v for _, v in bound))
