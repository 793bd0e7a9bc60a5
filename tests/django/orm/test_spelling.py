"""Readers and writers spell the same data the same way (issue 9, breaks 1 to 4).

Each test caches a read, runs a write that changes its result, and requires the new
result: it fails when the write emits no key the read depends on.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.django.orm._support import check, fresh, seed, served_from_cache
from tests.django.testapp.models import Author, Book, Spelled, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


# -- 1. outer joins: a condition on the nullable side depends on that table's table keys ----

def test_anti_join_sees_a_new_related_row(data):
    carl = Author.objects.create(name="Carl")
    check(lambda: list(Author.objects.filter(books__isnull=True).values_list("name", flat=True)),
          lambda: Book.objects.create(author=carl, title="Delta", isbn="444"), [])


def test_anti_join_listing_objects_sees_a_new_related_row(data):
    carl = Author.objects.create(name="Carl")
    check(lambda: [a.name for a in Author.objects.filter(books__isnull=True)],
          lambda: Book.objects.create(author=carl, title="Delta", isbn="444"), [])


def test_exclude_m2m_none_sees_a_new_link(data):
    b4 = Book.objects.create(author=data["bob"], title="Delta", isbn="444")
    check(lambda: sorted(Book.objects.exclude(tags=None).values_list("title", flat=True)),
          lambda: data["red"].books.add(b4), ["Alpha", "Beta", "Delta", "Gamma"])


def test_m2m_isnull_sees_a_new_link(data):
    b4 = Book.objects.create(author=data["bob"], title="Delta", isbn="444")
    check(lambda: list(Book.objects.filter(tags__isnull=True).values_list("title", flat=True)),
          lambda: Tag.objects.get(name="blue").books.add(b4), [])


def test_outer_joined_table_depends_on_its_table_key(data):
    from django_cachedeps.db.deps import analyze
    from django_cachedeps.conf import cached_tables

    qs = Author.objects.filter(books__isnull=True)
    compiler = qs.query.get_compiler(using="default")
    compiler.as_sql()
    plan = analyze(qs.query, cached_tables(), connection)
    assert "book" in plan.deps
    assert not any(k.startswith("book.id=") for k in plan.deps)


# -- 2. collations that are not binary: no equality anchor on the constant ------------------

def test_case_insensitive_collation_sees_another_spelling(engine):
    first = Spelled.objects.create(name="python")
    read = lambda: sorted(Spelled.objects.filter(name="python").values_list("pk", flat=True))  # noqa: E731
    before = served_from_cache(read)
    assert before == [first.pk]
    second = Spelled.objects.create(name="PYTHON")
    assert fresh(read) == sorted([first.pk, second.pk])
    assert read() == sorted([first.pk, second.pk])


def test_case_insensitive_collation_count_sees_an_update(engine):
    Spelled.objects.create(name="python")
    other = Spelled.objects.create(name="ruby")
    read = lambda: Spelled.objects.filter(name="python").count()  # noqa: E731

    def write() -> None:
        other.name = "PyThOn"
        other.save()

    check(read, write, 2)


# -- 3. JSON: changes are found on stored values, not by Python equality ----------------------

def test_json_one_to_true_is_a_change_on_save(engine):
    row = Spelled.objects.create(data={"a": 1})

    def write() -> None:
        row.data = {"a": True}
        row.save()

    check(lambda: Spelled.objects.filter(data={"a": True}).count(), write, 1)


def test_json_one_to_true_is_a_change_on_queryset_update(engine):
    row = Spelled.objects.create(data={"a": 1})
    check(lambda: list(Spelled.objects.filter(data={"a": True}).values_list("pk", flat=True)),
          lambda: Spelled.objects.filter(pk=row.pk).update(data={"a": True}), [row.pk])


def test_json_key_lookup_sees_one_to_true(engine):
    row = Spelled.objects.create(data={"a": 1})
    Spelled.objects.create(data={"a": False})
    expected = fresh(lambda: list(Spelled.objects.filter(data__a=True).values_list("pk", flat=True)))
    read = lambda: list(Spelled.objects.filter(data__a=True).values_list("pk", flat=True))  # noqa: E731
    served_from_cache(read)
    Spelled.objects.filter(pk=row.pk).update(data={"a": True})
    assert read() == fresh(read) == [row.pk]
    assert expected in ([], [row.pk])  # SQLite's JSON_EXTRACT calls 1 and true equal; PostgreSQL does not


def test_json_column_is_never_an_equality_anchor(engine):
    from django_cachedeps.conf import cached_tables
    from django_cachedeps.db.deps import analyze

    qs = Spelled.objects.filter(data={"a": 1})
    qs.query.get_compiler(using="default").as_sql()
    plan = analyze(qs.query, cached_tables(), connection)
    assert not any(k.startswith("spelled.data=") for k in plan.deps)


# -- 4. a custom field whose database value differs from its Python value --------------------

def test_custom_field_read_and_write_spell_the_stored_value(engine):
    read = lambda: list(Spelled.objects.filter(numbers=[1, 2]).values_list("pk", flat=True))  # noqa: E731
    assert served_from_cache(read) == []
    row = Spelled.objects.create(numbers=[1, 2])
    assert fresh(read) == [row.pk]
    assert read() == [row.pk]


def test_custom_field_update_moves_the_row_between_readers(engine):
    row = Spelled.objects.create(numbers=[1, 2])
    ones = lambda: list(Spelled.objects.filter(numbers=[1, 2]).values_list("pk", flat=True))  # noqa: E731
    threes = lambda: list(Spelled.objects.filter(numbers=[3]).values_list("pk", flat=True))  # noqa: E731
    assert served_from_cache(ones) == [row.pk]
    assert served_from_cache(threes) == []
    row.numbers = [3]
    row.save()
    assert ones() == []
    assert threes() == [row.pk]


def test_uuid_filter_is_spelled_as_bound(engine):
    import uuid

    from django_cachedeps.conf import cached_tables
    from django_cachedeps.db.deps import analyze

    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    qs = Spelled.objects.filter(uid=value)
    qs.query.get_compiler(using="default").as_sql()
    plan = analyze(qs.query, cached_tables(), connection)
    spelled = value.hex if connection.vendor == "sqlite" else str(value)
    assert any(k.startswith(f"spelled.uid={spelled}") for k in plan.deps + (plan.finer.deps if plan.finer else ())), plan
    row = Spelled.objects.create(uid=value)
    read = lambda: list(Spelled.objects.filter(uid=value).values_list("pk", flat=True))  # noqa: E731
    assert served_from_cache(read) == [row.pk]
    Spelled.objects.create(uid=value)
    assert len(read()) == 2
