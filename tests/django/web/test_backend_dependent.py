"""Dependent values in the CACHES backend: one store round trip per hit, never stale."""

from __future__ import annotations

import pytest
from django.core.cache import caches


class _CountingStore:
    """Count the store reads a cache makes (the store's own methods, unchanged)."""

    def __init__(self, store, monkeypatch):
        self.reads = 0
        for name in ("get", "get_many", "gets", "gets_many", "get_item"):
            original = getattr(store, name)

            def counted(*args, _original=original, **kwargs):
                self.reads += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, counted)


@pytest.mark.django_db(transaction=True)
def test_a_dependent_hit_is_one_store_read_and_a_write_drops_it(monkeypatch):
    cache = caches["default"]
    cache.set("author-page:7", {"html": "<p>7</p>"}, depends_on=["author:7"])
    cache.set("author-page:8", {"html": "<p>8</p>"}, depends_on=["author:8"])
    assert cache.get("author-page:7") == {"html": "<p>7</p>"}  # polled for this unit of work
    counter = _CountingStore(cache.store, monkeypatch)
    assert cache.get("author-page:7") == {"html": "<p>7</p>"}
    assert counter.reads == 1
    cache.invalidate("author:7")
    assert cache.get("author-page:7") is None
    assert cache.get("author-page:8") == {"html": "<p>8</p>"}  # finer than a table


@pytest.mark.django_db(transaction=True)
def test_a_dependent_value_too_large_leaves_no_older_value_behind():
    cache = caches["default"]
    cache.set("k", "older", depends_on=["book:1"])
    cache.set("k", "x" * (2 * 1024 * 1024), depends_on=["book:1"])  # over the 1 MiB item limit
    assert cache.get("k") is None
