"""Run SQLAlchemy's own ``test/orm`` and ``test/ext`` (from the sdist of the installed version) under cachedeps."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .sdist import ROOT, source_tree

__all__ = ["SQLA_PATHS", "SQLA_CI", "run_sqla"]

#: what ``make test-orm`` runs
SQLA_PATHS = ["test/orm", "test/ext"]
#: the subset ``make test`` runs
SQLA_CI = ["test/orm/test_expire.py", "test/orm/test_naturalpks.py", "test/orm/test_load_on_fks.py", "test/orm/test_onetoone.py",
           # hits that skipped eager loads and options carried into later loads (issue 9)
           "test/orm/test_recursive_loaders.py", "test/orm/inheritance/test_poly_loading.py::LazyLoaderTransfersOptsTest",
           # ShardedSession: flushes crashed inside cachedeps (the shard chosen without the instance)
           "test/ext/test_horizontal_shard.py"]


#: seconds one test of the suite may take before it fails as hung
TEST_TIMEOUT = 300.0


def _timeout_args(seconds: float) -> list[str]:
    """Return pytest-timeout's options for a per-test limit (none without the plugin)."""
    try:
        import pytest_timeout  # noqa: F401
    except ImportError:
        return []
    # signal: the hung test fails and the run goes on (thread would end the whole run)
    return [f"--timeout={seconds:g}", "--timeout-method=signal"] if seconds else []


def _pg_url() -> str:
    name = os.environ.get("CACHEDEPS_TEST_PG_DB", "test") + "_sqla"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _ensure_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        for schema in ("test_schema", "test_schema_2"):
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def _mysql_url() -> str:
    name = os.environ.get("CACHEDEPS_TEST_MYSQL_DB", "test") + "_sqla"
    return f"mysql+mysqldb://root@127.0.0.1:3306/{name}?charset=utf8mb4"


def _ensure_mysql_database(url: str) -> None:
    import MySQLdb

    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", charset="utf8mb4")
    try:
        cur = conn.cursor()
        # SQLAlchemy's suite reads other schemas (databases, on MySQL) by these names
        for schema in (name, "test_schema", "test_schema_2"):
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def run_sqla(paths: list[str] | None = None, *, db: str = "sqlite", install: bool = True, verify: bool = True,
             src: Path = ROOT, subset: str = "all", timeout: float = 7200, extra: list[str] | None = None,
             test_timeout: float = TEST_TIMEOUT) -> dict[str, Any]:
    """Run SQLAlchemy's tests at ``paths``; return the JSON report (plus ``seconds``, ``rc``).

    Each test gets ``test_timeout`` seconds (pytest-timeout, by SIGALRM): a test that waits
    forever (on a lock another connection of the same thread holds) fails with
    ``Timeout`` instead of stopping the run; the run as a whole gets ``timeout``.
    """
    tree = source_tree("SQLAlchemy")
    paths = paths or (SQLA_CI if subset == "ci" else SQLA_PATHS)
    here = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="orm_suite_sqla_") as tmp:
        report = Path(tmp) / "report.json"
        if db == "postgresql":
            dburi = _pg_url()
            _ensure_pg_database(dburi)
        elif db == "mysql":
            dburi = _mysql_url()
            _ensure_mysql_database(dburi)
        else:
            # Relative: SQLAlchemy's provisioning names the file from the URL's first word
            # ("querytest_pysqlite.db", and "pysqlite_test_schema.db" beside it) in the
            # working directory, the sdist tree, which the lock below keeps to one run. An
            # absolute path is cut at its first "_" or "." ("/tmp/orm_suite_..." became
            # "/tmp/orm_pysqlite.db"), one file shared by every run on the machine.
            dburi = "sqlite:///querytest.db"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(src), here])
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(ORM_SUITE_INSTALL="1" if install else "0", ORM_SUITE_VERIFY="1" if verify else "0",
                   ORM_SUITE_REPORT=str(report))
        # -s: no user site, so the sdist's conftest leaves lib/ off sys.path and the installed
        # SQLAlchemy (the one sqla_cachedeps imports) is tested
        args = [sys.executable, "-s", "-m", "pytest", "-p", "sqla_plugin", "-p", "no:cacheprovider",
                "-p", "no:django", "-o", "addopts=--tb=native -p warnings -p logging --strict-markers",
                "--maxfail=100000", "-q", "--dburi", dburi, *_timeout_args(test_timeout), *(extra or []), *paths]
        # SQLAlchemy's plugin keeps its SQLite files in the sdist directory and removes them
        # when a test class ends: one run at a time per checkout
        with open(tree.parent / "sqla-run.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            started = time.monotonic()
            proc = subprocess.run(args, env=env, cwd=str(tree), capture_output=True, text=True, timeout=timeout)
            seconds = time.monotonic() - started
        if not report.exists():
            raise RuntimeError(f"SQLAlchemy's suite wrote no report (exit {proc.returncode}):\n"
                               f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        data = json.loads(report.read_text())
    data.update(seconds=round(seconds, 1), rc=proc.returncode, db=db, suite="sqla",
                backend="cachedeps" if install else "plain", tail=proc.stdout[-600:])
    return data
