"""System checks (each id fires on its bad setting) and the management commands."""

from __future__ import annotations

import io

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_cachedeps import checks

BACKEND = "django_cachedeps.backend.CachedepsCache"
GOOD_CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": "embedded://checks"}}


def ids(messages):
    return {m.id for m in messages}


def run_all():
    return [*checks.check_settings(), *checks.check_cache(), *checks.check_models(),
            *checks.check_databases(), *checks.check_middleware(), *checks.check_app_installed(),
            *checks.check_store_reachable()]


def test_the_test_settings_pass():
    assert run_all() == []


@pytest.mark.parametrize("overrides, expected", [
    ({"CACHEDEPS": {"CACHE": "default", "BOGUS": 1}}, "cachedeps.E001"),
    ({"CACHEDEPS": {"CACHE": "nope"}}, "cachedeps.E002"),
    ({"CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}},
     "cachedeps.E003"),
    ({"CACHES": {"default": {"BACKEND": BACKEND, "LOCATION": "redis://x:port"}}}, "cachedeps.E004"),
    ({"CACHEDEPS": {"CACHE": "default", "MODELS": ["testapp.Nope"]}}, "cachedeps.E005"),
    ({"CACHEDEPS": {"CACHE": "default", "EXCLUDE": ["nope.Model"]}}, "cachedeps.E005"),
    ({"DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}},
     "cachedeps.E006"),
    ({"MIDDLEWARE": []}, "cachedeps.W001"),
    ({"CACHES": {"default": {"BACKEND": BACKEND}}}, "cachedeps.E010"),
    ({"CACHES": {"default": {"BACKEND": BACKEND, "LOCATION": ""}}}, "cachedeps.E010"),
    ({"INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth"]}, "cachedeps.E008"),
    ({"CACHES": {"default": {"BACKEND": BACKEND, "LOCATION": "memcache://127.0.0.1:1"}}},
     "cachedeps.W003"),
])
def test_each_check_fires_on_its_bad_setting(overrides, expected):
    with override_settings(**overrides):
        found = run_all()
    assert expected in ids(found)
    message = next(m for m in found if m.id == expected)
    assert message.hint  # says the fix


def test_stock_mysql_engine_is_told_the_cachedeps_wrapper():
    mysql = {"default": {"ENGINE": "django.db.backends.mysql", "NAME": "app"}}
    with override_settings(DATABASES=mysql):
        found = [m for m in checks.check_databases() if m.id == "cachedeps.E006"]
    assert found and "django_cachedeps.db.backends.mysql" in found[0].hint


@pytest.mark.django_db(transaction=True)
def test_mysql_feed_check_fires_when_the_lock_table_is_missing_or_not_innodb():
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("the feed's lock table and InnoDB are MySQL's/MariaDB's")
    assert not checks.check_mysql_feed(databases=["default"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE cachedeps_change_lock")
        (missing,) = checks.check_mysql_feed(databases=["default"])
        assert missing.id == "cachedeps.E012" and "migrate" in missing.hint
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE cachedeps_change_lock (id TINYINT PRIMARY KEY) ENGINE=MyISAM")
        (myisam,) = checks.check_mysql_feed(databases=["default"])
        assert "MyISAM" in myisam.msg and "ENGINE=InnoDB" in myisam.hint
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS cachedeps_change_lock")
            cursor.execute("CREATE TABLE cachedeps_change_lock (id TINYINT PRIMARY KEY) ENGINE=InnoDB")
            cursor.execute("INSERT INTO cachedeps_change_lock (id) VALUES (1)")
    assert not checks.check_mysql_feed(databases=["default"])


def test_disabled_cachedeps_does_not_require_the_wrappers():
    with override_settings(CACHEDEPS={"CACHE": "default", "ENABLED": False}, MIDDLEWARE=[],
                           DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                                  "NAME": ":memory:"}}):
        assert {"cachedeps.E006", "cachedeps.W001"}.isdisjoint(ids(run_all()))


@pytest.mark.django_db(transaction=True)
def test_stats_command_prints_prefix_rows_and_hit_rates():
    cache = caches["default"]
    cache.set("stat-key", "v")
    cache.get("stat-key")
    cache.get("stat-missing")
    out = io.StringIO()
    call_command("cachedeps_stats", stdout=out)
    text = out.getvalue()
    assert "hit rate" in text and "prefix" in text
    assert "%" in text  # a computed hit rate
    assert "embedded store" in text and "not the web server's" in text  # why the figures may be zeros


@pytest.mark.django_db(transaction=True)
def test_invalidate_command_drops_dependent_entries():
    cache = caches["default"]
    cache.set("page", "rendered", depends_on=["book:1"])
    cache.set("other", "rendered", depends_on=["book:2"])
    assert cache.get("page") == "rendered"
    out = io.StringIO()
    call_command("cachedeps_invalidate", "book:1", stdout=out)
    assert "invalidated 1 key" in out.getvalue()
    assert cache.get("page") is None
    assert cache.get("other") == "rendered"


@pytest.mark.django_db(transaction=True)
def test_backend_set_depends_on_and_invalidate():
    cache = caches["default"]
    cache.set("a", {"x": 1}, depends_on=["author:7", "book.author_id=7"])
    assert cache.get("a") == {"x": 1}
    assert cache.get_many(["a"]) == {"a": {"x": 1}}
    cache.invalidate("book.author_id=8")
    assert cache.get("a") == {"x": 1}
    cache.invalidate("book:*")  # every row of book: implies the field key
    assert cache.get("a") is None


def test_serve_command_takes_host_and_port_from_location():
    out = io.StringIO()
    with override_settings(CACHES={"default": {"BACKEND": BACKEND,
                                               "LOCATION": "memcache://127.0.0.1:22122"}}):
        call_command("cachedeps_serve", "--print-args", "--max-memory", "32MB", stdout=out)
    assert out.getvalue().strip() == (
        "cachedeps serve --host 127.0.0.1 --port 22122 --max-memory 32MB")
    with override_settings(CACHES=GOOD_CACHES), pytest.raises(CommandError, match="in-process"):
        call_command("cachedeps_serve", "--print-args", stdout=io.StringIO())


def _feed_rows() -> list[tuple[int, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tid, {connection.ops.quote_name('key')} FROM cachedeps_change ORDER BY tid")
        return [(int(t), k) for t, k in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_prune_command_keeps_the_newest_rows_and_entries_stay_correct():
    cache = caches["default"]
    for i in range(6):
        cache.invalidate(f"book:{i}")
    before = _feed_rows()
    out = io.StringIO()
    call_command("cachedeps_prune", "--keep", "2", stdout=out)
    after = _feed_rows()
    assert "pruned" in out.getvalue()
    kept = [row for row in after if row in before]
    assert kept == before[-2:]  # the newest two, plus the prune marker
    assert len(after) == 3
    cache.set("page", "rendered", depends_on=["book:9"])
    cache.invalidate("book:9")
    assert cache.get("page") is None  # the feed still invalidates after a prune


@pytest.mark.django_db(transaction=True)
def test_prune_command_with_little_to_prune_and_bad_input():
    out = io.StringIO()
    call_command("cachedeps_prune", "--keep", "100000000", stdout=out)  # more rows than the feed holds
    assert "nothing to prune" in out.getvalue()
    with pytest.raises(CommandError, match="--keep"):
        call_command("cachedeps_prune", "--keep", "-1")
    with pytest.raises(CommandError, match="not in DATABASES"):
        call_command("cachedeps_prune", "--database", "nope")


def test_missing_client_library_is_an_error_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pymemcache", None)  # find_spec answers None: not installed
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": "memcache://127.0.0.1:11211"}}):
        found = [m for m in checks.check_cache() if m.id == "cachedeps.E009"]
    assert found and "pymemcache" in found[0].msg and "cachedeps[memcache]" in found[0].hint


_SETTINGS_TEMPLATE = """
from testproject import settings as _s
globals().update({{k: v for k, v in vars(_s).items() if k.isupper()}})
{extra}
"""


def _manage_check(tmp_path, extra):
    """Run ``manage.py check`` on the demo's settings changed by ``extra``, in a fresh process."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[3]
    (tmp_path / "bad_settings.py").write_text(_SETTINGS_TEMPLATE.format(extra=extra))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bad_settings", "DEMO_DB": str(tmp_path / "db.sqlite3"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root / "testproject"), str(root)])}
    return subprocess.run([sys.executable, str(root / "testproject" / "manage.py"), "check"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_reports_a_missing_location_instead_of_a_traceback(tmp_path):
    done = _manage_check(tmp_path, 'CACHES = {"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache"}}')
    assert "Traceback" not in done.stderr, done.stderr
    assert "cachedeps.E010" in done.stderr


def test_check_reports_the_app_missing_from_installed_apps(tmp_path):
    done = _manage_check(tmp_path, 'INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "django_cachedeps"]')
    assert done.returncode != 0
    assert "cachedeps.E008" in done.stderr and "INSTALLED_APPS" in done.stderr
