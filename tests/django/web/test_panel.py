"""The django-debug-toolbar panel: a request's hits, misses, stored entries with their
dependency keys, and invalidations, left out of other requests."""

from __future__ import annotations

from html import escape
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory, override_settings
from django.urls import resolve

from django_cachedeps.runtime import get_engine, unit_of_work
from tests.django.testapp.models import Author, Book

pytest.importorskip("debug_toolbar")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.django.web.views")]

PANEL = "django_cachedeps.panels.CachedepsPanel"


def _view(request: Any) -> Any:
    match = resolve(request.path_info)
    with unit_of_work():
        return match.func(request, *match.args, **match.kwargs)


def _through_toolbar(path: str, get_response: Any = _view) -> tuple[Any, Any]:
    """Handle ``path`` as DebugToolbarMiddleware does; return (panel, response)."""
    from debug_toolbar.toolbar import DebugToolbar

    request = RequestFactory().get(path)
    with override_settings(DEBUG_TOOLBAR_PANELS=[PANEL]):
        toolbar = DebugToolbar(request, get_response)
        panel = toolbar.get_panel_by_id("CachedepsPanel")
        assert panel.enabled
        panel.enable_instrumentation()
        try:
            response = toolbar.process_request(request)
        finally:
            panel.disable_instrumentation()
        panel.generate_stats(request, response)
    return panel, response


def _events(panel: Any, kind: str) -> list[dict]:
    return [e for e in panel.get_stats()["events"] if e["event"] == kind]


@pytest.fixture
def book() -> Book:
    ann = Author.objects.create(name="Ann")
    Book.objects.create(author=ann, title="Beta", isbn="p2")
    return Book.objects.create(author=ann, title="Alpha", isbn="p1")


def test_a_first_request_shows_misses_and_stored_entries_with_their_keys(book):
    panel, response = _through_toolbar(f"/book/{book.pk}/")
    assert response.status_code == 200
    assert _events(panel, "miss")
    stored = {e["key"]: e["deps"] for e in _events(panel, "set")}
    page = next(deps for key, deps in stored.items() if "view.p." in key)
    assert f"book:{book.pk}" in page  # the page depends on the book it showed
    assert f"book.author_id={book.author_id}/*" in page  # and on the fragment's query
    assert "misses" in panel.nav_subtitle
    html = panel.content
    assert "view.p." in html and f"book:{book.pk}" in html


def test_each_stored_query_shows_its_sql_and_keys_without_stray_commas(book):
    panel, _ = _through_toolbar(f"/book/{book.pk}/")
    stored = _events(panel, "set")
    queries = [e for e in stored if e["sql"] and "view.p." not in e["key"]]
    assert queries, stored
    from_book = f"FROM {connection.ops.quote_name('book')}"  # FROM "book" (`book` on MySQL)
    assert any(from_book in q for e in queries for q in e["sql"])
    page = next(e for e in stored if "view.p." in e["key"])
    assert len(page["sql"]) >= 2  # every statement the page ran: the book and the shelf
    html = panel.content
    assert "SELECT" in html and escape(from_book) in html
    assert "</code>, <code>" not in html and ", \n" not in html


def test_a_second_request_is_one_hit_and_a_write_shows_as_an_invalidation(book):
    _through_toolbar(f"/book/{book.pk}/")
    panel, _ = _through_toolbar(f"/book/{book.pk}/")
    assert [e["key"] for e in panel.get_stats()["events"] if e["event"] in ("hit", "miss")] \
        and not _events(panel, "miss") and not _events(panel, "set")
    assert panel.nav_subtitle.startswith(f"{len(_events(panel, 'hit'))} hits, 0 misses")

    def write(request: Any) -> Any:
        Book.objects.filter(pk=book.pk).update(title="Changed")
        return _view(request)

    panel, response = _through_toolbar(f"/book/{book.pk}/", write)
    assert b"Changed" in response.content
    assert _events(panel, "invalidate") or _events(panel, "purge")
    assert _events(panel, "miss")


def test_events_of_other_requests_are_left_out(book):
    import threading

    def busy(request: Any) -> Any:
        engine = get_engine()
        engine.set("own", "x")  # this request's own event
        other = threading.Thread(target=engine.set, args=("other-request", "y"))
        other.start()  # another request at the same time, in its own thread
        other.join()
        return _view(request)

    panel, _ = _through_toolbar(f"/book/{book.pk}/", busy)
    get_engine().set("after-the-request", "z")  # after the panel stopped listening
    keys = {e["key"] for e in panel.get_stats()["events"]}
    assert any(k.endswith("own") for k in keys)
    assert not any(k.endswith(("other-request", "after-the-request")) for k in keys)
