"""Every ORM read path is answered from the cache the second time, with no query but the
feed poll; and opting out works."""

from __future__ import annotations

import datetime

import pytest
from django.db.models import Count, Prefetch, Sum
from django.test.utils import override_settings

from django_cachedeps import nocache, uncached
from tests.django.orm._support import seed, served_from_cache
from tests.django.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


def test_get_by_pk_uses_the_state_path(data, engine):
    pk = data["b1"].pk
    events = []
    engine.add_listener(lambda event, key, **detail: events.append((event, key, detail.get("state"))))
    book = served_from_cache(lambda: Book.objects.get(pk=pk))
    assert book.title == "Alpha" and book.published.year == 2020
    assert ("hit", f"book:{pk}", True) in events


@override_settings(CACHEDEPS={"CACHE": "default"})  # verify mode compiles the SQL it checks
def test_a_get_by_pk_hit_compiles_no_sql_and_converts_its_values(data, monkeypatch):
    from django.db.models.sql import compiler

    pk, author_pk = data["b1"].pk, data["bob"].pk
    Book.objects.get(pk=pk), Author.objects.get(pk=author_pk)  # compiled once, states stored
    compiled = []
    original = compiler.SQLCompiler.as_sql

    def spy(self, *args, **kwargs):
        compiled.append(self.query.model.__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(compiler.SQLCompiler, "as_sql", spy)
    book = served_from_cache(lambda: Book.objects.get(pk=pk))
    assert book.published == datetime.date(2020, 1, 1) and book.author_id == data["ann"].pk
    assert served_from_cache(lambda: Author.objects.get(pk=author_pk).active) is False
    assert served_from_cache(lambda: Book.objects.filter(pk=pk).first().title) == "Alpha"
    assert compiled == []
    assert Book.objects.only("title").get(pk=pk).title == "Alpha"  # deferred fields: compiled
    assert compiled == ["Book"]
    Book.objects.filter(pk=pk).update(title="Changed")
    assert Book.objects.get(pk=pk).title == "Changed"


def test_get_missing_row_is_cached_and_then_found_after_insert(data, engine):
    def read():
        return list(Book.objects.filter(pk=999))

    assert served_from_cache(read) == []
    Book.objects.create(pk=999, author=data["ann"], title="Late", isbn="999")
    assert [b.title for b in read()] == ["Late"]


def test_get_by_unique_field(data):
    assert served_from_cache(lambda: Book.objects.get(isbn="222")).title == "Beta"


def test_iteration_filter_and_order(data):
    titles = served_from_cache(lambda: [b.title for b in Book.objects.filter(author=data["ann"]).order_by("title")])
    assert titles == ["Alpha", "Beta"]


def test_first_and_last(data):
    assert served_from_cache(lambda: Book.objects.order_by("pages").first()).title == "Alpha"
    assert served_from_cache(lambda: Book.objects.order_by("pages").last()).title == "Gamma"


def test_count_and_exists(data):
    assert served_from_cache(lambda: Book.objects.filter(pages__gte=200).count()) == 2
    assert served_from_cache(lambda: Book.objects.filter(title="Beta").exists()) is True
    assert served_from_cache(lambda: Book.objects.filter(title="Nope").exists()) is False


def test_aggregate_and_annotate(data):
    assert served_from_cache(lambda: Book.objects.aggregate(total=Sum("pages"))) == {"total": 600}
    counts = served_from_cache(
        lambda: dict(Author.objects.annotate(n=Count("books")).values_list("name", "n"))
    )
    assert counts == {"Ann": 2, "Bob": 1}


def test_values_and_values_list(data):
    assert served_from_cache(lambda: list(Book.objects.values("title").order_by("title")))[0] == {"title": "Alpha"}
    assert served_from_cache(lambda: sorted(Book.objects.values_list("isbn", flat=True))) == ["111", "222", "333"]


def test_dates_come_back_as_dates(data):
    rows = served_from_cache(lambda: list(Book.objects.filter(isbn="111").values_list("published", flat=True)))
    assert rows == [data["b1"].published]


def test_select_related(data):
    def read():
        return [(b.title, b.author.name) for b in Book.objects.select_related("author").order_by("pk")]

    assert served_from_cache(read)[0] == ("Alpha", "Ann")


def test_prefetch_related(data):
    def read():
        return {b.title: sorted(t.name for t in b.tags.all()) for b in Book.objects.prefetch_related("tags")}

    assert served_from_cache(read) == {"Alpha": ["red"], "Beta": ["red"], "Gamma": ["blue"]}


def test_prefetch_with_queryset_and_reverse_fk(data):
    def read():
        authors = Author.objects.prefetch_related(Prefetch("books", queryset=Book.objects.order_by("title")))
        return {a.name: [b.title for b in a.books.all()] for a in authors}

    assert served_from_cache(read) == {"Ann": ["Alpha", "Beta"], "Bob": ["Gamma"]}


def test_related_manager_and_one_to_one(data):
    ann_pk = data["ann"].pk
    assert served_from_cache(lambda: Author.objects.get(pk=ann_pk).profile.bio) == "hello"
    assert served_from_cache(lambda: sorted(t.name for t in Tag.objects.filter(books__author_id=ann_pk).distinct())) == ["red"]


def test_subquery_read(data):
    def read():
        return sorted(Book.objects.filter(author__in=Author.objects.filter(active=True)).values_list("title", flat=True))

    assert served_from_cache(read) == ["Alpha", "Beta"]


def test_nocache_context_manager_goes_to_the_database(data, queries):
    Book.objects.filter(isbn="111").count()
    with queries() as q, nocache():
        Book.objects.filter(isbn="111").count()
    assert len(q.data) == 1


def test_uncached_queryset_and_manager_method(data, queries):
    qs = Book.objects.filter(pages__gt=1)
    list(qs)
    with queries() as q:
        list(uncached(qs))
        list(Book.objects.nocache().filter(pages__gt=1).order_by("pk"))
        uncached(qs).count()
    assert len(q.data) == 3


def test_iterator_streams_from_the_database(data, queries):
    list(Book.objects.all())
    with queries() as q:
        assert len(list(Book.objects.all().iterator())) == 3
    assert len(q.data) == 1


def test_random_order_is_not_cached(data, queries):
    list(Book.objects.order_by("?"))
    with queries() as q:
        list(Book.objects.order_by("?"))
    assert len(q.data) == 1


def test_select_for_update_is_not_cached(data, queries):
    from django.db import transaction

    with transaction.atomic():
        list(Book.objects.select_for_update().filter(pk=data["b1"].pk))
        with queries() as q:
            list(Book.objects.select_for_update().filter(pk=data["b1"].pk))
    assert len(q.data) == 1


def test_excluded_model_is_not_cached(data, queries, settings):
    settings.CACHEDEPS = {"EXCLUDE": ["testapp.Author"]}
    list(Author.objects.all())
    with queries() as q:
        list(Author.objects.all())
    assert len(q.data) == 1
    served_from_cache(lambda: list(Book.objects.all()))


def test_a_model_excluded_after_its_queries_were_cached_is_read_from_the_database(data, queries, settings):
    pk = data["b1"].pk
    served_from_cache(lambda: Book.objects.get(pk=pk))  # plans of both queries remembered
    served_from_cache(lambda: list(Book.objects.filter(author_id=data["ann"].pk)))
    settings.CACHEDEPS = {"EXCLUDE": ["testapp.Book"]}
    with queries() as q:
        Book.objects.get(pk=pk)
        list(Book.objects.filter(author_id=data["ann"].pk))
    assert len(q.data) == 2


@pytest.mark.parametrize("read_name", ["pk", "iteration", "count"])
def test_reads_on_both_stores(store_url, data, read_name):
    pk = data["b2"].pk
    read = {
        "pk": lambda: Book.objects.get(pk=pk).title,
        "iteration": lambda: [b.title for b in Book.objects.order_by("pk")],
        "count": lambda: Book.objects.filter(author=data["ann"]).count(),
    }[read_name]
    served_from_cache(read)
    Book.objects.filter(pk=pk).update(title="Changed", author=data["bob"])
    expected = {"pk": "Changed", "iteration": ["Alpha", "Changed", "Gamma"], "count": 1}[read_name]
    assert read() == expected


@pytest.mark.parametrize("options", [{}, {"analyze": True}])
def test_explain_always_runs_on_the_database(data, queries, options):
    # EXPLAIN describes a plan (and with ANALYZE runs the query and times it): it is never a
    # cached read, or a second explain() would return the first one's plan and timings.
    from django.db import connection

    if options and connection.vendor != "postgresql":
        pytest.skip("EXPLAIN ANALYZE is PostgreSQL's")
    qs = Book.objects.filter(pages__gt=1).order_by("pk")
    qs.explain(**options)
    with queries() as q:
        qs.explain(**options)
    assert [sql for sql in q.data if sql.startswith("EXPLAIN")], q.data
