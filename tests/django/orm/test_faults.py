"""A cache that goes away costs hits, never answers: with memcached killed the ORM answers
from the database, logs one warning per interval, and serves again once memcached is back."""

from __future__ import annotations

import logging

import pytest
from django.test.utils import override_settings

from django_cachedeps import runtime
from tests.django.orm._support import seed, served_from_cache
from tests.django.testapp.models import Book

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.memcached]


def test_memcached_down_falls_back_to_the_database(memcached_factory, caplog):
    server = memcached_factory()
    caches = {"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": server.url}}
    with override_settings(CACHES=caches):
        data = seed()
        pk = data["b1"].pk
        served_from_cache(lambda: Book.objects.get(pk=pk).title)
        served_from_cache(lambda: Book.objects.filter(author=data["ann"]).count())
        server.stop()
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert Book.objects.get(pk=pk).title == "Alpha"
                assert Book.objects.filter(author=data["ann"]).count() == 2
            Book.objects.filter(pk=pk).update(title="While down")
            assert Book.objects.get(pk=pk).title == "While down"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        server.start()
        assert Book.objects.get(pk=pk).title == "While down"
        served_from_cache(lambda: Book.objects.get(pk=pk).title)
    runtime.reset()
