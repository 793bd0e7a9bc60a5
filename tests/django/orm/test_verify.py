"""Verify mode (``CACHEDEPS["VERIFY"]``): every hit is checked against the database.

A stale entry is made by writing behind cachedeps's back (the driver's own cursor, which no
tracker sees): the next hit must raise ``StaleRead`` naming the query, its keys, its stamp
and the feed position; a hit that agrees with the database passes, in any row order.
"""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test.utils import override_settings

from cachedeps.errors import StaleRead
from django_cachedeps import conf
from tests.django.orm._support import seed
from tests.django.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(engine):
    return seed()


def _untracked(sql: str, params: tuple = ()) -> None:
    """Write with the driver's cursor: the feed never hears of it."""
    connection.ensure_connection()
    cursor = connection.create_cursor()
    try:
        cursor.execute(sql, params)
    finally:
        cursor.close()
    if connection.get_autocommit() and connection.vendor == "sqlite":
        connection.connection.commit()


def _verify(value):
    return override_settings(CACHEDEPS={"CACHE": "default", "VERIFY": value})


def test_a_stale_query_hit_raises_stale_read(data):
    with _verify(True):
        assert [b.title for b in Book.objects.filter(author=data["ann"]).order_by("title")] == ["Alpha", "Beta"]
        _untracked("UPDATE book SET title = %s WHERE id = %s", ("Changed", data["b1"].pk))
        with pytest.raises(StaleRead) as info:
            list(Book.objects.filter(author=data["ann"]).order_by("title"))
    err = info.value
    assert "book" in err.query and err.deps and err.stamp is not None and err.position is not None
    assert "Changed" in str(err) and "Alpha" in str(err)


@pytest.mark.parametrize("read", ["get", "first"])
def test_a_stale_state_hit_raises_stale_read(data, read):
    pk = data["b2"].pk
    with _verify(True):
        load = (lambda: Book.objects.get(pk=pk)) if read == "get" else (lambda: Book.objects.filter(pk=pk).first())
        assert load().title == "Beta"
        assert load().title == "Beta"  # a verified hit that agrees
        _untracked("UPDATE book SET pages = 7 WHERE id = %s", (pk,))
        with pytest.raises(StaleRead) as info:
            load()
    assert info.value.deps == (f"book:{pk}",)


def test_single_results_are_verified(data):
    with _verify(True):
        assert Book.objects.count() == 3
        _untracked("DELETE FROM book_tags")
        _untracked("DELETE FROM book WHERE id = %s", (data["b3"].pk,))
        with pytest.raises(StaleRead):
            Book.objects.count()


def test_agreeing_hits_pass_in_any_row_order(data):
    with _verify(True):
        first = sorted(Author.objects.values_list("name", flat=True).order_by())
        # Reverse the physical order the database returns an unordered scan in.
        for _ in range(2):
            assert sorted(Author.objects.values_list("name", flat=True).order_by()) == first
        assert Book.objects.filter(pages__gt=50).count() == 3
        assert Book.objects.filter(pages__gt=50).count() == 3


def test_a_fraction_logs_instead_of_raising(data, caplog):
    with _verify(1.0):
        list(Author.objects.filter(active=True))
        _untracked("UPDATE author SET name = 'Zed' WHERE id = %s", (data["ann"].pk,))
        with caplog.at_level(logging.ERROR, logger="cachedeps.verify"):
            names = [a.name for a in Author.objects.filter(active=True)]
    assert names == ["Ann"]  # served (stale) from the cache, and reported
    assert any("stale cache hit" in r.getMessage() for r in caplog.records)


def test_verify_queries_are_not_counted(data, django_assert_num_queries):
    with _verify(True):
        list(Author.objects.filter(active=True))
        from tests.django.conftest import DbQueries

        with DbQueries(connection) as q:
            list(Author.objects.filter(active=True))
        assert q.data == []


@pytest.mark.parametrize("bad", ["yes", 2, -0.5])
def test_bad_verify_settings_are_rejected(bad):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="VERIFY"):
        conf.parse({"VERIFY": bad})
