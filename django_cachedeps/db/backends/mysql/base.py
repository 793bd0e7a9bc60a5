"""Django's MySQL/MariaDB backend (mysqlclient) with cached reads and tracked writes."""

from __future__ import annotations

from django.db.backends.mysql import base as _mysql

from ..base import CachedepsWrapperMixin

__all__ = ["DatabaseOperations", "DatabaseWrapper"]


class DatabaseOperations(_mysql.DatabaseOperations):
    """MySQL operations whose compilers cache reads and track writes."""

    compiler_module = "django_cachedeps.db.backends.mysql.compiler"


class DatabaseWrapper(CachedepsWrapperMixin, _mysql.DatabaseWrapper):
    """A MySQL or MariaDB connection with cachedeps."""

    ops_class = DatabaseOperations
