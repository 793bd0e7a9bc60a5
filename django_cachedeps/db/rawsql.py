"""Invalidate on raw SQL writes issued through Django cursors.

``cursor.execute("UPDATE book SET ...")`` by application code bypasses the compilers. The
backend wrappers install :class:`RawWriteTracker` in ``connection.execute_wrappers``; it
recognizes ``INSERT``/``UPDATE``/``DELETE``/``REPLACE``/``TRUNCATE`` on cached tables and
appends the table key and the all-rows key of each to the feed in the statement's own
transaction. Statements issued by the compilers' bookkeeping are marked and skipped.

Not recognized (document-level limits): writes inside ``WITH ...`` statements, stored
procedures and triggers, and DDL (``ALTER``/``DROP``: a changed table changes the SQL text
of every query on it, hence their cache keys).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from cachedeps import keys as ck
from cachedeps.errors import FeedError

from ..conf import get_settings, table_is_cached
from .hints import in_own_statement

__all__ = ["RawWriteTracker", "written_tables"]

_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_SINGLE = re.compile(
    r"^\s*(?:"
    r"INSERT\s+(?:OR\s+\w+\s+)?INTO"
    r"|REPLACE\s+INTO"
    r"|UPDATE(?:\s+OR\s+\w+)?(?:\s+ONLY)?"
    r"|DELETE\s+FROM(?:\s+ONLY)?"
    rf")\s+({_QUALIFIED})",
    re.IGNORECASE | re.DOTALL,
)
_TRUNCATE = re.compile(
    rf"^\s*TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?\s+({_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)",
    re.IGNORECASE | re.DOTALL,
)
_SPLIT_NAME = re.compile(_NAME)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _bare(qualified: str) -> str:
    """Return the table name without schema or quotes."""
    last = _SPLIT_NAME.findall(qualified)[-1]
    if last[0] in '"`[':
        return last[1:-1]
    return last


def written_tables(sql: str) -> list[str]:
    """Return the tables a raw SQL statement writes (empty for reads and unknown statements)."""
    match = _SINGLE.match(sql)
    if match:
        return [_bare(match.group(1))]
    match = _TRUNCATE.match(sql)
    if match:
        return [_bare(part) for part in match.group(1).split(",")]
    return []


class RawWriteTracker:
    """An ``execute_wrappers`` entry that turns raw writes into feed rows."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict) -> Any:
        """Run the statement; when it writes cached tables, append their keys in its transaction."""
        if in_own_statement() or not isinstance(sql, str) or not get_settings().enabled:
            return execute(sql, params, many, context)
        tables = [t for t in written_tables(sql) if table_is_cached(t)]
        if not tables:
            return execute(sql, params, many, context)
        from .. import runtime
        from .writes import write_scope

        if not runtime.feed_ready(self.connection.alias):
            return execute(sql, params, many, context)
        if (
            self.connection.vendor == "sqlite"
            and self.connection.get_autocommit()
            and _RETURNING.search(sql)
        ):
            # sqlite3 finishes a RETURNING statement only when its rows are fetched, after this
            # wrapper returns: its feed rows could not commit with it.
            raise FeedError(
                f"cannot track the raw SQL write {sql[:80]!r} outside a transaction on SQLite: "
                "it has a RETURNING clause; run it inside transaction.atomic()"
            )
        with write_scope(self.connection.alias) as keys:
            result = execute(sql, params, many, context)
            for table in tables:
                keys.extend((ck.table_key(table), ck.all_rows_key(table)))
        return result
