"""Fixtures of the capture tests: a SQLite file and a PostgreSQL database, each with the
change feed table, reached through plain DB-API connections (no cachedeps write code)."""

from __future__ import annotations

import sqlite3

import pytest

from cachedeps.feed import SqlFeed


class Db:
    """A database under test: how to connect, its feed, and a poller position."""

    def __init__(self, dialect: str, connect, feed: SqlFeed, url: str) -> None:
        self.dialect = dialect
        self.connect = connect
        self.feed = feed
        self.url = url
        self.position = 0
        self.conn = connect()

    def run(self, *statements: str, params=()) -> None:
        """Run statements in one transaction and commit."""
        cur = self.conn.cursor()
        for sql in statements:
            cur.execute(sql, params) if params else cur.execute(sql)
        self.conn.commit()
        cur.close()

    def rows(self, sql: str) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(sql)
        out = list(cur.fetchall())
        self.conn.commit()
        cur.close()
        return out

    def new_keys(self) -> list[str]:
        """Return the keys appended to the feed since the last call (spelled by the poller)."""
        p = self.feed.poll(self.conn, self.position)
        self.conn.commit()
        assert p.complete
        self.position = p.tid
        return [k for _, k in p.changes]

    def skip_to_head(self) -> None:
        self.position = self.feed.head(self.conn)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _pg_reset(dsn: str) -> None:
    """Drop what these tests create (tables cap_*, the feed, capture's objects), nothing else."""
    import psycopg

    from cachedeps import capture

    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_end")
        c.execute("DROP EVENT TRIGGER IF EXISTS cachedeps_capture_ddl_drop")
        names = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND (tablename LIKE 'cap\\_%' OR tablename LIKE 'cachedeps\\_%')")]
        for name in names:
            c.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        for sql in capture.remove_ddl("postgresql", [], everything=True):
            c.execute(sql)
        for (fn,) in c.execute("SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE 'cachedeps\\_cap\\_%'"):
            c.execute(f"DROP FUNCTION IF EXISTS {fn}")


def _my_reset(conn) -> None:
    """Drop what these tests create on MariaDB (tables cap_*, the feed, capture's objects)."""
    cur = conn.cursor()
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND (TABLE_NAME LIKE 'cap\\_%' OR TABLE_NAME LIKE 'cachedeps\\_%')")
    names = [r[0] for r in cur.fetchall()]
    cur.execute("SET FOREIGN_KEY_CHECKS = 0")
    for name in names:
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
    cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    conn.commit()
    cur.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A fresh database with the feed table, per dialect."""
    yield from make_db(request, tmp_path, request.param)


def make_db(request, tmp_path, dialect: str):
    """Yield a fresh :class:`Db` of ``dialect`` (``"mysql"``: the test MariaDB)."""
    if dialect == "mysql":
        from tests.conftest import mysql_connect, mysql_params

        url = request.getfixturevalue("mysql_url")
        admin = mysql_connect()
        _my_reset(admin)
        d = Db("mysql", mysql_connect, SqlFeed("mysql"), url)
        d.database = mysql_params()["database"]
        d.run(*d.feed.ddl())
        yield d
        d.close()
        _my_reset(admin)
        admin.close()
        return
    if dialect == "sqlite":
        path = str(tmp_path / "capture.sqlite3")

        def connect():
            c = sqlite3.connect(path, timeout=30)
            return c

        feed = SqlFeed("sqlite")
        url = path
    else:
        import psycopg

        dsn = request.getfixturevalue("postgres_dsn")
        _pg_reset(dsn)

        def connect():
            return psycopg.connect(dsn)

        feed = SqlFeed("postgresql")
        url = dsn
    d = Db(dialect, connect, feed, url)
    d.run(*feed.ddl())
    yield d
    d.close()
    if dialect == "postgresql":
        _pg_reset(url)
