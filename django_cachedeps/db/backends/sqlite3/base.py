"""Django's SQLite backend with cached reads and tracked writes.

Several processes writing one SQLite file need ``OPTIONS`` ``transaction_mode: IMMEDIATE``
and ``init_command: PRAGMA journal_mode=WAL;`` (docs/django.md). Django reads both from 5.1
on; on Django 4.2 and 5.0 this backend reads them the same way (Django's own sqlite3
connection would refuse them as unknown arguments of ``sqlite3.connect``).
"""

from __future__ import annotations

from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.sqlite3 import base as _sqlite

from ..base import CachedepsWrapperMixin

__all__ = ["DatabaseOperations", "DatabaseWrapper"]

#: Django reads ``transaction_mode`` and ``init_command`` itself (5.1+).
NATIVE_OPTIONS = django.VERSION >= (5, 1)


class DatabaseOperations(_sqlite.DatabaseOperations):
    """SQLite operations whose compilers cache reads and track writes."""

    compiler_module = "django_cachedeps.db.compiler"


class _OptionsBackport:
    """``OPTIONS`` ``transaction_mode`` and ``init_command`` as Django 5.1 reads them."""

    transaction_modes = frozenset(["DEFERRED", "EXCLUSIVE", "IMMEDIATE"])
    transaction_mode: str | None = None
    init_commands: list[str] = []
    alias: str

    def get_connection_params(self) -> dict[str, Any]:
        kwargs = super().get_connection_params()  # type: ignore[misc]
        mode = kwargs.pop("transaction_mode", None)
        if mode is not None and (not isinstance(mode, str) or mode.upper() not in self.transaction_modes):
            allowed = ", ".join(repr(m) for m in sorted(self.transaction_modes))
            raise ImproperlyConfigured(
                f"settings.DATABASES[{self.alias!r}]['OPTIONS']['transaction_mode'] "
                f"is improperly configured to '{mode}'. Use one of {allowed}, or None."
            )
        self.transaction_mode = mode.upper() if mode else None
        self.init_commands = kwargs.pop("init_command", "").split(";")
        return kwargs

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)  # type: ignore[misc]
        for command in self.init_commands:
            if command := command.strip():
                conn.execute(command)
        return conn

    def _start_transaction_under_autocommit(self) -> None:
        mode = self.transaction_mode
        self.cursor().execute("BEGIN" if mode is None else f"BEGIN {mode}")  # type: ignore[attr-defined]


if NATIVE_OPTIONS:

    class DatabaseWrapper(CachedepsWrapperMixin, _sqlite.DatabaseWrapper):
        """A SQLite connection with cachedeps."""

        ops_class = DatabaseOperations

else:

    class DatabaseWrapper(CachedepsWrapperMixin, _OptionsBackport, _sqlite.DatabaseWrapper):  # type: ignore[no-redef]
        """A SQLite connection with cachedeps (``transaction_mode``/``init_command`` read here)."""

        ops_class = DatabaseOperations
