"""The stale-read checker through the Django ORM: writer and reader processes (spawn, each
with its own ``django.setup()``) on a SQLite file database, on PostgreSQL and on MariaDB, sharing one
memcached. Readers read by primary key (the state path) and by a unique field (a derived
query entry, on the field-value key or on field-change keys and the row's oid), polling the feed before each read; writers bump a version with
``QuerySet.update`` or ``save()``. Zero stale reads allowed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.django._checker_db import fresh_mysql_database, fresh_pg_database
from tests.consistency import checker

pytestmark = pytest.mark.memcached
ON_POSTGRESQL = os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "postgresql"
ON_MYSQL = os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "mysql"

ITEMS = 4


def _setup_django(ctx: dict) -> None:
    os.environ.update(ctx["env"])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
    import django

    django.setup()


def make_writer(ctx: dict, index: int):
    """Return a write(item) that bumps the item's version in its own transaction."""
    _setup_django(ctx)
    from django.db import connection, transaction
    from django.db.models import F

    from tests.django.testapp.models import Book

    turn = [index]
    # Warm up before the run's clock starts (the connection, the first poll, the raw-SQL
    # classifier's dialect): a loaded machine otherwise spends the short run starting up.
    from cachedeps.sqlclass import classify
    from django_cachedeps import runtime

    runtime.ensure_polled("default")
    classify("UPDATE book SET pages = pages + 1", connection.vendor)

    def write(item: int) -> int:
        turn[0] += 1
        with transaction.atomic():
            if turn[0] % 5 == 1:  # raw SQL: a comment first, the table named in another case
                with connection.cursor() as cursor:
                    # (MySQL on Linux: table names are case-sensitive)
                    table = "book" if connection.vendor == "mysql" else "BOOK"
                    cursor.execute(f"/* checker */ UPDATE {table} SET pages = pages + 1 WHERE isbn = %s", [f"i{item}"])
            elif index % 2:
                Book.objects.filter(isbn=f"i{item}").update(pages=F("pages") + 1)
            else:
                book = Book.objects.get(isbn=f"i{item}")
                Book.objects.filter(pk=book.pk).update(pages=F("pages") + 1)
            version = Book.objects.filter(isbn=f"i{item}").values_list("pages", flat=True).get()
        checker.note_commit(item, version)
        return version

    return write


def make_reader(ctx: dict, index: int):
    """Return a read(item) through the cache: by primary key or by unique field."""
    _setup_django(ctx)
    from django_cachedeps import runtime
    from tests.django.testapp.models import Book

    pks = {int(isbn[1:]): pk for isbn, pk in Book.objects.values_list("isbn", "pk")}

    def read(item: int) -> int:
        if index % 2:
            return Book.objects.get(pk=pks[item]).pages
        if item % 2:  # field-change keys and the row's oid
            return Book.objects.filter(isbn=f"i{item}").order_by("pk").values_list("pk", "pages")[0][1]
        return Book.objects.filter(isbn=f"i{item}").values_list("pages", flat=True)[0]

    read.stats = lambda: runtime.get_engine().stats()  # type: ignore[attr-defined]
    for item in range(ITEMS):  # warm up (imports, connection, first poll) before the clock starts
        read(item)
    return read


def _prepare(env: dict) -> None:
    """Migrate the database and create the items, in a child process with ``env``."""
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='tests.django.settings'; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from tests.django.testapp.models import Author, Book;"
        "a = Author.objects.create(name='w');"
        f"[Book.objects.create(author=a, title='t', isbn=f'i{{i}}', pages=1) for i in range({ITEMS})]"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True, cwd=os.getcwd())


def _check(env: dict, memcached) -> None:
    env = {**env, "CACHEDEPS_TEST_STORE": memcached.url}
    _prepare(env)
    report = checker.run(make_writer, make_reader, {"env": env}, writers=2, readers=2, items=ITEMS, duration=2.0, min_writes=5)
    report.assert_ok(min_reads=50, min_writes=5)
    assert report.counters.get("hits", 0) > 0, "readers should have been served from the cache"


@pytest.mark.skipif(ON_POSTGRESQL or ON_MYSQL, reason="the SQLite run of the Django suite covers SQLite")
def test_no_stale_reads_sqlite_file(tmp_path, memcached):
    memcached.restart()
    _check({"CACHEDEPS_TEST_DB": "sqlite", "CACHEDEPS_TEST_SQLITE_FILE": str(tmp_path / "db.sqlite3")}, memcached)


@pytest.mark.skipif(not ON_POSTGRESQL, reason="runs in the PostgreSQL run (CACHEDEPS_TEST_DB=postgresql)")
def test_no_stale_reads_postgresql(postgres_dsn, memcached):
    memcached.restart()
    with fresh_pg_database() as env:
        _check(env, memcached)


@pytest.mark.mysql
@pytest.mark.skipif(not ON_MYSQL, reason="runs in the MariaDB run (CACHEDEPS_TEST_DB=mysql)")
def test_no_stale_reads_mariadb(mysql_url, memcached):
    memcached.restart()
    with fresh_mysql_database() as env:
        _check(env, memcached)
