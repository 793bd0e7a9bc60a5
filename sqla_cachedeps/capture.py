"""Capture triggers for SQLAlchemy tables (:mod:`cachedeps.capture`).

::

    import sqla_cachedeps
    sqla_cachedeps.capture(engine, Base.metadata)                 # install (idempotent)
    sqla_cachedeps.install(Session, "memcache://127.0.0.1:11211", capture=True)

    # Alembic: the same DDL as statements
    for sql in sqla_cachedeps.capture_ddl("postgresql", [Book.__table__, Author.__table__]):
        op.execute(sql)

Tables are described from their ``Column`` objects: the column's name and the kind this
adapter's reads give its type (:func:`sqla_cachedeps.spelling.type_kind`), so the triggers
spell exactly the columns reads may anchor on.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection

from cachedeps import capture as engine_capture
from cachedeps.errors import ConfigurationError

from .feed import DEFAULT_TABLE
from .spelling import type_kind

__all__ = ["describe_table", "capture", "capture_ddl", "remove_capture", "capture_status"]


def _tables(tables: Any) -> list[Table]:
    """Return the ``Table`` objects of a MetaData, a Table, a mapped class, or a list of them."""
    if isinstance(tables, MetaData):
        return [t for t in tables.sorted_tables if t.name != DEFAULT_TABLE]
    if isinstance(tables, Table):
        return [tables]
    if isinstance(tables, type) or hasattr(tables, "__mapper__"):
        return [inspect(tables).local_table]
    out: list[Table] = []
    for item in tables:
        out.extend(_tables(item))
    return list(dict.fromkeys(out))


def _dialect(dialect: Any) -> Any:
    if isinstance(dialect, str):
        from sqlalchemy.dialects import postgresql, sqlite

        from sqlalchemy.dialects import mysql

        known = {"postgresql": postgresql.dialect, "sqlite": sqlite.dialect, "mysql": mysql.dialect,
                 "mariadb": mysql.dialect}
        if dialect not in known:
            raise ConfigurationError(f"capture triggers support PostgreSQL, SQLite and MySQL/MariaDB; got {dialect!r}")
        return known[dialect]()
    return dialect


def describe_table(table: Table, dialect: Any) -> engine_capture.CaptureTable:
    """Return the capture description of ``table`` on ``dialect`` (a dialect or its name)."""
    dialect = _dialect(dialect)
    columns = [(c.name, type_kind(c.type, dialect)) for c in table.columns]
    return engine_capture.describe(table.name, [c.name for c in table.primary_key.columns], columns)


def capture_ddl(dialect: Any, tables: Any, feed_table: str = DEFAULT_TABLE, ddl_events: bool = True) -> list[str]:
    """Return the statements installing capture for ``tables`` (for Alembic's ``op.execute``).

    Args:
        dialect: ``"postgresql"``, ``"sqlite"`` or a SQLAlchemy dialect.
        tables: a ``MetaData``, ``Table`` objects or mapped classes.
        ddl_events: include PostgreSQL's event trigger for ``ALTER``/``DROP TABLE`` (a
            superuser must run it).
    """
    dialect = _dialect(dialect)
    described = [describe_table(t, dialect) for t in _tables(tables)]
    return engine_capture.capture_ddl(dialect.name, described, feed_table, ddl_events=ddl_events)


def _run(bind: Any, fn: Any) -> Any:
    if hasattr(bind, "sync_engine"):
        raise ConfigurationError("capture() cannot run on an AsyncEngine directly; use "
                                 "`async with engine.begin() as conn: await conn.run_sync(sqla_cachedeps.capture, tables)`")
    if isinstance(bind, Connection):
        return fn(bind)
    with bind.begin() as conn:
        return fn(conn)


def capture(bind: Any, tables: Any, feed_table: str = DEFAULT_TABLE) -> list[engine_capture.CaptureTable]:
    """Install (or refresh) capture triggers for ``tables`` on ``bind`` (an Engine or a
    Connection, whose transaction the statements join); return the descriptions installed.

    Raises:
        ConfigurationError: the database is not PostgreSQL or SQLite, or ``bind`` is async.
    """
    def run(conn: Connection) -> list[engine_capture.CaptureTable]:
        described = [describe_table(t, conn.dialect) for t in _tables(tables)]
        engine_capture.install(conn.connection.dbapi_connection, conn.dialect.name, described, feed_table)
        return described

    return _run(bind, run)


def remove_capture(bind: Any, tables: Any = None) -> None:
    """Remove capture from ``tables`` (default: every captured table) of ``bind``'s database."""
    def run(conn: Connection) -> None:
        names = None if tables is None else [t.name for t in _tables(tables)]
        engine_capture.remove(conn.connection.dbapi_connection, conn.dialect.name, names)

    _run(bind, run)


def capture_status(bind: Any, tables: Any) -> list[engine_capture.TableStatus]:
    """Return the capture status of ``tables`` (described from their current definitions)."""
    def run(conn: Connection) -> list[engine_capture.TableStatus]:
        described = [describe_table(t, conn.dialect) for t in _tables(tables)]
        return engine_capture.status(conn.connection.dbapi_connection, conn.dialect.name, described)

    return _run(bind, run)
