"""Transactions: a transaction that wrote reads its own writes; a rollback leaves the cache
correct; a rolled-back savepoint takes its invalidations with it; commits invalidate."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tests.django.orm._support import seed, served_from_cache
from tests.django.testapp.models import Book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


def titles() -> list[str]:
    return sorted(Book.objects.values_list("title", flat=True))


def test_read_your_own_writes_inside_atomic(data, queries):
    served_from_cache(titles)
    with transaction.atomic():
        Book.objects.filter(pk=data["b1"].pk).update(title="Mine")
        with queries() as q:
            assert titles() == ["Beta", "Gamma", "Mine"]
            assert titles() == ["Beta", "Gamma", "Mine"]
        assert len(q.data) == 2  # no get, no fill while the transaction has written
    assert titles() == ["Beta", "Gamma", "Mine"]
    served_from_cache(titles)


def test_rollback_leaves_cached_data_intact_and_correct(data, queries):
    served_from_cache(titles)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Book.objects.filter(pk=data["b1"].pk).update(title="Gone")
            assert titles() == ["Beta", "Gamma", "Gone"]
            raise RuntimeError("roll back")
    assert connection.cachedeps_written is False
    assert served_from_cache(titles) == ["Alpha", "Beta", "Gamma"]


def test_savepoint_rollback_scopes_invalidations(data, engine):
    pk1, pk3 = data["b1"].pk, data["b3"].pk
    one = lambda: Book.objects.get(pk=pk1).title  # noqa: E731
    three = lambda: Book.objects.get(pk=pk3).title  # noqa: E731
    served_from_cache(one)
    served_from_cache(three)
    committed = []
    original = engine.committed
    engine.committed = lambda keys, tid: (committed.extend(keys), original(keys, tid))  # observe only
    with transaction.atomic():
        Book.objects.filter(pk=pk1).update(title="Kept")
        try:
            with transaction.atomic():
                Book.objects.filter(pk=pk3).update(title="Dropped")
                raise RuntimeError("inner")
        except RuntimeError:
            pass
    assert f"book:{pk1}" in committed and f"book:{pk3}" not in committed
    assert one() == "Kept"
    served_from_cache(three)  # still cached, still right
    assert three() == "Gamma"


def test_commit_invalidates_only_after_commit_in_this_process(data):
    pk = data["b2"].pk
    served_from_cache(lambda: Book.objects.get(pk=pk).pages)
    with transaction.atomic():
        Book.objects.filter(pk=pk).update(pages=5)
    assert Book.objects.get(pk=pk).pages == 5


def test_reads_in_a_transaction_that_has_not_written_may_use_the_cache(data, queries):
    served_from_cache(titles)
    with transaction.atomic():
        with queries() as q:
            assert titles() == ["Alpha", "Beta", "Gamma"]
    assert q.data == []


def test_delete_cascade_rolls_back_cleanly(data):
    count = lambda: Book.objects.count()  # noqa: E731
    served_from_cache(count)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            data["ann"].delete()
            assert count() == 1
            raise RuntimeError("undo")
    assert served_from_cache(count) == 3
