"""The ``/cachedeps/`` dashboard: each thing issue 11 saw wrong with it, on real stores.

Staff only; never a 500 with the store down; kinds and counters in words; a page's tree
with its fragments, queries (SQL) and keys; recent writes and why a page missed; figures
per kind of key from ``cachedeps serve``; a page found by URL whoever viewed it last.
"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from django_cachedeps import runtime
from django_cachedeps.views import COUNTER_LEGEND, KIND_LEGEND
from tests.django.testapp.models import Author, Book
from tests.server.conftest import ServeProcess

from .conftest import cache_settings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.django.web.views")]


@pytest.fixture
def staff():
    client = Client()
    client.force_login(User.objects.create_user("boss", password="x", is_staff=True))
    return client


@pytest.fixture
def book():
    ann = Author.objects.create(name="Ann")
    Book.objects.create(author=ann, title="Beta", isbn="b2")
    return Book.objects.create(author=ann, title="Alpha", isbn="b1")


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _page_key(path: str) -> str:
    pages = [p for p in runtime.get_engine().activity.pages() if p.path == path]
    assert pages, f"{path} not among the recent pages"
    return pages[0].key


def test_only_staff_see_it():
    assert Client().get("/cachedeps/").status_code == 404
    nobody = Client()
    nobody.force_login(User.objects.create_user("someone", password="x"))
    assert nobody.get("/cachedeps/").status_code == 404


def test_kinds_and_counters_are_in_words(staff, book):
    for _ in range(2):
        assert Client().get(f"/book/{book.pk}/").status_code == 200
    html = staff.get("/cachedeps/").content.decode()
    text = _text(staff.get("/cachedeps/"))
    for name, meaning in KIND_LEGEND.values():
        assert name in text
    # a hit rate per kind: the page hit once out of two reads
    assert re.search(r"Pages whole responses of @cached_view views \d+ \d+ \d+%", text)
    # every counter the engine reports has a name and an explanation on the page
    for counter in runtime.get_engine().stats():
        assert counter in COUNTER_LEGEND, counter
        label, meaning = COUNTER_LEGEND[counter]
        assert label in text and meaning in text
    # store figures by kind of key in words, never a bare prefix
    assert "Cached entries" in text
    assert not re.search(r"<td><code>(d|cp|s|t|l)</code>", html)


def test_a_page_opens_its_tree_of_fragments_queries_and_keys(staff, book):
    path = f"/book/{book.pk}/"
    Client().get(path)
    text = _text(staff.get("/cachedeps/", {"page": _page_key(path)}))
    assert "How " + path + " was built" in text
    html = staff.get("/cachedeps/", {"page": _page_key(path)}).content.decode()
    # page -> fragment "shelf" -> the query filling it, with its SQL and keys
    assert 'fragment \u201cshelf\u201d' in html
    fragment = html[html.index('details class="node fragment"'):]
    assert '<details class="node query"' in fragment
    table = Book._meta.db_table
    assert "SELECT" in fragment and table in fragment
    assert f"rows of {table} where author_id = " in fragment  # a key in words
    # the page's own keys do not repeat what its fragment depends on
    page_own = html[html.index('details class="node page"'):html.index('details class="node fragment"')]
    assert "author_id=" not in page_own


def test_a_write_is_listed_and_explains_the_next_miss(staff, book):
    path = f"/book/{book.pk}/"
    anon = Client()
    anon.get(path)
    anon.get(path)
    Book.objects.filter(pk=book.pk).update(title="Renamed")  # through the cached ORM: committed
    assert b"Renamed" in anon.get(path).content
    html = staff.get("/cachedeps/").content.decode()
    table = Book._meta.db_table
    row = next(r for r in re.findall(r'<tr class="write">.*?</tr>', html, re.S) if table in r)
    assert f"{table}:{book.pk}" in row  # the row
    assert f"{table}.title" in row  # the column
    dropped = int(re.sub(r"<[^>]+>", "", row.rsplit("<td", 1)[1].split(">", 1)[1]).strip())
    assert dropped >= 1  # the page, at least
    text = _text(staff.get("/cachedeps/", {"page": _page_key(path)}))
    assert "Why the last miss happened" in text
    assert f"row {book.pk} of {table}" in text and "this process" in text


def test_the_page_is_found_by_url_whoever_viewed_it(staff, book):
    anon = Client()
    anon.get("/who/")
    anon.get("/who/")  # a hit for anonymous visitors
    staff.get("/who/")  # a signed-in user's copy of the same URL
    text = _text(staff.get("/cachedeps/", {"path": "/who/"}))
    assert "No cached page known" not in text
    assert "How /who/ was built" in text
    anon.get("/who/")  # the signed-in visit did not evict the anonymous copy
    pages = [p for p in runtime.get_engine().activity.pages() if p.path == "/who/"]
    assert [p.hits for p in pages if p.visitor.startswith(("anonymous", "one copy"))] == [2]


@pytest.mark.memcached
def test_it_renders_with_memcached_down(staff, book, memcached_factory):
    server = memcached_factory()
    with override_settings(CACHES=cache_settings(server.url)):
        try:
            Client().get(f"/book/{book.pk}/")
            server.stop()
            Client().get(f"/book/{book.pk}/")  # served from the database meanwhile
            text = _text(staff.get("/cachedeps/"))
            assert "The store cannot be reached" in text
            assert "Store errors" in text and "Hit rate by kind of entry" in text
            errors = runtime.get_engine().stats()["store_errors"]
            assert errors >= 1 and re.search(rf"Store errors {errors} ", text)
        finally:
            runtime.reset()


@pytest.mark.memcached
def test_store_figures_per_kind_on_cachedeps_serve_and_on_a_memcached_pool(staff, book, memcached_pool):
    served = ServeProcess().start()
    try:
        with override_settings(CACHES=cache_settings(f"memcache://{served.address}")):
            Client().get(f"/book/{book.pk}/")
            Client().get(f"/book/{book.pk}/")
            text = _text(staff.get("/cachedeps/"))
            assert "cachedeps serve at" in text
            assert "Cached entries" in text and "Checkpoints the two feed positions" in text
            assert "All keys" not in text
        runtime.reset()
        pool = ",".join(s.address for s in memcached_pool)
        with override_settings(CACHES=cache_settings(f"memcache://{pool}")):
            Client().get(f"/book/{book.pk}/")
            Client().get(f"/book/{book.pk}/")
            text = _text(staff.get("/cachedeps/"))
            assert "a pool of 3 memcached servers" in text
            assert "All keys" in text  # memcached has no figures per prefix
            # but the hit rates per kind, this process's, are there on every store
            assert re.search(r"Pages whole responses of @cached_view views [1-9]\d* \d+ \d+%", text)
    finally:
        runtime.reset()
        served.stop()
