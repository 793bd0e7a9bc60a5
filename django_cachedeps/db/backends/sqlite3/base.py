"""Django's SQLite backend with cached reads and tracked writes."""

from __future__ import annotations

from django.db.backends.sqlite3 import base as _sqlite

from ..base import CachedepsWrapperMixin

__all__ = ["DatabaseOperations", "DatabaseWrapper"]


class DatabaseOperations(_sqlite.DatabaseOperations):
    """SQLite operations whose compilers cache reads and track writes."""

    compiler_module = "django_cachedeps.db.compiler"


class DatabaseWrapper(CachedepsWrapperMixin, _sqlite.DatabaseWrapper):
    """A SQLite connection with cachedeps."""

    ops_class = DatabaseOperations
