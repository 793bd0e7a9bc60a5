"""MySQL's compilers (multi-table DELETE and UPDATE ... ORDER BY) with cachedeps mixed in."""

from __future__ import annotations

from django.db.backends.mysql import compiler as _mysql

from ...compiler import build

__all__ = [
    "SQLCompiler",
    "SQLInsertCompiler",
    "SQLDeleteCompiler",
    "SQLUpdateCompiler",
    "SQLAggregateCompiler",
]

_classes = build(_mysql)
SQLCompiler = _classes["SQLCompiler"]
SQLInsertCompiler = _classes["SQLInsertCompiler"]
SQLDeleteCompiler = _classes["SQLDeleteCompiler"]
SQLUpdateCompiler = _classes["SQLUpdateCompiler"]
SQLAggregateCompiler = _classes["SQLAggregateCompiler"]
