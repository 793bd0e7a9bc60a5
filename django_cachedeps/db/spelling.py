"""Translate Django fields and values into the terms of :mod:`cachedeps.algebra`.

A column's *kind* (how the database compares it) comes from Django's own field class
(its internal type), the column type it declares for this connection and its collation:
a field whose declared column type is not the usual one for its class (a custom
``db_type``, ``citext``) or whose collation is not known binary is :data:`~cachedeps.algebra.OTHER`.
Values are taken as bound for the database (``get_db_prep_value``), rows as the cursor
returns them (before ``from_db_value``).
"""

from __future__ import annotations

import re
from typing import Any

from cachedeps import algebra

__all__ = ["column_kind", "db_value", "resolve_target"]

_MAX_DEPTH = 20
_INTEGER_TYPES = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
})
_TEXT_TYPES = frozenset({"CharField", "SlugField", "TextField"})
_INTEGER_COLUMNS = frozenset({"integer", "int", "bigint", "smallint", "serial", "bigserial", "smallserial"})
_TEXT_COLUMNS = frozenset({"varchar", "text"})
_FIRST_WORD = re.compile(r"^\s*(\w+)")
# (connection alias, vendor, field) -> kind
_KINDS: dict[tuple[str, str, int], tuple[Any, str]] = {}


def resolve_target(field: Any) -> Any:
    """Return the field a relation's column finally holds the value of (itself if none)."""
    for _ in range(_MAX_DEPTH):
        target = getattr(field, "target_field", None) if getattr(field, "is_relation", False) else None
        if target is None or target is field:
            return field
        field = target
    return field


def column_kind(field: Any, connection: Any) -> str:
    """Return the :mod:`cachedeps.algebra` kind of ``field``'s column on ``connection``."""
    memo_key = (connection.alias, connection.vendor, id(field))
    memo = _KINDS.get(memo_key)
    if memo is not None and memo[0] is field:
        return memo[1]
    try:
        kind = _kind(field, connection)
    except Exception:  # a field that cannot describe its column here: no exact spelling
        kind = algebra.OTHER
    if len(_KINDS) > 10_000:
        _KINDS.clear()
    _KINDS[memo_key] = (field, kind)
    return kind


def _kind(field: Any, connection: Any) -> str:
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql", "mysql"):
        return algebra.OTHER  # a database whose comparisons this module does not know
    target = resolve_target(field)
    if getattr(target, "column", None) is None:
        return algebra.OTHER
    internal = target.get_internal_type()
    params = target.db_parameters(connection)
    column_type = params.get("type")
    if not isinstance(column_type, str):
        return algebra.OTHER
    match = _FIRST_WORD.match(column_type.lower())
    word = match.group(1) if match else ""
    collation = params.get("collation")
    if internal in _INTEGER_TYPES:
        return algebra.INTEGER if word in _INTEGER_COLUMNS else algebra.OTHER
    if internal == "BooleanField":
        return algebra.BOOLEAN if word in ("bool", "boolean") else algebra.OTHER
    if internal in _TEXT_TYPES:
        if word in _TEXT_COLUMNS or (word == "char" and vendor == "sqlite") or (
            word == "longtext" and vendor == "mysql"
        ):
            # MySQL: OTHER unless the field declares a NO PAD binary collation (its default
            # collations ignore case and trailing spaces).
            return algebra.text_kind(collation, vendor)
        return algebra.OTHER  # char(n) pads on PostgreSQL and MySQL; custom column types
    if internal == "UUIDField":
        if word == "uuid":
            return algebra.UUID  # PostgreSQL; MariaDB 10.7+ (values come back with dashes)
        if word == "char" and vendor == "sqlite":
            return algebra.TEXT  # stored as 32 hex digits
        return algebra.OTHER  # MySQL's char(32) compares under a case-insensitive collation
    return algebra.OTHER


def db_value(field: Any, value: Any, connection: Any, prepared: bool = True) -> Any:
    """Return ``value`` as Django binds it for ``field``'s column (``get_db_prep_value``)."""
    if value is None:
        return None
    return field.get_db_prep_value(value, connection, prepared=prepared)
