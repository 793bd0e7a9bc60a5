"""Django's PostgreSQL backend with cached reads and tracked writes."""

from __future__ import annotations

from django.db.backends.postgresql import base as _pg

from ..base import CachedepsWrapperMixin

__all__ = ["DatabaseOperations", "DatabaseWrapper"]


class DatabaseOperations(_pg.DatabaseOperations):
    """PostgreSQL operations whose compilers cache reads and track writes."""

    compiler_module = "django_cachedeps.db.backends.postgresql.compiler"


class DatabaseWrapper(CachedepsWrapperMixin, _pg.DatabaseWrapper):
    """A PostgreSQL connection with cachedeps."""

    ops_class = DatabaseOperations
