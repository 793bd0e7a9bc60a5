"""Capture triggers with Django (issue 10): writes that bypass the ORM invalidate cached reads.

Each test caches a read, changes its data without the ORM (a plain DB-API connection, a
trigger of the application's schema), and requires the next read to be fresh. A control
shows the same write leaving the read stale without capture, so the tests mean something.
With ``CACHEDEPS["CAPTURE"] = True`` ORM writes leave captured tables' keys to the
triggers: no key is written twice, and the writer still reads its own writes.
"""

from __future__ import annotations

import sqlite3

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import override_settings

from django_cachedeps import capture, runtime
from tests.django.orm._support import served_from_cache
from tests.django.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)

_PG = connection.vendor == "postgresql"
_MY = connection.vendor == "mysql"
CAPTURE = {"CAPTURE": True}


def external():
    """Return a plain DB-API connection to the test database (no Django, no cachedeps)."""
    s = connection.settings_dict
    if _PG:
        import psycopg

        return psycopg.connect(dbname=s["NAME"], user=s["USER"], host=s["HOST"], port=s["PORT"] or 5432)
    if _MY:
        import pymysql  # not Django's mysqlclient connection: another client entirely

        return pymysql.connect(database=s["NAME"], user=s["USER"], password=s["PASSWORD"] or "", host=s["HOST"],
                               port=int(s["PORT"] or 3306), charset="utf8mb4")
    return sqlite3.connect(s["NAME"], uri=True, timeout=30)


def ext_run(sql: str, params=()) -> None:
    conn = external()
    try:
        cur = conn.cursor()
        cur.execute(sql.replace("?", "%s") if _PG or _MY else sql, params)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def captured(engine):
    """Capture installed on every cached table, CACHEDEPS['CAPTURE'] on; removed after."""
    with override_settings(CACHEDEPS=CAPTURE):
        capture.install()
        runtime.reset()
        yield runtime.get_engine()
        capture.remove()


def _feed_keys_after(tid: int) -> list[str]:
    with connection.cursor() as cur:
        k = "`key`" if _MY else "key"
        cur.execute(f"SELECT {k} FROM cachedeps_change WHERE tid > %s ORDER BY tid", [tid])
        return [r[0] for r in cur.fetchall()]


def _head() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(tid), 0) FROM cachedeps_change")
        return cur.fetchone()[0]


def test_without_capture_an_external_write_is_not_seen(engine):
    """The control: this is the stale read capture removes."""
    ann = Author.objects.create(name="Ann")
    served_from_cache(lambda: Author.objects.get(pk=ann.pk).name)
    ext_run("UPDATE author SET name = ? WHERE id = ?", ("Anne", ann.pk))
    from cachedeps.errors import StaleRead

    try:
        name = Author.objects.get(pk=ann.pk).name
    except StaleRead:  # the test settings verify hits against the database
        name = "stale"
    assert name in ("Ann", "stale")


def test_external_update_insert_delete_invalidate(captured):
    ann = Author.objects.create(name="Ann")
    bob = Author.objects.create(name="Bob")
    served_from_cache(lambda: Author.objects.get(pk=ann.pk).name)
    served_from_cache(lambda: Author.objects.filter(name="Ann").count())
    served_from_cache(lambda: sorted(Author.objects.values_list("name", flat=True)))
    ext_run("UPDATE author SET name = ? WHERE id = ?", ("Anne", ann.pk))
    assert Author.objects.get(pk=ann.pk).name == "Anne"
    assert Author.objects.filter(name="Ann").count() == 0
    assert sorted(Author.objects.values_list("name", flat=True)) == ["Anne", "Bob"]
    served_from_cache(lambda: Author.objects.filter(active=True).count())
    ext_run("INSERT INTO author (name, active) VALUES (?, ?)", ("Cy", True))
    assert Author.objects.filter(active=True).count() == 3
    served_from_cache(lambda: list(Author.objects.filter(pk=bob.pk).values_list("name", flat=True)))
    ext_run("DELETE FROM author WHERE id = ?", (bob.pk,))
    assert list(Author.objects.filter(pk=bob.pk).values_list("name", flat=True)) == []


def test_orm_writes_are_written_once_and_read_back_at_once(captured):
    head = _head()
    ann = Author.objects.create(name="Ann Lee")
    keys = _feed_keys_after(head)
    assert keys and len(keys) == len(set(keys)), "each key once: the triggers', not the adapter's too"
    assert f"author:{ann.pk}" in keys and "author/*" in keys
    served_from_cache(lambda: Author.objects.get(pk=ann.pk).name)
    position = captured.current_tid
    ann.name = "Ann Ray"
    ann.save()
    # read-your-writes: the writer's engine knows the change without polling, at a tid no
    # older than the triggers' rows of it
    assert captured.maps.last_change(f"author:{ann.pk}") == _head() > position
    assert Author.objects.get(pk=ann.pk).name == "Ann Ray"
    head = _head()
    Author.objects.filter(pk=ann.pk).update(active=False)
    keys = _feed_keys_after(head)
    assert len(keys) == len(set(keys)) and "author/active" in keys


def test_a_trigger_of_the_schema_invalidates(captured):
    ann = Author.objects.create(name="Ann")
    if _PG:
        ext_run("CREATE FUNCTION bump_author() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "UPDATE author SET name = name || '+' WHERE id = NEW.author_id; RETURN NULL; END $$")
        ext_run("CREATE TRIGGER bump AFTER INSERT ON book FOR EACH ROW EXECUTE FUNCTION bump_author()")
    elif _MY:
        ext_run("CREATE TRIGGER bump AFTER INSERT ON book FOR EACH ROW "
                "UPDATE author SET name = CONCAT(name, '+') WHERE id = NEW.author_id")
    else:
        ext_run("CREATE TRIGGER bump AFTER INSERT ON book FOR EACH ROW BEGIN "
                "UPDATE author SET name = name || '+' WHERE id = NEW.author_id; END")
    try:
        served_from_cache(lambda: Author.objects.get(pk=ann.pk).name)
        Book.objects.create(author=ann, title="T", isbn="1")  # the ORM knows nothing of the author change
        assert Author.objects.get(pk=ann.pk).name == "Ann+"
    finally:
        ext_run("DROP TRIGGER bump ON book" if _PG else "DROP TRIGGER bump")
        if _PG:
            ext_run("DROP FUNCTION bump_author()")


def test_status_command_and_drift(captured, capsys):
    call_command("cachedeps_capture", "status")
    out = capsys.readouterr().out
    assert "author: captured; row keys" in out and "not captured" not in out
    call_command("cachedeps_capture", "remove")
    call_command("cachedeps_capture", "status")
    assert "author: not captured" in capsys.readouterr().out
    from django.core import checks

    warnings = [w for w in checks.run_checks(databases=["default"]) if w.id == "cachedeps.W004"]
    assert any("'author'" in w.msg for w in warnings)
    call_command("cachedeps_capture", "install")
    assert not [w for w in checks.run_checks(databases=["default"]) if w.id == "cachedeps.W004"]


def test_migration_operation_installs_and_reverses(engine):
    from django.apps import apps
    from django.db.migrations.state import ProjectState

    op = capture.InstallCapture()
    assert op.deconstruct() == ("django_cachedeps.capture.InstallCapture", [], {})
    state = ProjectState.from_apps(apps)
    with connection.schema_editor() as editor:
        op.database_forwards("testapp", editor, state, state)
    found = {st.table: st for st in capture.status()}
    assert found["author"].ok and found["book"].ok
    with connection.schema_editor() as editor:
        op.database_backwards("testapp", editor, state, state)
    assert not any(st.installed for st in capture.status())


def test_a_cached_model_without_its_table_yet_is_left_out(engine):
    """``InstallCapture()`` in a migration that runs before the one creating a model's table,
    or a model the database was not migrated for: install covers the tables that exist and
    does not fail; the table is covered by installing again once it exists."""
    from tests.django.testapp.models import Wrapped

    table = Wrapped._meta.db_table
    with connection.schema_editor() as editor:
        editor.alter_db_table(Wrapped, table, table + "_away")
    try:
        installed = {t.name for t in capture.install()}
        assert table not in installed and "author" in installed
        assert table not in {st.table for st in capture.status()}
    finally:
        capture.remove()
        with connection.schema_editor() as editor:
            editor.alter_db_table(Wrapped, table + "_away", table)
    try:
        assert table in {t.name for t in capture.install()}
    finally:
        capture.remove()
