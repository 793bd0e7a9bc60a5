"""The stale-read checker with a writer that uses no cachedeps code (issue 10).

Runs on SQLite, PostgreSQL and MariaDB (there the external writer is a PyMySQL connection).
Readers are Django processes reading through the cache (tests/django/test_consistency.py's
readers, verify mode off: the checker counts stale reads itself). Writers: one through the
Django ORM with ``CACHEDEPS["CAPTURE"]`` on (its keys left to the triggers) and one plain
DB-API process (tests/capture/external_writer.py). memcached is restarted mid-run. With
capture installed: zero stale reads. Without it, the same run is stale (the control shows
the checker sees what capture prevents).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.capture import external_writer
from tests.consistency import checker
from tests.django import test_consistency as django_checker
from tests.django._checker_db import fresh_mysql_database, fresh_pg_database

pytestmark = pytest.mark.memcached


def _install_capture(env: dict) -> None:
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='tests.django.settings'; django.setup();"
        "from django.core.management import call_command; call_command('cachedeps_capture', 'install', verbosity=0)"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True, cwd=os.getcwd(),
                   capture_output=True)


def _run(env: dict, memcached, capture: bool) -> checker.Report:
    env = {**env, "CACHEDEPS_TEST_STORE": memcached.url, "CACHEDEPS_TEST_VERIFY": "0",
           "CACHEDEPS_TEST_CAPTURE": "1" if capture else "0"}
    django_checker._prepare(env)
    if capture:
        _install_capture(env)
    writer = external_writer.make_mixed_writer if capture else external_writer.make_writer
    return checker.run(writer, django_checker.make_reader, {"env": env}, writers=2, readers=2,
                       items=django_checker.ITEMS, duration=2.5, faults=[checker.at(1.2, memcached.restart)], min_writes=5)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def env(request, tmp_path):
    if request.param == "sqlite":
        yield {"CACHEDEPS_TEST_DB": "sqlite", "CACHEDEPS_TEST_SQLITE_FILE": str(tmp_path / "db.sqlite3")}
        return
    if request.param == "mysql":
        request.getfixturevalue("mysql_url")
        with fresh_mysql_database() as e:
            yield e
        return
    request.getfixturevalue("postgres_dsn")
    with fresh_pg_database() as e:
        yield e


def test_no_stale_reads_with_an_external_writer(env, memcached):
    memcached.restart()
    report = _run(env, memcached, capture=True)
    print(report.summary())
    report.assert_ok(min_reads=50, min_writes=5)
    assert report.counters.get("hits", 0) > 0, "readers should have been served from the cache"


@pytest.mark.slow
def test_control_without_capture_the_checker_sees_stale_reads(env, memcached):
    memcached.restart()
    report = _run(env, memcached, capture=False)
    print(report.summary())
    assert report.stale, "an external writer without capture must leave stale reads"
