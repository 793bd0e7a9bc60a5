"""The change feed table in a SQLAlchemy application's database.

::

    from sqla_cachedeps import create_feed_table
    create_feed_table(engine)          # idempotent; Django projects get it from a migration
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from cachedeps.errors import ConfigurationError
from cachedeps.feed import SqlFeed

__all__ = ["create_feed_table", "feed_for_dialect", "DEFAULT_TABLE"]

DEFAULT_TABLE = "cachedeps_change"

#: SQLAlchemy dialect name -> SqlFeed dialect (mysql+mysqldb, mysql+pymysql, mariadb+...)
_DIALECTS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
_PARAMSTYLES = {"qmark": "qmark", "format": "format", "pyformat": "format"}


def feed_name(dialect: Any) -> str | None:
    """Return the :class:`~cachedeps.feed.SqlFeed` dialect of a SQLAlchemy dialect (or None)."""
    return _DIALECTS.get(dialect.name)


def feed_for_dialect(dialect: Any, table: str = DEFAULT_TABLE, capture: bool = False) -> SqlFeed:
    """Return a :class:`~cachedeps.feed.SqlFeed` speaking ``dialect``'s SQL and paramstyle.

    Raises:
        ConfigurationError: the database or its driver's paramstyle is not supported.
    """
    name = _DIALECTS.get(dialect.name)
    if name is None:
        raise ConfigurationError(
            "the change feed supports SQLite, PostgreSQL and MySQL/MariaDB; this engine's dialect is "
            f"{dialect.name!r}"
        )
    paramstyle = _PARAMSTYLES.get(dialect.paramstyle)
    if paramstyle is None:
        raise ConfigurationError(
            f"driver {dialect.driver!r} uses paramstyle {dialect.paramstyle!r}; the change feed needs "
            "'qmark', 'format' or 'pyformat' (use sqlite3/aiosqlite, psycopg, mysqlclient or PyMySQL)"
        )
    return SqlFeed(dialect=name, paramstyle=paramstyle, table=table, capture=capture)


def create_feed_table(bind: Any, table: str = DEFAULT_TABLE) -> None:
    """Create the change feed table (and its index) if it does not exist.

    Args:
        bind: a SQLAlchemy ``Engine`` (a transaction is opened and committed) or a
            ``Connection`` (the statements run in its transaction). With an ``AsyncEngine``::

                async with engine.begin() as conn:
                    await conn.run_sync(create_feed_table)

        table: the table name; the default is shared with ``django_cachedeps``.

    Raises:
        ConfigurationError: an ``AsyncEngine`` was passed directly, or the database is not
            supported.
    """
    if hasattr(bind, "sync_engine"):
        raise ConfigurationError(
            "create_feed_table() cannot run on an AsyncEngine directly; use "
            "`async with engine.begin() as conn: await conn.run_sync(create_feed_table)`"
        )
    feed = feed_for_dialect(bind.dialect, table)
    if isinstance(bind, Connection):
        for statement in feed.ddl():
            bind.exec_driver_sql(statement)
        return
    with bind.begin() as conn:
        for statement in feed.ddl():
            conn.exec_driver_sql(statement)
