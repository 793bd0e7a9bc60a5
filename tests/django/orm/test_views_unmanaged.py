"""Unmanaged models over database views (issue 9, break 18; deliverable 8).

Writes to a view's base tables never emit the view's keys, so an unmanaged model is cached
only when ``CACHEDEPS["VIEWS"]`` declares its base tables (the test settings declare
``testapp.BookCard`` over ``book`` and ``author``); its reads then depend on their table keys.
Undeclared, it is not cached and ``manage.py check`` warns (``cachedeps.W002``).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import override_settings

from django_cachedeps import checks, runtime
from tests.django.orm._support import seed
from tests.django.testapp.models import Author, Book, BookCard

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def view(engine):
    data = seed()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE VIEW book_card AS SELECT book.id AS id, book.title AS title, author.name AS author_name "
            "FROM book JOIN author ON author.id = book.author_id"
        )
    yield data
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW book_card")


def _events(engine):
    events = []
    engine.add_listener(lambda event, key, **detail: events.append((event, key)))
    return events


def test_a_declared_view_follows_writes_to_its_base_tables(view, engine):
    events = _events(engine)
    by_author = lambda: sorted(BookCard.objects.filter(author_name="Ann").values_list("title", flat=True))  # noqa: E731
    one = lambda: BookCard.objects.get(pk=view["b1"].pk).title  # noqa: E731
    assert by_author() == ["Alpha", "Beta"] and one() == "Alpha"
    assert by_author() == ["Alpha", "Beta"] and one() == "Alpha"
    assert sum(1 for e, _ in events if e == "hit") >= 2  # cached
    Book.objects.filter(pk=view["b1"].pk).update(title="Omega")  # a base table, not the view
    assert by_author() == ["Beta", "Omega"] and one() == "Omega"
    ann = Author.objects.get(pk=view["ann"].pk)
    ann.name = "Anne"
    ann.save()
    assert by_author() == []
    assert sorted(BookCard.objects.filter(author_name="Anne").values_list("title", flat=True)) == ["Beta", "Omega"]


def test_an_undeclared_unmanaged_model_is_not_cached(view, engine):
    with override_settings(CACHEDEPS={"CACHE": "default"}):
        events = _events(runtime.get_engine())  # the setting change built a new engine
        assert list(Book.objects.filter(pk=view["b1"].pk)) and list(Book.objects.filter(pk=view["b1"].pk))
        assert ("hit", f"book:{view['b1'].pk}") in events  # the listener sees this engine's hits
        for _ in range(2):
            assert BookCard.objects.get(pk=view["b2"].pk).title == "Beta"
            assert BookCard.objects.filter(author_name="Ann").count() == 2
        assert not [k for e, k in events if e in ("set", "hit") and k != f"book:{view['b1'].pk}"]
        warnings = checks.check_views()
        assert [w.id for w in warnings] == ["cachedeps.W002"]
        assert "testapp.BookCard" in warnings[0].msg and "VIEWS" in warnings[0].hint
        Book.objects.filter(pk=view["b2"].pk).update(title="Zeta")
        assert BookCard.objects.get(pk=view["b2"].pk).title == "Zeta"


def test_declared_or_excluded_models_raise_no_warning():
    assert checks.check_views() == []
    with override_settings(CACHEDEPS={"CACHE": "default", "EXCLUDE": ["testapp.BookCard"]}):
        assert checks.check_views() == []


def test_views_setting_is_checked():
    with override_settings(CACHEDEPS={"CACHE": "default", "VIEWS": {"testapp.Book": ["book"]}}):
        assert [e.id for e in checks.check_views()] == ["cachedeps.E007", "cachedeps.W002"]
    from django.core.exceptions import ImproperlyConfigured

    from django_cachedeps.conf import parse

    for bad in ({"testapp.BookCard": "book"}, {"BookCard": ["book"]}, ["book"], {"testapp.BookCard": []}):
        with pytest.raises(ImproperlyConfigured, match="VIEWS"):
            parse({"VIEWS": bad})


def test_a_write_through_an_undeclared_unmanaged_model_drops_every_cached_table(engine):
    """It may be an updatable view over any table: what it changes is unknown."""
    data = seed()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE book_card (id integer PRIMARY KEY, title varchar(200), author_name varchar(100))")
        cursor.execute("INSERT INTO book_card VALUES (1, 'Alpha', 'Ann')")
    try:
        with override_settings(CACHEDEPS={"CACHE": "default"}):
            read = lambda: list(Book.objects.filter(author=data["ann"]).values_list("title", flat=True))  # noqa: E731
            read()
            events = _events(runtime.get_engine())
            read()
            assert ("hit" in [e for e, _ in events])
            BookCard.objects.filter(pk=1).update(title="Changed")
            del events[:]
            read()
            assert "hit" not in [e for e, _ in events]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE book_card")


def _updatable(cursor, view):
    """Make ``view`` (over book) updatable on a title change, as a user's view would be."""
    if connection.vendor == "sqlite":
        cursor.execute(
            f"CREATE TRIGGER {view}_upd INSTEAD OF UPDATE ON {view} "
            "BEGIN UPDATE book SET title = NEW.title WHERE id = OLD.id; END"
        )
    elif connection.vendor == "mysql":
        pass  # a view whose UPDATE changes one base table is updatable on MySQL/MariaDB
    else:
        cursor.execute(
            f"CREATE RULE {view}_upd AS ON UPDATE TO {view} "
            "DO INSTEAD UPDATE book SET title = NEW.title WHERE id = OLD.id"
        )


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("atomic", [False, True])
def test_a_raw_write_naming_a_view_drops_its_base_tables_reads(view, engine, declared, atomic):
    """``UPDATE <view>`` changes the base tables: a declared view emits their keys, an
    undeclared one (it may be a view over any table) every cached table's keys."""
    from django.db import transaction

    with connection.cursor() as cursor:
        _updatable(cursor, "book_card")
    conf = {"CACHE": "default"} if not declared else None
    with override_settings(**({"CACHEDEPS": conf} if conf else {})):
        pk = view["b1"].pk
        read = lambda: Book.objects.get(pk=pk).title  # noqa: E731
        titles = lambda: sorted(Book.objects.filter(author=view["ann"]).values_list("title", flat=True))  # noqa: E731
        assert read() == "Alpha" and titles() == ["Alpha", "Beta"]
        assert read() == "Alpha" and titles() == ["Alpha", "Beta"]
        with transaction.atomic() if atomic else _nothing():
            with connection.cursor() as cursor:
                cursor.execute("UPDATE book_card SET title = 'Omega' WHERE id = %s", [pk])
        assert read() == "Omega"
        assert titles() == ["Beta", "Omega"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
