"""The compilers of the cachedeps database backends.

Django loads the compilers by name from ``DatabaseOperations.compiler_module``; this module
puts the read half (:mod:`.reads`) and the write half (:mod:`.writes`) in front of
Django's generic compilers. :func:`build` does the same for a vendor's own compiler module
(PostgreSQL has one), used by ``django_cachedeps.db.backends.postgresql.compiler``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from django.db.models.sql import compiler as _base

from .reads import CachedReadMixin
from .writes import DeleteTracking, InsertTracking, UpdateTracking

__all__ = [
    "SQLCompiler",
    "SQLInsertCompiler",
    "SQLDeleteCompiler",
    "SQLUpdateCompiler",
    "SQLAggregateCompiler",
    "build",
]


def build(base: ModuleType) -> dict[str, Any]:
    """Return the five compiler classes of ``base`` (a compiler module) with cachedeps mixed in."""
    return {
        "SQLCompiler": type("SQLCompiler", (CachedReadMixin, base.SQLCompiler), {"__module__": __name__}),
        "SQLInsertCompiler": type(
            "SQLInsertCompiler", (InsertTracking, base.SQLInsertCompiler), {"__module__": __name__}
        ),
        "SQLDeleteCompiler": type(
            "SQLDeleteCompiler", (DeleteTracking, base.SQLDeleteCompiler), {"__module__": __name__}
        ),
        "SQLUpdateCompiler": type(
            "SQLUpdateCompiler", (UpdateTracking, base.SQLUpdateCompiler), {"__module__": __name__}
        ),
        "SQLAggregateCompiler": type(
            "SQLAggregateCompiler", (CachedReadMixin, base.SQLAggregateCompiler), {"__module__": __name__}
        ),
    }


class SQLCompiler(CachedReadMixin, _base.SQLCompiler):
    """Reads, answered from the cache when they can be."""


class SQLInsertCompiler(InsertTracking, _base.SQLInsertCompiler):
    """INSERTs that emit the inserted rows' keys."""


class SQLDeleteCompiler(DeleteTracking, _base.SQLDeleteCompiler):
    """DELETEs that emit the deleted rows' keys."""


class SQLUpdateCompiler(UpdateTracking, _base.SQLUpdateCompiler):
    """UPDATEs that emit the changed rows' old and new keys."""


class SQLAggregateCompiler(CachedReadMixin, _base.SQLAggregateCompiler):
    """Aggregates over a subquery, answered from the cache when they can be."""
