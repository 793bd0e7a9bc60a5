"""Every write path invalidates what it changed: read (cached), write through the path, read
again (the new data). Each test fails if that path's invalidation is missing."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.django.orm._support import check, fresh, seed, served_from_cache
from tests.django.testapp.models import Author, Book, Novel, Profile, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


def test_save_insert(data):
    check(lambda: Book.objects.filter(author=data["ann"]).count(),
          lambda: Book.objects.create(author=data["ann"], title="New", isbn="444"), 3)


def test_save_update_by_pk_state(data):
    pk = data["b1"].pk

    def write():
        b = Book.objects.get(pk=pk)
        b.title = "Alpha 2"
        b.save()

    check(lambda: Book.objects.get(pk=pk).title, write, "Alpha 2")


def test_save_update_changes_filtered_field_old_and_new(data):
    ann, bob = data["ann"], data["bob"]
    ann_titles = lambda: sorted(Book.objects.filter(author=ann).values_list("title", flat=True))  # noqa: E731
    bob_titles = lambda: sorted(Book.objects.filter(author=bob).values_list("title", flat=True))  # noqa: E731
    served_from_cache(ann_titles)
    served_from_cache(bob_titles)
    b = data["b1"]
    b.author = bob
    b.save()
    assert ann_titles() == ["Beta"]
    assert bob_titles() == ["Alpha", "Gamma"]


def test_filter_on_unique_field_value_change(data):
    check(lambda: list(Book.objects.filter(isbn="999").values_list("title", flat=True)),
          lambda: Book.objects.filter(pk=data["b2"].pk).update(isbn="999"), ["Beta"])


def test_delete_instance_with_cascade(data):
    ann_pk = data["ann"].pk
    served_from_cache(lambda: Profile.objects.filter(author_id=ann_pk).count())
    served_from_cache(lambda: sorted(t.name for t in Tag.objects.filter(books__title="Alpha")))
    check(lambda: Book.objects.filter(title__startswith="A").count(), lambda: data["ann"].delete(), 0)
    assert Profile.objects.filter(author_id=ann_pk).count() == 0
    assert list(Tag.objects.filter(books__title="Alpha")) == []


def test_queryset_update(data):
    check(lambda: Book.objects.filter(pages__gte=200).count(), lambda: Book.objects.update(pages=1), 0)


def test_queryset_update_with_expression(data):
    from django.db.models import F

    pk = data["b3"].pk
    check(lambda: Book.objects.get(pk=pk).pages, lambda: Book.objects.filter(pk=pk).update(pages=F("pages") + 1), 301)


def test_queryset_delete(data):
    check(lambda: [b.title for b in Book.objects.order_by("pk")],
          lambda: Book.objects.filter(pages__lt=250).delete(), ["Gamma"])


def test_bulk_create(data):
    def write():
        Book.objects.bulk_create([Book(author=data["bob"], title=f"B{i}", isbn=f"b{i}") for i in range(3)])

    check(lambda: Book.objects.filter(author=data["bob"]).count(), write, 4)


def test_bulk_create_fills_a_cached_missing_pk(data):
    check(lambda: list(Book.objects.filter(pk=5000).values_list("title", flat=True)),
          lambda: Book.objects.bulk_create([Book(pk=5000, author=data["bob"], title="X", isbn="x")]), ["X"])


def test_bulk_update(data):
    def write():
        books = list(Book.objects.filter(author=data["ann"]))
        for b in books:
            b.pages = 7
        Book.objects.bulk_update(books, ["pages"])

    check(lambda: Book.objects.filter(pages=7).count(), write, 2)


def test_m2m_add(data):
    check(lambda: sorted(t.name for t in data["b3"].tags.all()), lambda: data["red"].books.add(data["b3"]),
          ["blue", "red"])


def test_m2m_remove(data):
    check(lambda: [b.title for b in data["red"].books.order_by("title")], lambda: data["red"].books.remove(data["b1"]),
          ["Beta"])


def test_m2m_clear(data):
    check(lambda: data["red"].books.count(), lambda: data["red"].books.clear(), 0)


def test_m2m_set_from_the_other_side(data):
    check(lambda: sorted(t.name for t in Book.objects.get(pk=data["b1"].pk).tags.all()),
          lambda: data["b1"].tags.set([data["blue"]]), ["blue"])


def test_prefetch_sees_m2m_change(data):
    def read():
        return {b.title: sorted(t.name for t in b.tags.all()) for b in Book.objects.prefetch_related("tags")}

    check(read, lambda: data["blue"].books.add(data["b1"]),
          {"Alpha": ["blue", "red"], "Beta": ["red"], "Gamma": ["blue"]})


def test_raw_sql_update_through_cursor(data):
    def write():
        with connection.cursor() as cursor:
            q = connection.ops.quote_name  # "book" (`book` on MySQL)
            cursor.execute(f"UPDATE {q('book')} SET {q('title')} = %s WHERE {q('isbn')} = %s", ["Raw", "111"])

    pk = data["b1"].pk
    served_from_cache(lambda: Book.objects.get(pk=pk).title)
    check(lambda: list(Book.objects.filter(isbn="111").values_list("title", flat=True)), write, ["Raw"])
    assert Book.objects.get(pk=pk).title == "Raw"


def test_raw_sql_insert_and_delete(data):
    ann_pk = data["ann"].pk

    def insert():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO book (author_id, title, isbn, pages) VALUES (%s, 'R', 'r', 1)", [ann_pk])

    def delete():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM book WHERE isbn = 'r'")

    check(lambda: Book.objects.filter(author_id=ann_pk).count(), insert, 3)
    check(lambda: Book.objects.filter(author_id=ann_pk).count(), delete, 2)


def test_multi_table_inheritance_save_and_update(data):
    novel = Novel.objects.create(author=data["bob"], title="Saga", isbn="n1", genre="epic")
    check(lambda: Novel.objects.get(pk=novel.pk).title,
          lambda: Novel.objects.filter(pk=novel.pk).update(title="Saga II", genre="myth"), "Saga II")
    check(lambda: Book.objects.filter(author=data["bob"]).count(), lambda: novel.delete(), 1)


def test_update_of_one_author_keeps_other_filtered_reads_cached(data):
    bob_count = lambda: Book.objects.filter(author=data["bob"]).count()  # noqa: E731
    served_from_cache(bob_count)
    Book.objects.filter(pk=data["b1"].pk).update(title="Other")
    served_from_cache(bob_count)  # a change to Ann's book leaves book.author_id=Bob untouched


def test_get_or_create_and_update_or_create(data):
    check(lambda: Author.objects.filter(name="Cy").count(), lambda: Author.objects.get_or_create(name="Cy"), 1)
    check(lambda: Author.objects.get(name="Cy").active,
          lambda: Author.objects.update_or_create(name="Cy", defaults={"active": False}), False)


def test_select_related_sees_a_change_of_the_joined_row(data):
    ann_pk = data["ann"].pk

    def read():
        return [(b.title, b.author.name) for b in Book.objects.select_related("author").filter(author_id=ann_pk)]

    check(read, lambda: Author.objects.filter(pk=ann_pk).update(name="Anne"), [("Alpha", "Anne"), ("Beta", "Anne")])
