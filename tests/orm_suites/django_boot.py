"""Run Django's ``tests/runtests.py`` with cachedeps installed (a subprocess entry point).

``python tests/orm_suites/django_boot.py RUNTESTS_DIR ARGS...`` (the driver in ``run.py``
builds the call): adds ``django_cachedeps`` to runtests' ``ALWAYS_INSTALLED_APPS``, keeps
every engine built for the counters, and with ``ORM_SUITE_MODE=autocommit`` makes
``TestCase`` behave as on a database without transactions: no per-test atomic block,
``setUpTestData`` before each test, a flush after each (as ``TransactionTestCase``, without
recreating content types and permissions), so reads run in autocommit where cachedeps reads
and fills.

Every flush (both modes, both backends, both databases) deletes the rows of the tables that
have any (found by one probe per 400 tables on SQLite and MySQL, a function of the session on
PostgreSQL) instead of emptying every table: on PostgreSQL a
``TRUNCATE`` of a few hundred tables costs seconds (a new file per table), on SQLite the
stock flush is one ``DELETE`` per table (~800 with the whole module list), each a raw write
cachedeps classifies and publishes; the ``DELETE`` of the few tables a test filled costs
milliseconds. The result is the same: every table empty (Django's foreign keys are deferred
to the commit; sequences are not reset, as the flush does not reset them either; a flush
asking for ``reset_sequences`` or ``allow_cascade`` keeps the stock statements).
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def _patch_cachedeps() -> None:
    from django_cachedeps import conf, runtime

    import django_runner

    supported = "VERIFY" in conf._KNOWN
    os.environ["ORM_SUITE_VERIFY_SUPPORTED"] = "1" if supported else "0"
    if not supported:
        os.environ["ORM_SUITE_VERIFY"] = "0"  # this code has no verify mode: run without it
    build = runtime._build

    def _build(*args):  # type: ignore[no-untyped-def]
        engine = build(*args)
        django_runner.ENGINES.append(engine)
        return engine

    runtime._build = _build


#: tables probed per statement (SQLite allows at most 500 SELECTs in one compound statement)
_PROBE_CHUNK = 400


#: the PostgreSQL probe: a function of the session (planning one UNION of ~800 EXISTS
#: subqueries took ~0.5 s a flush; the function plans one small query per table)
_PG_FILLED = """CREATE OR REPLACE FUNCTION pg_temp.orm_suite_filled(tables text[]) RETURNS SETOF int
LANGUAGE plpgsql AS $$
DECLARE found boolean;
BEGIN
  FOR i IN 1 .. coalesce(array_length(tables, 1), 0) LOOP
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || tables[i] || ')' INTO found;
    IF found THEN RETURN NEXT i - 1; END IF;
  END LOOP;
END $$"""


def _pg_filled(connection, quoted: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """Return the positions of the tables (quoted names) that have rows, on the DB-API
    connection itself: the probe is the harness's, not a statement of the test."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('pg_temp.orm_suite_filled(text[])') IS NULL")
        if cursor.fetchone()[0]:
            cursor.execute(_PG_FILLED)
        cursor.execute("SELECT * FROM pg_temp.orm_suite_filled(%s::text[])", (quoted,))
        return [row[0] for row in cursor.fetchall()]


def _union_filled(connection, quoted: list[str], source: str = "") -> list[int]:  # type: ignore[no-untyped-def]
    """Return the positions of the tables (quoted names) that have rows, by one UNION of
    ``EXISTS`` probes per chunk (``source``: ``" FROM DUAL"`` on MySQL, which wants one)."""
    filled: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(quoted), _PROBE_CHUNK):
            cursor.execute(" UNION ALL ".join(
                f"SELECT {i}{source} WHERE EXISTS (SELECT 1 FROM {quoted[i]})"
                for i in range(start, min(start + _PROBE_CHUNK, len(quoted)))))
            filled.extend(row[0] for row in cursor.fetchall())
    return filled


def _patch_flush(vendor: str) -> None:
    """Make the flush of ``vendor``'s backend delete only the tables that have rows."""
    # through the backend's base module: importing its operations module first is a
    # circular import (sqlite3: operations -> base -> operations)
    import importlib

    import django.db.models  # noqa: F401  (postgresql: operations -> models -> lookups -> operations)

    operations = importlib.import_module(f"django.db.backends.{vendor}.base").DatabaseWrapper.ops_class
    stock = operations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):  # type: ignore[no-untyped-def]
        if not tables or reset_sequences or allow_cascade:
            return stock(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        tables = list(tables)
        quoted = [self.quote_name(t) for t in tables]
        if vendor == "postgresql":
            filled = _pg_filled(self.connection, quoted)
        else:
            filled = _union_filled(self.connection, quoted, " FROM DUAL" if vendor == "mysql" else "")
        # at least one statement: the flush command emits post_migrate only after a non-empty list
        deletes = [f"DELETE FROM {quoted[i]};" for i in sorted(filled) or [0]]
        if vendor == "mysql":  # InnoDB checks foreign keys per statement, as the stock flush does
            return ["SET FOREIGN_KEY_CHECKS = 0;", *deletes, "SET FOREIGN_KEY_CHECKS = 1;"]
        return deletes

    operations.sql_flush = sql_flush


def _patch_testcase() -> None:
    from django.core.management import call_command
    from django.test import TestCase

    TestCase._databases_support_transactions = classmethod(lambda cls: False)

    def _fixture_teardown(self):  # type: ignore[no-untyped-def]
        # TransactionTestCase's flush, without the post_migrate signal that recreates every
        # content type and permission after each test (minutes over the whole list); content
        # types are made again on demand, so their cache is cleared with the table.
        for db_name in self._databases_names(include_mirrors=False):
            call_command("flush", verbosity=0, interactive=False, database=db_name,
                         reset_sequences=False, allow_cascade=False, inhibit_post_migrate=True)
        try:
            from django.contrib.contenttypes.models import ContentType
        except ImportError:
            return
        ContentType.objects.clear_cache()

    TestCase._fixture_teardown = _fixture_teardown


def main(argv: list[str]) -> None:
    runtests_dir = os.path.abspath(argv[0])
    sys.path.insert(0, runtests_dir)
    os.chdir(runtests_dir)
    if os.environ.get("ORM_SUITE_BACKEND", "cachedeps") == "cachedeps":
        _patch_cachedeps()
    if os.environ.get("ORM_SUITE_MODE", "testcase") == "autocommit":
        _patch_testcase()
    db = os.environ.get("ORM_SUITE_DB", "sqlite")
    _patch_flush(db if db in ("postgresql", "mysql") else "sqlite3")
    # Django's own cache-backend tests on CachedepsCache (label cache.test_cachedeps_backend)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "django_cache_backend.py")) as src:
        text = src.read()
    target = os.path.join(runtests_dir, "cache", "test_cachedeps_backend.py")
    if not os.path.exists(target) or open(target).read() != text:
        with open(target, "w") as out:
            out.write(text)
    path = os.path.join(runtests_dir, "runtests.py")
    with open(path) as fh:
        source = fh.read()
    if os.environ.get("ORM_SUITE_BACKEND", "cachedeps") == "cachedeps":
        marker = "ALWAYS_INSTALLED_APPS = ["
        if marker not in source:
            raise SystemExit(f"{path}: no {marker!r} to add django_cachedeps to")
        source = source.replace(marker, marker + '\n    "django_cachedeps",', 1)
    sys.argv = [path, *argv[1:]]
    code = compile(source, path, "exec")
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})


if __name__ == "__main__":
    main(sys.argv[1:])
