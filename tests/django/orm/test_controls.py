"""Controls where users expect them: per-model timeouts and opt-out in ``CACHEDEPS["MODELS"]``,
``QuerySet.cache(timeout=...)``, the ``cache_hit``/``cache_miss``/``cache_invalidated``
signals and ``invalidate_model``/``invalidate_object``."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings

from cachedeps.store import embedded as embedded_module
from django_cachedeps import cached, invalidate_model, invalidate_object, nocache, runtime
from django_cachedeps.signals import cache_hit, cache_invalidated, cache_miss
from tests.django.conftest import DbQueries
from tests.django.orm._support import seed, served_from_cache
from tests.django.testapp.models import Author, Book, Novel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


@pytest.fixture
def clock(monkeypatch):
    """Move the embedded store's clock forward: ``clock(61)``."""
    offset = [0.0]
    monkeypatch.setattr(embedded_module, "_monotonic", lambda: time.monotonic() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def ran_queries(read) -> list[str]:
    with DbQueries(connection) as q:
        read()
    return q.data


def with_models(models, **extra):
    return override_settings(CACHEDEPS={"CACHE": "default", "MODELS": models, **extra})


# -- per-model timeout and opt-out -----------------------------------------------------------


def test_a_per_model_timeout_expires_its_reads_in_the_store(data, clock):
    with with_models({"testapp.Book": {"timeout": 60}}):
        ann = data["ann"].pk
        book_pk = data["b1"].pk
        books = lambda: list(Book.objects.filter(author_id=ann).values_list("title", flat=True))  # noqa: E731
        row = lambda: Book.objects.get(pk=book_pk).title  # noqa: E731
        author = lambda: Author.objects.get(pk=ann).name  # noqa: E731
        for read in (books, row, author):
            served_from_cache(read)
        clock(59)
        for read in (books, row, author):
            assert ran_queries(read) == []  # not yet
        clock(2)  # 61 s after the fills: the store has let Book's entries go
        assert ran_queries(books) != [] and ran_queries(row) != []
        assert ran_queries(author) == []  # Author keeps CACHEDEPS["TIMEOUT"] (3600 s)
        for read in (books, row):
            served_from_cache(read)  # filled again


def test_a_read_over_several_models_lives_as_long_as_the_shortest(data, clock):
    with with_models({"testapp.Author": {"timeout": 30}, "testapp.Book": {"timeout": 600}}):
        read = lambda: list(Book.objects.filter(author__name="Ann").values_list("title", flat=True))  # noqa: E731
        only_books = lambda: list(Book.objects.filter(pages__gt=0).values_list("title", flat=True))  # noqa: E731
        served_from_cache(read)
        served_from_cache(only_books)
        clock(31)
        assert ran_queries(read) != []  # joined Author: 30 s
        assert ran_queries(only_books) == []  # Book alone: 600 s


def test_the_every_model_entry_sets_the_default_timeout(data, clock):
    with with_models({"*": {"timeout": 10}, "testapp.Author": {"timeout": 0}}):
        ann = data["ann"].pk
        book = lambda: Book.objects.get(pk=data["b1"].pk).title  # noqa: E731
        author = lambda: Author.objects.get(pk=ann).name  # noqa: E731
        served_from_cache(book)
        served_from_cache(author)
        clock(10**5)
        assert ran_queries(book) != []
        assert ran_queries(author) == []  # 0: no limit


def test_a_model_opted_out_is_never_cached_and_others_are(data):
    with with_models({"testapp.Book": {"cache": False}, "testapp.Author": {"timeout": 60}}):
        pk = data["b1"].pk
        for _ in range(3):
            assert ran_queries(lambda: Book.objects.get(pk=pk)) != []
            assert ran_queries(lambda: list(Book.objects.filter(pages__gt=0))) != []
        served_from_cache(lambda: Author.objects.get(pk=data["ann"].pk).name)
        served_from_cache(lambda: list(Author.objects.order_by("pk").values_list("name", flat=True)))


def test_every_model_off_caches_only_the_ones_named(data):
    with with_models({"*": {"cache": False}, "testapp.Author": {}}):
        served_from_cache(lambda: Author.objects.get(pk=data["ann"].pk).name)
        assert ran_queries(lambda: Book.objects.get(pk=data["b1"].pk)) != []
        assert ran_queries(lambda: Book.objects.get(pk=data["b1"].pk)) != []


def test_a_write_still_invalidates_a_model_with_a_long_timeout(data):
    with with_models({"testapp.Book": {"timeout": 0}}):
        pk = data["b1"].pk
        served_from_cache(lambda: Book.objects.get(pk=pk).title)
        Book.objects.filter(pk=pk).update(title="Changed")
        assert Book.objects.get(pk=pk).title == "Changed"


# -- QuerySet.cache(timeout=...) --------------------------------------------------------------


def test_queryset_cache_timeout_bounds_that_query(data, clock):
    with override_settings(CACHEDEPS={"CACHE": "default"}):
        ann = data["ann"].pk
        short = lambda: list(Book.objects.filter(author_id=ann).cache(timeout=5).values_list("title", flat=True))  # noqa: E731
        counted = lambda: Book.objects.filter(author_id=ann).cache(timeout=5).count()  # noqa: E731
        other = lambda: list(Book.objects.filter(pages__gt=1).values_list("title", flat=True))  # noqa: E731
        state = lambda: Book.objects.cache(timeout=5).get(pk=data["b2"].pk).title  # noqa: E731
        for read in (short, counted, other, state):
            served_from_cache(read)
        clock(6)
        assert ran_queries(short) != [] and ran_queries(counted) != [] and ran_queries(state) != []
        assert ran_queries(other) == []  # CACHEDEPS["TIMEOUT"]


def test_queryset_cache_undoes_nocache_and_rejects_bad_timeouts(data):
    qs = Book.objects.filter(author_id=data["ann"].pk).nocache()
    assert ran_queries(lambda: list(qs.all())) != [] and ran_queries(lambda: list(qs.filter(pages__gt=0))) != []
    served_from_cache(lambda: list(qs.cache()))
    served_from_cache(lambda: list(cached(Book.objects.filter(pages=200), timeout=30)))
    for bad in (-1, "60", True, float("nan")):
        with pytest.raises(ValueError, match="cache\\(timeout=...\\)"):
            Book.objects.cache(timeout=bad)


def test_queryset_cache_timeout_zero_means_no_limit(data, clock):
    with override_settings(CACHEDEPS={"CACHE": "default", "TIMEOUT": 10}):
        read = lambda: list(Book.objects.filter(pages=100).cache(timeout=0).values_list("pk", flat=True))  # noqa: E731
        served_from_cache(read)
        clock(10**5)
        assert ran_queries(read) == []


# -- signals ----------------------------------------------------------------------------------


def test_signals_carry_the_keys_of_hits_misses_and_invalidations(data, engine):
    seen: list[tuple] = []

    def on_hit(sender, key, kind, **kw):
        seen.append(("hit", key, kind, sender))

    def on_miss(sender, key, kind, stale, **kw):
        seen.append(("miss", key, kind, stale))

    def on_invalidated(sender, keys, tid, **kw):
        seen.append(("invalidated", tuple(keys), tid))

    pk = data["b1"].pk
    cache_hit.connect(on_hit)
    cache_miss.connect(on_miss)
    cache_invalidated.connect(on_invalidated)
    try:
        Book.objects.get(pk=pk)
        Book.objects.get(pk=pk)
        with transaction.atomic():
            Book.objects.filter(pk=pk).update(pages=101)
            assert not [s for s in seen if s[0] == "invalidated"]  # not before COMMIT
    finally:
        cache_hit.disconnect(on_hit)
        cache_miss.disconnect(on_miss)
        cache_invalidated.disconnect(on_invalidated)
    assert ("miss", f"book:{pk}", "state", False) in seen
    assert ("hit", f"book:{pk}", "state", engine) in seen
    invalidated = [s for s in seen if s[0] == "invalidated"]
    assert len(invalidated) == 1
    keys, tid = invalidated[0][1], invalidated[0][2]
    assert f"book:{pk}" in keys and "book" in keys and "book/pages" in keys
    assert tid > 0 and engine.maps.newest([f"book:{pk}"]) == tid


def test_a_stale_entry_is_a_miss_with_stale_true(data, engine):
    misses = []
    receiver = lambda sender, key, kind, stale, **kw: misses.append((key, stale))  # noqa: E731
    ann = data["ann"].pk
    read = lambda: list(Book.objects.filter(author_id=ann).values_list("title", flat=True))  # noqa: E731
    read()
    engine.maps.record(["book.author_id=" + str(ann)], engine.current_tid + 1)  # a change the entry predates
    cache_miss.connect(receiver)
    try:
        read()
    finally:
        cache_miss.disconnect(receiver)
    assert any(stale for _, stale in misses)


def test_no_receiver_no_engine_events(data, engine):
    """Cheap when nobody listens: the engine builds no event until a receiver connects."""
    assert engine._stats.listening is False and engine._stats.watching is False
    receiver = lambda sender, **kw: None  # noqa: E731
    cache_invalidated.connect(receiver)
    assert engine._stats.listening is False and engine._stats.watching is True  # hits stay free
    cache_hit.connect(receiver)
    assert engine._stats.listening is True
    cache_hit.disconnect(receiver)
    cache_invalidated.disconnect(receiver)
    assert engine._stats.listening is False and engine._stats.watching is False
    # A receiver garbage-collected (weak reference) turns the events off at the next poll.
    cache_miss.connect(lambda sender, **kw: None)
    assert engine._stats.listening is True
    import gc

    gc.collect()
    with runtime.unit_of_work():
        Book.objects.get(pk=data["b1"].pk)
    assert engine._stats.listening is False


# -- invalidate_model / invalidate_object -----------------------------------------------------


def _untracked_update(sql: str, params: list) -> None:
    """Change rows behind cachedeps's back (the driver's own cursor, no execute wrapper)."""
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql.replace("%s", "?") if connection.vendor == "sqlite" else sql, params)
    finally:
        cursor.close()
    if not connection.get_autocommit():
        connection.connection.commit()
    elif connection.vendor == "sqlite":
        connection.connection.commit()


def test_invalidate_model_drops_every_read_of_the_model(data, engine):
    with override_settings(CACHEDEPS={"CACHE": "default"}):
        pk, ann = data["b1"].pk, data["ann"].pk
        row = lambda: Book.objects.get(pk=pk).title  # noqa: E731
        titles = lambda: sorted(Book.objects.filter(author_id=ann).values_list("title", flat=True))  # noqa: E731
        count = lambda: Book.objects.filter(pages__gte=100).count()  # noqa: E731
        author = lambda: Author.objects.get(pk=ann).name  # noqa: E731
        for read in (row, titles, count, author):
            served_from_cache(read)
        _untracked_update("UPDATE book SET title = %s, pages = %s WHERE id = %s", ["Changed", 1, pk])
        assert row() == "Alpha" and count() == 3  # the cache did not see it
        tid = invalidate_model(Book)
        assert tid > 0 and runtime.get_engine().maps.newest(["book:*"]) == tid
        assert row() == "Changed" and titles() == ["Beta", "Changed"] and count() == 2
        assert ran_queries(author) == []  # another model keeps its entries


def test_invalidate_object_drops_the_reads_holding_its_row_only(data, engine):
    with override_settings(CACHEDEPS={"CACHE": "default"}):
        b1, b3 = data["b1"], data["b3"]
        row = lambda: Book.objects.get(pk=b1.pk).title  # noqa: E731
        by_isbn = lambda: list(Book.objects.filter(isbn="111").values_list("title", flat=True))  # noqa: E731
        page = lambda: list(Book.objects.filter(author_id=b1.author_id).order_by("pk").values_list("title", flat=True))  # noqa: E731
        other = lambda: Book.objects.get(pk=b3.pk).title  # noqa: E731
        for read in (row, by_isbn, page, other):
            served_from_cache(read)
        _untracked_update("UPDATE book SET title = %s WHERE id = %s", ["Changed", b1.pk])
        assert row() == "Alpha"
        assert invalidate_object(b1) > 0
        assert row() == "Changed" and by_isbn() == ["Changed"] and page() == ["Changed", "Beta"]
        assert ran_queries(other) == []  # another row of the same table stays cached


def test_invalidate_object_emits_the_keys_a_delete_of_its_row_would(data, engine):
    """Through the engine's algebra: the same keys the ORM's own write emits."""
    from cachedeps import keys as ck

    b1 = data["b1"]
    got = []
    receiver = lambda sender, keys, **kw: got.append(set(keys))  # noqa: E731
    cache_invalidated.connect(receiver)
    try:
        invalidate_object(b1)
        Book.objects.filter(pk=b1.pk).delete()
    finally:
        cache_invalidated.disconnect(receiver)
    assert got[0] >= {"book", ck.oid("book", b1.pk), "book/*", "book.isbn=111", "book.isbn=111/*"}
    # a delete also drops the m2m rows (their own keys): the book's own keys are the same
    assert {k for k in got[0] if ck.table_of(k) == "book"} == {k for k in got[1] if ck.table_of(k) == "book"}


def test_invalidate_object_of_a_child_model_covers_its_parent_table(data):
    novel = Novel.objects.create(author=data["ann"], title="N", isbn="999", genre="sf")
    got = []
    receiver = lambda sender, keys, **kw: got.append(set(keys))  # noqa: E731
    cache_invalidated.connect(receiver)
    try:
        invalidate_object(novel)
        invalidate_model(Novel)
    finally:
        cache_invalidated.disconnect(receiver)
    assert {"book", f"book:{novel.pk}", "novel", f"novel:{novel.pk}"} <= got[0]
    assert {"book", "book:*", "novel", "novel:*"} <= got[1]


def test_invalidate_object_of_a_row_gone_falls_back_to_the_table_keys(data):
    got = []
    receiver = lambda sender, keys, **kw: got.append(set(keys))  # noqa: E731
    b1 = data["b1"]
    _untracked_update("DELETE FROM book_tags WHERE book_id = %s", [b1.pk])
    _untracked_update("DELETE FROM book WHERE id = %s", [b1.pk])
    cache_invalidated.connect(receiver)
    try:
        invalidate_object(b1)
    finally:
        cache_invalidated.disconnect(receiver)
    assert {"book", "book:*"} <= got[0]


def test_invalidations_inside_a_transaction_wait_for_commit(data, engine):
    got = []
    receiver = lambda sender, keys, **kw: got.append(keys)  # noqa: E731
    cache_invalidated.connect(receiver)
    try:
        with transaction.atomic():
            assert invalidate_object(data["b1"]) == 0
            assert got == []
        assert len(got) == 1  # published at COMMIT
        with transaction.atomic():
            invalidate_model(Book)
            transaction.set_rollback(True)
        assert len(got) == 1  # rolled back with the transaction
    finally:
        cache_invalidated.disconnect(receiver)


def test_helpers_reject_the_wrong_argument(data):
    with pytest.raises(TypeError, match="invalidate_object"):
        invalidate_model(data["b1"])
    with pytest.raises(TypeError, match="invalidate_model"):
        invalidate_object(Book)
    with pytest.raises(ValueError, match="no primary key"):
        invalidate_object(Book(title="unsaved"))


def test_helpers_do_nothing_when_caching_is_off(data):
    with override_settings(CACHEDEPS={"CACHE": "default", "ENABLED": False}):
        assert invalidate_model(Book) == 0 and invalidate_object(data["b1"]) == 0
    with nocache():
        assert invalidate_model(Author) > 0  # nocache() opts reads out, not writes


# -- checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("models, expected, named", [
    ({"testapp.Nope": {"timeout": 5}}, "cachedeps.E005", "testapp.Nope"),
    ({"testapp.Book": {"timout": 5}}, "cachedeps.E001", "timout"),
    ({"testapp.Book": {"timeout": -1}}, "cachedeps.E001", "testapp.Book"),
    ({"testapp.Book": {"cache": "no"}}, "cachedeps.E001", "testapp.Book"),
    ({"testapp.Book": 60}, "cachedeps.E001", "testapp.Book"),
    ({"Book": {}}, "cachedeps.E001", "'Book'"),
])
def test_a_bad_models_entry_is_a_check_error_naming_it(models, expected, named):
    from django_cachedeps import checks

    with with_models(models):
        found = [*checks.check_settings(), *checks.check_models()]
    errors = [m for m in found if m.id == expected]
    assert errors and named in errors[0].msg and errors[0].hint


def test_the_models_dict_form_passes_the_checks():
    from django_cachedeps import checks

    with with_models({"*": {"timeout": 60}, "testapp.Book": {"timeout": 5, "cache": True},
                      "testapp.Tag": {"cache": False}}):
        assert [*checks.check_settings(), *checks.check_models()] == []
