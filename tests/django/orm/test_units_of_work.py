"""Units of work outside requests (issue 12, deliverable 5): management commands and scripts.

A command doing N cached reads polls the change feed once, not N times, and reads its own
writes; commands that run until stopped get no unit; an inner unit polls afresh. The
cross-process cases (another process writes between two units) are in
``tests/django/test_units_processes.py``.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
from django.core.management import ManagementUtility, call_command
from django.test.utils import override_settings

import cachedeps
import cachedeps.work
import django_cachedeps
from django_cachedeps import runtime
from django_cachedeps.units import UNIT_FREE_COMMANDS, command_runs_in_unit
from tests.django.orm._support import seed
from tests.django.testapp.models import Book

pytestmark = pytest.mark.django_db(transaction=True)

READS = 10


@pytest.fixture
def pks(engine):
    data = seed()
    return [data["b1"].pk, data["b2"].pk]


def _run(name: str, pks: list[int], reads: int = READS) -> dict:
    return json.loads(call_command(name, *map(str, pks), reads=reads))


def test_a_command_doing_ten_cached_reads_polls_the_feed_once(pks):
    _run("read_books", pks)  # fills the cache
    cost = _run("read_books", pks)
    assert cost == {"titles": ["Alpha", "Beta"] * 5, "polls": 1, "feed_queries": 1, "data_queries": 0}


def test_without_a_unit_every_cached_read_polls(pks):
    with override_settings(CACHEDEPS={"CACHE": "default", "VERIFY": True, "UNIT_FREE_COMMANDS": ["*"]}):
        _run("read_books", pks)
        cost = _run("read_books", pks)
    assert cost["polls"] == cost["feed_queries"] == READS  # what every command paid before
    assert cost["data_queries"] == 0


def test_a_command_that_opts_out_runs_without_a_unit(pks):
    _run("read_books", pks)
    assert _run("read_books_loop", pks)["polls"] == READS


def test_commands_named_in_the_setting_run_without_a_unit(pks):
    with override_settings(CACHEDEPS={"CACHE": "default", "UNIT_FREE_COMMANDS": ["read_books"]}):
        _run("read_books", pks)
        assert _run("read_books", pks)["polls"] == READS


def test_manage_py_runs_a_command_in_one_unit(pks):
    _run("read_books", pks)
    out = io.StringIO()
    with redirect_stdout(out):  # BaseCommand writes to sys.stdout when run from argv
        ManagementUtility(["manage.py", "read_books", *map(str, pks), "--reads", str(READS)]).execute()
    cost = json.loads(out.getvalue())
    assert (cost["polls"], cost["data_queries"]) == (1, 0)


def test_long_running_commands_get_no_unit():
    from django.core.management import load_command_class

    for app, name in [("django.core", "runserver"), ("django.core", "shell"), ("django.core", "test"),
                      ("django.contrib.staticfiles", "runserver"), ("django.core", "testserver")]:
        assert not command_runs_in_unit(load_command_class(app, name)), name
    assert command_runs_in_unit(load_command_class("django.core", "migrate"))
    assert {"runserver", "shell", "rqworker", "celery"} <= UNIT_FREE_COMMANDS


def test_a_bad_unit_free_commands_setting_names_itself():
    from django.core.exceptions import ImproperlyConfigured

    from django_cachedeps.conf import parse

    with pytest.raises(ImproperlyConfigured, match=r"UNIT_FREE_COMMANDS.*list of management command names"):
        parse({"UNIT_FREE_COMMANDS": "rqworker"})


def test_a_command_reads_its_own_writes(pks):
    pk = pks[0]
    with django_cachedeps.unit_of_work():
        assert Book.objects.get(pk=pk).title == "Alpha"
        assert Book.objects.get(pk=pk).title == "Alpha"  # a hit
        Book.objects.filter(pk=pk).update(title="Mine")
        assert Book.objects.get(pk=pk).title == "Mine"
        assert Book.objects.filter(pk=pk).values_list("title", flat=True)[0] == "Mine"
        assert runtime.get_engine().polled_in_unit()


def test_an_inner_unit_polls_afresh(pks):
    engine = runtime.get_engine()
    with cachedeps.unit_of_work():
        Book.objects.get(pk=pks[0])
        before = engine.stats()["polls"]
        with cachedeps.unit_of_work():  # a task run eagerly inside a command, say
            Book.objects.get(pk=pks[0])
            Book.objects.get(pk=pks[1])
        Book.objects.get(pk=pks[1])
        assert engine.stats()["polls"] - before == 1


def test_reads_outside_a_unit_still_poll_each_time(pks):
    engine = runtime.get_engine()
    Book.objects.get(pk=pks[0])
    before = engine.stats()["polls"]
    for _ in range(3):
        Book.objects.get(pk=pks[0])
    assert engine.stats()["polls"] - before == 3


# -- Celery's eager mode: a unit per task, no broker ---------------------------------------------


@pytest.fixture
def eager_app():
    pytest.importorskip("celery")
    import cachedeps.celery
    from tests.django.celeryapp import app

    was = cachedeps.celery.installed()
    app.conf.task_always_eager = True
    cachedeps.celery.install()
    try:
        yield app
    finally:
        app.conf.task_always_eager = False
        if not was:
            cachedeps.celery.uninstall()


def test_an_eager_task_polls_the_feed_once(pks, eager_app):
    import cachedeps.celery
    from tests.django.celeryapp import read_books, rename_and_read

    read_books.delay(pks, READS).get()
    assert read_books.delay(pks, READS).get() == {
        "titles": ["Alpha", "Beta"] * 5, "polls": 1, "feed_queries": 1, "data_queries": 0,
    }
    assert rename_and_read.apply(args=[pks[0], "Mine"]).get() == ["Alpha", "Mine", "Mine"]
    assert not cachedeps.work.in_unit_of_work()  # closed after the task
    cachedeps.celery.uninstall()
    assert not cachedeps.celery.installed()
    assert read_books.delay(pks, READS).get()["polls"] == READS  # what a task paid before


def test_a_failing_eager_task_closes_its_unit(pks, eager_app):
    from tests.django.celeryapp import app

    @app.task(name="cachedeps_tests.fails")
    def fails():
        Book.objects.get(pk=pks[0])
        raise RuntimeError("boom")

    result = fails.apply()
    assert isinstance(result.result, RuntimeError)
    assert not cachedeps.work.in_unit_of_work()
