"""Databases for the stale-read checker runs of the Django suite (tests/django/test_consistency*.py)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from tests.conftest import PG_DSN, mysql_connect


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[dict]:
    """Create a PostgreSQL database of its own for one run; yield the env naming it; drop it."""
    import psycopg

    name = f"cachedeps_check_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield {"CACHEDEPS_TEST_DB": "postgresql", "CACHEDEPS_TEST_PG_DB": name}
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def fresh_mysql_database() -> Iterator[dict]:
    """Create a MariaDB/MySQL database of its own for one run; yield the env naming it; drop it."""
    name = f"cachedeps_check_{uuid.uuid4().hex[:8]}"
    admin = mysql_connect(autocommit=True)
    try:
        admin.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        yield {"CACHEDEPS_TEST_DB": "mysql", "CACHEDEPS_TEST_MYSQL_DB": name}
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()
