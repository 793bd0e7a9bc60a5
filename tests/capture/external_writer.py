"""A writer process that knows nothing of cachedeps: plain DB-API, plain SQL.

Used by the stale-read checker (tests/capture/test_external_checker.py) as the writer that
bypasses every adapter. It imports no cachedeps module: only capture triggers installed in
the database can make its commits visible to the readers' caches.
"""

from __future__ import annotations

import os
import sqlite3

from tests.consistency import checker


def connect(env: dict):
    """Connect to the database ``env`` names (the Django test settings' variables)."""
    if env.get("CACHEDEPS_TEST_DB") == "mysql":
        import pymysql
        from urllib.parse import unquote, urlsplit

        url = urlsplit(os.environ.get("CACHEDEPS_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"))
        return pymysql.connect(host=url.hostname or "127.0.0.1", port=url.port or 3306, user=unquote(url.username or "root"),
                               password=unquote(url.password or ""), database=env["CACHEDEPS_TEST_MYSQL_DB"],
                               charset="utf8mb4", autocommit=False)
    if env.get("CACHEDEPS_TEST_DB") == "postgresql":
        import psycopg

        dsn = os.environ.get("CACHEDEPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
        base = dsn.rsplit("/", 1)[0]
        return psycopg.connect(f"{base}/{env['CACHEDEPS_TEST_PG_DB']}")
    conn = sqlite3.connect(env["CACHEDEPS_TEST_SQLITE_FILE"], timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def make_writer(ctx: dict, index: int):
    """Return write(item): bump book ``i<item>``'s pages in one transaction, plain SQL."""
    env = ctx["env"]
    conn = connect(env)
    pg = env.get("CACHEDEPS_TEST_DB") in ("postgresql", "mysql")  # %s placeholders, commit()
    p = "%s" if pg else "?"

    def write(item: int) -> int:
        cur = conn.cursor()
        if not pg:
            cur.execute("BEGIN IMMEDIATE")
        cur.execute(f"UPDATE book SET pages = pages + 1 WHERE isbn = {p}", (f"i{item}",))
        cur.execute(f"SELECT pages FROM book WHERE isbn = {p}", (f"i{item}",))
        version = int(cur.fetchone()[0])
        if pg:
            conn.commit()
        else:
            cur.execute("COMMIT")
        checker.note_commit(item, version)
        return version

    return write


def make_mixed_writer(ctx: dict, index: int):
    """Writer 0 writes through the Django ORM (capture on), the others are external."""
    if index == 0:
        from tests.django.test_consistency import make_writer as django_writer

        return django_writer(ctx, index)
    return make_writer(ctx, index)
