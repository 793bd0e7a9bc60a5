"""Describe cached models' tables for capture triggers (:mod:`cachedeps.capture`).

``manage.py cachedeps_capture install|remove|status`` and the migration operation
:class:`InstallCapture` use these functions. A table is described from its model's own
concrete fields: column name and :mod:`cachedeps.algebra` kind as this adapter's reads
classify it (:func:`django_cachedeps.db.spelling.column_kind`), so the triggers spell
exactly the columns reads may anchor on.
"""

from __future__ import annotations

from typing import Any, Iterable

from cachedeps import capture as engine_capture
from cachedeps.errors import ConfigurationError
from django.db import connections, transaction
from django.db.migrations.operations.base import Operation

from .conf import FEED_TABLE, cached_tables
from .db.spelling import column_kind

__all__ = ["describe_model", "captured_models", "describe_all", "install", "remove", "status", "InstallCapture"]


def _dialect(connection: Any) -> str:
    if connection.vendor not in ("postgresql", "sqlite", "mysql"):
        raise ConfigurationError(
            f"capture triggers support PostgreSQL, SQLite and MySQL/MariaDB; database {connection.alias!r} "
            f"is {connection.vendor}"
        )
    return connection.vendor


def describe_model(model: Any, connection: Any) -> engine_capture.CaptureTable:
    """Return the capture description of ``model``'s table on ``connection``."""
    opts = model._meta
    fields = list(opts.local_concrete_fields)
    pk_fields = list(getattr(opts, "pk_fields", None) or [opts.pk])
    pk = [f.column for f in pk_fields if getattr(f, "column", None)]
    columns = [(f.column, column_kind(f, connection)) for f in fields if f.column]
    return engine_capture.describe(opts.db_table, pk, columns)


def captured_models(apps: Any = None) -> list[Any]:
    """Return the models whose tables capture covers: every cached table's concrete model
    (managed, not a proxy; declared views are captured through their base tables)."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    tables = cached_tables()
    out, seen = [], set()
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy or not opts.managed or opts.db_table not in tables or opts.db_table in seen:
            continue
        seen.add(opts.db_table)
        out.append(model)
    return out


def describe_all(connection: Any, apps: Any = None) -> list[engine_capture.CaptureTable]:
    """Return the descriptions of every captured model's table that exists in the database.

    A model whose table does not exist (yet: ``InstallCapture()`` in a migration that runs
    before the one creating it, a model the database has not been migrated for) is left out;
    installing again once it exists covers it (check ``cachedeps.W004`` names it then, until it does).
    """
    existing = set(connection.introspection.table_names(include_views=False))
    return [describe_model(m, connection) for m in captured_models(apps) if m._meta.db_table in existing]


def install(using: str = "default", apps: Any = None) -> list[engine_capture.CaptureTable]:
    """Install (or refresh) capture for every cached table of database ``using``."""
    connection = connections[using]
    tables = describe_all(connection, apps)
    with transaction.atomic(using=using):
        connection.ensure_connection()
        engine_capture.install(connection.connection, _dialect(connection), tables, FEED_TABLE)
    return tables


def remove(using: str = "default", tables: Iterable[str] | None = None) -> None:
    """Remove capture from ``tables`` (default: every captured table) of database ``using``."""
    connection = connections[using]
    with transaction.atomic(using=using):
        connection.ensure_connection()
        engine_capture.remove(connection.connection, _dialect(connection), tables)


def status(using: str = "default", apps: Any = None) -> list[engine_capture.TableStatus]:
    """Return the capture status of every cached table of database ``using``."""
    connection = connections[using]
    tables = describe_all(connection, apps)
    with transaction.atomic(using=using):
        connection.ensure_connection()
        return engine_capture.status(connection.connection, _dialect(connection), tables)


class InstallCapture(Operation):
    """A migration operation installing capture for every cached table (as migrated so far).

    Put it in a migration that runs after the ones creating the tables (``dependencies``);
    add it again after a migration that changes a captured table's columns. Reversing it
    removes capture from those tables::

        operations = [InstallCapture()]
    """

    reduces_to_sql = False
    reversible = True

    def state_forwards(self, app_label: str, state: Any) -> None:  # noqa: D102 - no state change
        pass

    def _tables(self, schema_editor: Any, to_state: Any) -> list[engine_capture.CaptureTable]:
        return describe_all(schema_editor.connection, to_state.apps)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:  # noqa: D102
        connection = schema_editor.connection
        dialect = _dialect(connection)
        connection.ensure_connection()
        engine_capture.install(connection.connection, dialect, self._tables(schema_editor, to_state), FEED_TABLE)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:  # noqa: D102
        connection = schema_editor.connection
        connection.ensure_connection()
        names = [t.name for t in self._tables(schema_editor, from_state)]
        engine_capture.remove(connection.connection, _dialect(connection), names)

    def describe(self) -> str:  # noqa: D102
        return "Install cachedeps capture triggers on the cached tables"

    def deconstruct(self) -> tuple[str, list, dict]:  # noqa: D102
        return ("django_cachedeps.capture.InstallCapture", [], {})
