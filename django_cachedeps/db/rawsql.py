"""Invalidate on raw SQL writes issued through Django cursors.

``cursor.execute("UPDATE book SET ...")`` by application code bypasses the compilers. The
backend wrappers install :class:`RawWriteTracker` in ``connection.execute_wrappers``; it
asks the engine's classifier (:func:`cachedeps.sqlclass.classify`) what each statement does.
A statement not proved a read (DML, DDL such as ``DROP``/``ALTER``/``TRUNCATE``/``CREATE
INDEX``, or one the classifier cannot see through, which counts as a write to every cached
table) marks the transaction as written and appends the table key and the all-rows key of
every cached table it may write to the feed in the statement's own transaction. Comments,
several statements in one execute, data-modifying CTEs and identifier case (per vendor)
are the classifier's business. Statements issued by the compilers' bookkeeping are marked
and skipped.

Limits: writes the database makes on a statement's behalf (triggers, rules, functions
called from a ``SELECT``) are not seen. A statement PostgreSQL refuses inside a
transaction block (``CREATE INDEX CONCURRENTLY``) runs first, and its keys are appended
right after it, in a transaction of their own.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from cachedeps import keys as ck
from cachedeps.errors import FeedError
from cachedeps.sqlclass import classify, unknown_statement
from django.db import connections

from ..conf import cached_tables, get_settings
from .hints import in_own_statement

__all__ = ["RawWriteTracker", "written_tables"]

_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def written_tables(sql: str, vendor: str = "sqlite") -> list[str]:
    """Return the cached tables a raw SQL statement may write (empty for reads).

    Args:
        sql: the statement as given to ``cursor.execute``.
        vendor: the connection's ``vendor`` (identifier case differs per database).
    """
    return classify(sql, vendor).written(cached_tables())


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
        tables = verdict.written(cached_tables())
        if not tables:
            return execute(sql, params, many, context)
        from .. import runtime
        from .writes import write_scope

        alias = self.connection.alias
        if alias not in connections.settings or not runtime.feed_ready(alias):
            # Django's own connections outside DATABASES ("__no_db__", for CREATE/DROP DATABASE)
            return execute(sql, params, many, context)
        if verdict.autocommit_only:
            # The database refuses it in a transaction block: run it, then publish its keys.
            result = execute(sql, params, many, context)
            with write_scope(alias) as keys:
                for table in tables:
                    keys.extend((ck.table_key(table), ck.all_rows_key(table)))
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
                keys.extend((ck.table_key(table), ck.all_rows_key(table)))
        return result
