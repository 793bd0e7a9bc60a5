"""Reads anchored on an equality of their model's table depend on field-change keys and their
rows' oids: an edit of a column such a read neither filters nor orders on keeps it cached
unless the edited row is in it, and every change that can alter it still drops it. Reads
without such an equality do the same on table change keys (``book/published``, ``book/*``)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db.models import Count, F, Q

from django_cachedeps.conf import cached_tables
from django_cachedeps.db.deps import analyze
from django_cachedeps.db.finer import MAX_ROW_OIDS
from tests.django.orm._support import EXACT_TEXT, fresh, served_from_cache
from tests.django.testapp.models import Author, Book, Novel, Tag

pytestmark = pytest.mark.django_db(transaction=True)

DAY = datetime.date(2021, 1, 1)


@pytest.fixture
def shelf(engine: Any) -> dict[str, Any]:
    """Two authors: Ann with 50 books published a day apart (newest last), Bob with two."""
    ann = Author.objects.create(name="Ann")
    bob = Author.objects.create(name="Bob")
    books = Book.objects.bulk_create(
        Book(author=ann, title=f"A{i}", isbn=f"a{i}", pages=i, published=DAY + datetime.timedelta(days=i))
        for i in range(50)
    )
    Book.objects.create(author=bob, title="B0", isbn="b0", published=DAY)
    Book.objects.create(author=bob, title="B1", isbn="b1", published=DAY + datetime.timedelta(days=1))
    by_rank = sorted(books, key=lambda b: b.published, reverse=True)  # the page order
    return {"ann": ann, "bob": bob, "by_rank": [Book.objects.get(isbn=b.isbn) for b in by_rank]}


def _page(author: Author) -> Any:
    return lambda: [(b.pk, b.title, b.published) for b in
                    Book.objects.filter(author_id=author.pk).order_by("-published", "id")[20:40]]


def _all(author: Author) -> Any:
    return lambda: [(b.pk, b.title) for b in Book.objects.filter(author_id=author.pk).order_by("-published", "id")]


def _changed(read: Any, before: Any) -> Any:
    """Read again through the cache; assert the result is the database's and differs from ``before``."""
    after = read()
    assert after == fresh(read), "a stale read"
    assert after != before, "the write was expected to change this result"
    return after


def test_editing_a_column_out_of_the_query_keeps_the_page_cached_if_the_row_is_not_in_it(shelf):
    page = _page(shelf["ann"])
    before = served_from_cache(page)
    outside = shelf["by_rank"][3]
    Book.objects.filter(pk=outside.pk).update(title="Renamed", pages=999)
    outside.refresh_from_db()
    outside.isbn = "new-isbn"
    outside.save()
    assert _still_cached(page) == before


def test_editing_a_row_in_the_page_drops_it(shelf):
    page = _page(shelf["ann"])
    before = served_from_cache(page)
    inside = shelf["by_rank"][25]
    inside.title = "Renamed"
    inside.save()
    after = _changed(page, before)
    assert (inside.pk, "Renamed", inside.published) in after
    Book.objects.filter(pk=shelf["by_rank"][30].pk).update(title="Bulk")
    assert "Bulk" in [t for _, t, _ in _changed(page, after)]


def test_changing_the_order_column_of_a_row_outside_the_page_drops_it(shelf):
    page = _page(shelf["ann"])
    before = served_from_cache(page)
    first = shelf["by_rank"][0]
    Book.objects.filter(pk=first.pk).update(published=DAY - datetime.timedelta(days=1))
    after = _changed(page, before)
    assert after[0] == before[1]  # the page moved up by one


def test_inserting_and_deleting_a_row_of_the_anchor_value_drops_the_page(shelf):
    page = _page(shelf["ann"])
    before = served_from_cache(page)
    Book.objects.create(author=shelf["ann"], title="New", isbn="new", published=DAY + datetime.timedelta(days=99))
    after = _changed(page, before)
    assert after[1:] == before[:-1]
    Book.objects.filter(isbn="new").delete()
    assert _changed(page, after) == before
    shelf["by_rank"][2].delete()
    assert _changed(page, before)[:-1] == before[1:]


def test_a_raw_sql_write_drops_the_page(shelf):
    from django.db import connection

    page = _page(shelf["ann"])
    before = served_from_cache(page)
    with connection.cursor() as cursor:  # rows unknown to the writer: the all-rows key
        cursor.execute("UPDATE book SET published = %s WHERE id = %s", [DAY, shelf["by_rank"][0].pk])
    assert _changed(page, before)[0] == before[1]


def test_moving_a_row_to_another_author_drops_both_authors_reads(shelf):
    ann_page, bob_all = _page(shelf["ann"]), _all(shelf["bob"])
    ann_before, bob_before = served_from_cache(ann_page), served_from_cache(bob_all)
    moved = shelf["by_rank"][5]  # outside Ann's page, before it
    moved.author = shelf["bob"]
    moved.save()
    assert _changed(ann_page, ann_before)[:-1] == ann_before[1:]
    assert (moved.pk, moved.title) in _changed(bob_all, bob_before)
    ann_before, bob_before = served_from_cache(ann_page), served_from_cache(bob_all)
    Book.objects.filter(pk=moved.pk).update(author=shelf["ann"])  # and back, as a statement
    assert _changed(ann_page, ann_before) == [(b.pk, b.title, b.published) for b in shelf["by_rank"][20:40]]
    assert (moved.pk, moved.title) not in _changed(bob_all, bob_before)


def test_count_survives_an_edit_out_of_its_filter_but_not_an_insert_or_a_move(shelf):
    ann, bob = shelf["ann"], shelf["bob"]

    def count() -> int:
        return Book.objects.filter(author_id=ann.pk, pages__lt=40).count()

    assert served_from_cache(count) == 40
    Book.objects.filter(pk=shelf["by_rank"][0].pk).update(title="Renamed")
    assert _still_cached(count) == 40
    Book.objects.create(author=ann, title="New", isbn="new", pages=1)
    assert _changed(count, 40) == 41
    Book.objects.filter(isbn="new").update(pages=50)  # a column of the filter
    assert _changed(count, 41) == 40
    Book.objects.filter(isbn="a0").update(author=bob)
    assert _changed(count, 40) == 39


def test_exists_follows_membership(shelf):
    bob = shelf["bob"]

    def exists() -> bool:
        return Book.objects.filter(author_id=bob.pk, title="Late").exists()

    assert served_from_cache(exists) is False
    Book.objects.filter(isbn="b0").update(pages=5)
    assert _still_cached(exists) is False
    Book.objects.filter(isbn="b1").update(title="Late")
    assert _changed(exists, False) is True


def test_values_list_without_the_pk_keeps_the_coarse_key(shelf):
    ann = shelf["ann"]

    def titles() -> list[str]:
        return list(Book.objects.filter(author_id=ann.pk).order_by("-published", "id").values_list("title", flat=True)[:5])

    before = served_from_cache(titles)
    Book.objects.filter(pk=shelf["by_rank"][1].pk).update(title="Renamed")
    assert _changed(titles, before)[1] == "Renamed"


def test_values_with_the_pk_depend_on_their_rows(shelf):
    ann = shelf["ann"]

    def rows() -> list[dict[str, Any]]:
        return list(Book.objects.filter(author_id=ann.pk).order_by("-published", "id").values("id", "title")[:5])

    before = served_from_cache(rows)
    Book.objects.filter(pk=shelf["by_rank"][9].pk).update(title="Elsewhere")
    assert _still_cached(rows) == before
    Book.objects.filter(pk=shelf["by_rank"][4].pk).update(title="Renamed")
    assert _changed(rows, before)[4]["title"] == "Renamed"


def test_a_page_without_the_pk_in_its_order_keeps_the_coarse_key(shelf):
    ann = shelf["ann"]

    def page() -> list[str]:
        return [b.title for b in Book.objects.filter(author_id=ann.pk).order_by("-published")[:5]]

    before = served_from_cache(page)
    Book.objects.filter(pk=shelf["by_rank"][30].pk).update(title="Elsewhere")
    assert _changed_or_refetched(page, before)


def test_rows_in_an_order_the_database_may_break_ties_in_keep_the_coarse_key(shelf, engine):
    bob = shelf["bob"].pk
    with engine.recording() as rec:
        assert len(Book.objects.filter(author_id=bob).order_by("published")) == 2
    assert f"book.author_id={bob}" in rec.keys
    with engine.recording() as rec:
        assert Book.objects.filter(author_id=bob, title="B1").order_by("published").get().isbn == "b1"
    assert f"book.author_id={bob}" not in rec.keys and f"book.author_id={bob}/title" in rec.keys


def _changed_or_refetched(read: Any, before: Any) -> bool:
    """Return whether ``read`` ran a query again (the coarse key was dropped), with the right answer."""
    from django.db import connection

    from tests.django.conftest import DbQueries

    with DbQueries(connection) as q:
        after = read()
    assert after == fresh(read) == before
    return bool(q.data)


def test_a_hit_records_the_keys_the_result_was_filled_with(shelf, engine):
    page = _page(shelf["ann"])
    with engine.recording() as miss:
        page()
    with engine.recording() as hit:
        page()
    pks = [pk for pk, _, _ in page()]
    ann = shelf["ann"].pk
    assert miss.keys <= hit.keys  # the entry's own keys (expanded), and a reference to it
    assert {f"book:{pk}" for pk in pks} | {f"book.author_id={ann}/published", f"book.author_id={ann}/*"} <= hit.keys
    assert f"book.author_id={ann}" not in hit.keys


def test_a_large_result_falls_back_to_the_field_value_key(shelf, engine):
    ann = shelf["ann"]
    Book.objects.bulk_create(Book(author=ann, title=f"X{i}", isbn=f"x{i}") for i in range(MAX_ROW_OIDS))
    with engine.recording() as rec:
        rows = _all(ann)()
    assert len(rows) > MAX_ROW_OIDS
    assert rec.keys == {f"book.author_id={ann.pk}"}


# -- without an equality anchor: table change keys ------------------------------------------


def _newest() -> list[tuple[int, str, Any]]:
    return [(b.pk, b.title, b.published) for b in Book.objects.order_by("-published", "-id")[:15]]


def _still_cached(read: Any) -> Any:
    """Read once; assert it ran no query but the feed's and agrees with the database."""
    from django.db import connection

    from tests.django.conftest import DbQueries

    with DbQueries(connection) as q:
        result = read()
    assert q.data == [], f"expected the read to be served from the cache, ran {q.data}"
    assert result == fresh(read)
    return result


def test_the_newest_page_survives_an_edit_out_of_the_query_of_a_row_not_in_it(shelf):
    before = served_from_cache(_newest)
    outside = shelf["by_rank"][30]
    Book.objects.filter(pk=outside.pk).update(title="Renamed", pages=999)
    outside.refresh_from_db()
    outside.isbn = "new-isbn"
    outside.save()
    Author.objects.filter(pk=shelf["bob"].pk).update(name="Robert")  # a table it does not read
    assert _still_cached(_newest) == before


def test_an_edit_of_a_row_in_the_newest_page_drops_it(shelf):
    before = served_from_cache(_newest)
    inside = shelf["by_rank"][7]
    inside.title = "Renamed"
    inside.save()
    assert (inside.pk, "Renamed", inside.published) in _changed(_newest, before)


def test_a_change_of_the_order_column_of_any_row_drops_the_newest_page(shelf):
    before = served_from_cache(_newest)
    outside = shelf["by_rank"][30]
    Book.objects.filter(pk=outside.pk).update(published=DAY + datetime.timedelta(days=100))
    assert _changed(_newest, before)[0][0] == outside.pk


def test_an_insert_and_a_delete_drop_the_newest_page(shelf):
    before = served_from_cache(_newest)
    new = Book.objects.create(author=shelf["bob"], title="New", isbn="new", published=DAY + datetime.timedelta(days=99))
    after = _changed(_newest, before)
    assert after[0][0] == new.pk and after[1:] == before[:-1]
    served_from_cache(_newest)
    Book.objects.filter(isbn="new").delete()
    assert _changed(_newest, after) == before
    served_from_cache(_newest)
    shelf["by_rank"][0].delete()
    assert _changed(_newest, before)[:-1] == before[1:]


def test_a_raw_sql_update_drops_the_newest_page(shelf):
    from django.db import connection

    before = served_from_cache(_newest)
    outside = shelf["by_rank"][30]
    with connection.cursor() as cursor:  # rows unknown to the writer: the all-rows key
        cursor.execute("UPDATE book SET published = %s WHERE id = %s", [DAY + datetime.timedelta(days=100), outside.pk])
    assert _changed(_newest, before)[0][0] == outside.pk


def test_an_unanchored_count_follows_its_filter_columns_and_membership(shelf):
    from django.db import connection

    def count() -> int:
        return Book.objects.filter(pages__lt=10).count()

    assert served_from_cache(count) == 10
    Book.objects.filter(isbn="a3").update(title="Renamed")
    assert _still_cached(count) == 10
    Book.objects.filter(isbn="a30").update(pages=1)
    assert _changed(count, 10) == 11
    served_from_cache(count)
    Book.objects.filter(isbn="a30").delete()
    assert _changed(count, 11) == 10
    served_from_cache(count)
    with connection.cursor() as cursor:  # rows unknown to the writer: the all-rows key
        cursor.execute("UPDATE book SET pages = 1 WHERE isbn = %s", ["a40"])
    assert _changed(count, 10) == 11


def test_unanchored_reads_record_table_change_keys(shelf, engine):
    with engine.recording() as miss:
        pks = [pk for pk, _, _ in _newest()]
    with engine.recording() as hit:
        _newest()
    assert "book" not in miss.keys | hit.keys
    assert {f"book:{pk}" for pk in pks} | {"book/published", "book/id", "book/*"} <= hit.keys
    with engine.recording() as rec:  # ties in "-published" are broken by storage order
        list(Book.objects.order_by("-published")[:15])
    assert rec.keys == {"book"}
    with engine.recording() as rec:
        assert Book.objects.count() == 52
    assert rec.keys == {"book/*"}


# -- the analysis -----------------------------------------------------------------------------


def _plan(qs: Any) -> Any:
    query = qs.query
    query.get_compiler("default").as_sql()
    return analyze(query, cached_tables())


def test_finer_keys_name_the_where_join_and_order_columns():
    finer = _plan(Book.objects.filter(author_id=7, pages__gt=3).order_by("-published", "pk")).finer
    assert set(finer.deps) == {"book.author_id=7/author_id", "book.author_id=7/pages",
                               "book.author_id=7/published", "book.author_id=7/id", "book.author_id=7/*"}
    assert finer.ordered_by_pk
    plan = _plan(Book.objects.select_related("author").filter(author_id__in=[1, 2]).order_by("title"))
    assert plan.deps == ("book.author_id=1", "book.author_id=2", "author")
    assert set(plan.finer.deps) == {"author"} | {f"book.author_id={v}/{c}" for v in (1, 2)
                                                 for c in ("author_id", "title", "*")}
    finer = _plan(Book.objects.filter(author_id=7, tags__name="red")).finer
    assert "book.author_id=7/id" in finer.deps and "book_tags" in finer.deps  # the join's column
    finer = _plan(Novel.objects.filter(genre="x")).finer
    anchor = "novel.genre=x" if EXACT_TEXT else "novel"  # MySQL's _ci text: table change keys
    assert set(finer.deps) == {"book", f"{anchor}/genre", f"{anchor}/book_ptr_id", f"{anchor}/*"}


def test_unanchored_finer_keys_name_the_where_join_and_order_columns():
    plan = _plan(Book.objects.order_by("-published", "-id")[:15])
    assert plan.deps == ("book",) and set(plan.finer.deps) == {"book/published", "book/id", "book/*"}
    plan = _plan(Book.objects.select_related("author").filter(Q(author_id=7) | Q(pages__gte=3)).order_by("pk"))
    assert set(plan.deps) == {"book", "author"}
    assert set(plan.finer.deps) == {"author", "book/author_id", "book/pages", "book/id", "book/*"}
    plan = _plan(Book.objects.filter(published__gte=DAY).order_by("pk"))  # a value no key spells
    assert set(plan.finer.deps) == {"book/published", "book/id", "book/*"}
    finer = _plan(Novel.objects.all()).finer
    assert set(finer.deps) == {"book", "novel/book_ptr_id", "novel/*"}


def test_what_cannot_be_seen_through_keeps_the_coarse_keys():
    from django.db.models import Exists, OuterRef

    coarse = [
        Book.objects.order_by("author__name"),
        Book.objects.annotate(n=Count("tags")),
        Book.objects.distinct(),
        Book.objects.filter(pk__in=Book.objects.filter(pages=1).values("pk")),
        Book.objects.filter(Exists(Tag.objects.filter(books=OuterRef("pk")))),
        Book.objects.extra(select={"x": "1"}),
        Book.objects.filter(author_id=7).order_by("author__name"),
        Book.objects.filter(author_id=7).order_by("author"),
        Book.objects.filter(author_id=7).order_by(F("pages") + 1),
        Book.objects.filter(author_id=7).annotate(n=Count("tags")),
        Book.objects.filter(author_id=7).distinct(),
        Book.objects.filter(author_id=7, pk__in=Book.objects.filter(pages=1).values("pk")),
        Book.objects.filter(Exists(Tag.objects.filter(books=OuterRef("pk"))), author_id=7),
        Book.objects.filter(author_id=7).extra(select={"x": "1"}),
        Book.objects.filter(author_id=7).union(Book.objects.filter(author_id=8)),
    ]
    for qs in coarse:
        plan = _plan(qs)
        assert plan is None or plan.finer is None, str(qs.query)


def test_membership_reads_depend_on_change_keys_only(shelf, engine):
    ann = shelf["ann"].pk
    with engine.recording() as rec:
        Book.objects.filter(author_id=ann, title="x").count()
    assert rec.keys == {f"book.author_id={ann}/{c}" for c in ("author_id", "title", "*")}
    with engine.recording() as rec:
        Book.objects.filter(author_id=ann).aggregate(n=Count("pk"))
    assert rec.keys == {f"book.author_id={ann}"}
