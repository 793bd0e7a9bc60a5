"""The compilers of the cachedeps database backends.

Django loads the compilers by name from ``DatabaseOperations.compiler_module``; this module
puts the read half (:mod:`.reads`) and the write half (:mod:`.writes`) in front of
Django's generic compilers. :func:`build` does the same for a vendor's own compiler module
(PostgreSQL's and MySQL's), served by ``django_cachedeps.db.backends.<vendor>.compiler``.
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
    "COMPILERS",
    "build",
]


#: the compiler classes Django looks up by name in ``DatabaseOperations.compiler_module``
COMPILERS = ("SQLCompiler", "SQLInsertCompiler", "SQLDeleteCompiler", "SQLUpdateCompiler", "SQLAggregateCompiler")
_MIXINS = {
    "SQLCompiler": CachedReadMixin,
    "SQLInsertCompiler": InsertTracking,
    "SQLDeleteCompiler": DeleteTracking,
    "SQLUpdateCompiler": UpdateTracking,
    "SQLAggregateCompiler": CachedReadMixin,
}


def build(base: ModuleType, module: str) -> dict[str, Any]:
    """Return the compiler classes of ``base`` (a vendor's compiler module) with cachedeps mixed
    in, named as members of ``module`` (the module that serves them to Django)."""
    return {name: type(name, (_MIXINS[name], getattr(base, name)), {"__module__": module}) for name in COMPILERS}


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
