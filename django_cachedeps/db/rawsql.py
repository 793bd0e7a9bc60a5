"""Invalidate on raw SQL writes issued through Django cursors.

``cursor.execute("UPDATE book SET ...")`` by application code bypasses the compilers. The
backend wrappers install :class:`RawWriteTracker` in ``connection.execute_wrappers``; it
asks the engine's classifier (:func:`cachedeps.sqlclass.classify`) what each statement does.
A statement not proved a read (DML, DDL such as ``DROP``/``ALTER``/``TRUNCATE``/``CREATE
INDEX``, or one the classifier cannot see through, which counts as a write to every cached
table) marks the transaction as written and appends the table key and the all-rows key of
every cached table it may write to the feed in the statement's own transaction; a write
naming a declared view (``CACHEDEPS["VIEWS"]``) adds its base tables' keys, one naming an
undeclared unmanaged model every cached table's keys (it may be a view over any of them). Comments,
several statements in one execute, data-modifying CTEs and identifier case (per vendor)
are the classifier's business. Statements issued by the compilers' bookkeeping are marked
and skipped.

Limits: writes the database makes on a statement's behalf (triggers, rules, functions
called from a ``SELECT``) are not seen. A statement PostgreSQL refuses inside a
transaction block (``CREATE INDEX CONCURRENTLY``) runs first, and its keys are appended
right after it, in a transaction of their own.

MySQL/MariaDB commit the open transaction before (and after) a DDL statement (``ALTER``,
``CREATE``, ``DROP``, ``TRUNCATE``, ``RENAME``; not the ``TEMPORARY`` forms). Inside a
transaction, the keys written so far are therefore appended to the feed *before* such a
statement, so its implicit COMMIT commits them with the data they describe, and the
statement's own keys are appended and committed right after it: a later rollback of the
``atomic()`` block can undo neither (nor the data, which MySQL already committed).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from cachedeps.errors import FeedError
from cachedeps.sqlclass import classify, unknown_statement
from django.db import connections

from ..conf import get_settings, unknown_rows_keys, written_through_tables
from .hints import in_own_statement

__all__ = ["RawWriteTracker", "written_tables"]

_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# A statement after which MySQL/MariaDB has committed the open transaction (leading comments
# skipped; CREATE/DROP TEMPORARY TABLE do not commit).
_MYSQL_IMPLICIT_COMMIT = re.compile(
    r"^\s*(?:(?:/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$))\s*)*"
    r"(?:ALTER|RENAME|TRUNCATE|(?:CREATE|DROP)\b(?!\s+TEMPORARY\b))\b",
    re.IGNORECASE | re.DOTALL,
)


def written_tables(sql: str, vendor: str = "sqlite") -> list[str]:
    """Return the cached tables a raw SQL statement may write (empty for reads).

    Args:
        sql: the statement as given to ``cursor.execute``.
        vendor: the connection's ``vendor`` (identifier case differs per database).
    """
    return classify(sql, vendor).written(written_through_tables())


def _text_of(sql: Any, connection: Any) -> str | None:
    """Return the text of a statement given as a driver object (``psycopg.sql.Composed``,
    bytes), or None when it has none (then it counts as a write to every cached table)."""
    if isinstance(sql, (bytes, bytearray)):
        return bytes(sql).decode("utf-8", "replace")
    as_string = getattr(sql, "as_string", None)
    if as_string is not None:
        try:
            return str(as_string(connection.connection))
        except Exception:  # a composable the driver cannot render here: unknown
            return None
    return None


class RawWriteTracker:
    """An ``execute_wrappers`` entry that turns raw writes into feed rows."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict) -> Any:
        """Run the statement; when it writes cached tables, append their keys in its transaction."""
        if in_own_statement() or not get_settings().enabled:
            return execute(sql, params, many, context)
        text = sql if isinstance(sql, str) else _text_of(sql, self.connection)
        if text is None:
            verdict = unknown_statement(self.connection.vendor, repr(sql))
        else:
            verdict = classify(text, self.connection.vendor)
        if verdict.is_read:
            return execute(sql, params, many, context)
        tables = verdict.written(written_through_tables())
        implicit_commit = (
            self.connection.vendor == "mysql"
            and not self.connection.get_autocommit()
            and bool(_MYSQL_IMPLICIT_COMMIT.match(text or ""))
            and (bool(tables) or bool(self.connection.cachedeps_pending))
        )
        if not tables and not implicit_commit:
            return execute(sql, params, many, context)
        from .. import runtime
        from .writes import write_scope

        alias = self.connection.alias
        if alias not in connections.settings or not runtime.feed_ready(alias):
            # Django's own connections outside DATABASES ("__no_db__", for CREATE/DROP DATABASE)
            return execute(sql, params, many, context)
        if implicit_commit:
            return self._implicit_commit(execute, sql, params, many, context, tables)
        if verdict.autocommit_only:
            # The database refuses it in a transaction block: run it, then publish its keys.
            result = execute(sql, params, many, context)
            with write_scope(alias) as keys:
                for table in tables:
                    keys.extend(unknown_rows_keys(table))
            return result
        if (
            self.connection.vendor == "sqlite"
            and self.connection.get_autocommit()
            and _RETURNING.search(text or "")
        ):
            # sqlite3 finishes a RETURNING statement only when its rows are fetched, after this
            # wrapper returns: its feed rows could not commit with it.
            raise FeedError(
                f"cannot track the raw SQL write {sql[:80]!r} outside a transaction on SQLite: "
                "it has a RETURNING clause; run it inside transaction.atomic()"
            )
        with write_scope(alias) as keys:
            result = execute(sql, params, many, context)
            for table in tables:
                keys.extend(unknown_rows_keys(table))
        return result

    def _implicit_commit(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool,
                         context: dict, tables: list[str]) -> Any:
        """Run a MySQL statement that commits the open transaction (see the module docstring)."""
        from .. import runtime
        from .hints import own_statements
        from .writes import committed, publish

        connection = self.connection
        published = publish(connection)  # committed by the statement's implicit COMMIT
        result = execute(sql, params, many, context)
        connection.cachedeps_pending = {}
        committed(connection, published)
        connection.cachedeps_written = True  # this transaction's reads keep bypassing the cache
        keys = list(dict.fromkeys(k for table in tables for k in unknown_rows_keys(table)))
        if keys:
            engine = runtime.get_engine(using=connection.alias)
            with own_statements():
                tid = engine.feed.append(connection, keys)
                connection.connection.commit()  # what MySQL does around the statement anyway
            engine.committed(keys, tid)
        return result
