"""Pages with the cache down: ``@cached_view`` and ``{% cachedeps %}`` pages keep being served
from the database, correct after a write, with one warning per interval; once memcached is
back they are cached again."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

import cachedeps.cache
from django_cachedeps import runtime
from tests.django.testapp.models import Author, Book

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.memcached,
              pytest.mark.urls("tests.django.web.views")]


class _Later:
    """``time`` as seen from ``seconds`` in the future (to step over the warning interval)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def monotonic(self) -> float:
        return time.monotonic() + self._seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _data_queries(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "cachedeps_change" not in q["sql"]]


def _down_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and "unavailable" in r.getMessage()]


def _get(client: Client, path: str) -> tuple[bytes, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200
    return response.content, _data_queries(ctx)


def test_pages_are_served_from_the_database_while_memcached_is_down(memcached_factory, caplog,
                                                                    monkeypatch):
    server = memcached_factory()
    caches = {"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": server.url}}
    client = Client()
    with override_settings(CACHES=caches):
        ann = Author.objects.create(name="Ann")
        book = Book.objects.create(author=ann, title="Alpha", isbn="d1")
        Book.objects.create(author=ann, title="Beta", isbn="d2")
        path = f"/book/{book.pk}/"

        first, ran = _get(client, path)
        assert b"<h1>Alpha</h1>" in first and b"<li>Beta</li>" in first and ran
        assert _get(client, path) == (first, [])  # page hit: no query but the feed poll

        server.stop()
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                content, ran = _get(client, path)
                assert content == first and ran  # from the database
            Book.objects.filter(pk=book.pk).update(title="While down")
            Book.objects.create(author=ann, title="Gamma", isbn="d3")
            for _ in range(3):
                content, _ = _get(client, path)
                assert b"<h1>While down</h1>" in content and b"<li>Gamma</li>" in content
            assert len(_down_warnings(caplog)) == 1, _down_warnings(caplog)

            monkeypatch.setattr(cachedeps.cache, "time", _Later(31.0))  # past the interval
            for _ in range(3):
                content, _ = _get(client, path)
                assert b"<h1>While down</h1>" in content
            assert len(_down_warnings(caplog)) == 2, _down_warnings(caplog)
            monkeypatch.undo()

        server.start()  # empty, on the same port
        after, ran = _get(client, path)
        assert after == content and ran
        assert _get(client, path) == (after, [])  # cached again
        Book.objects.filter(pk=book.pk).update(title="Back up")
        content, ran = _get(client, path)
        assert b"<h1>Back up</h1>" in content and b"<li>Gamma</li>" in content and ran
    runtime.reset()


def test_a_process_started_with_memcached_down_caches_once_it_is_up(memcached_factory, caplog):
    server = memcached_factory()
    server.stop()
    caches = {"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": server.url}}
    client = Client()
    with override_settings(CACHES=caches):
        ann = Author.objects.create(name="Ann")
        book = Book.objects.create(author=ann, title="Alpha", isbn="c1")
        path = f"/book/{book.pk}/"
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                content, ran = _get(client, path)
                assert b"<h1>Alpha</h1>" in content and ran
        assert len(_down_warnings(caplog)) == 1, _down_warnings(caplog)

        server.start()
        Book.objects.filter(pk=book.pk).update(title="Up")
        first, ran = _get(client, path)
        assert b"<h1>Up</h1>" in first and ran
        assert _get(client, path) == (first, [])
    runtime.reset()
