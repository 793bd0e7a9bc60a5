"""PostgreSQL's compilers (UNNEST bulk inserts, ...) with cachedeps mixed in."""

from __future__ import annotations

from django.db.backends.postgresql import compiler as _pg

from ...compiler import build

__all__ = [
    "SQLCompiler",
    "SQLInsertCompiler",
    "SQLDeleteCompiler",
    "SQLUpdateCompiler",
    "SQLAggregateCompiler",
]

_classes = build(_pg)
SQLCompiler = _classes["SQLCompiler"]
SQLInsertCompiler = _classes["SQLInsertCompiler"]
SQLDeleteCompiler = _classes["SQLDeleteCompiler"]
SQLUpdateCompiler = _classes["SQLUpdateCompiler"]
SQLAggregateCompiler = _classes["SQLAggregateCompiler"]
