"""A page or fragment that read through an uncached path is never stored (issue 9, break 15).

Before, such a render recorded no keys and its entry was stored valid forever: a later
write to the rows it showed never dropped it.
"""

from __future__ import annotations

import pytest
from django.test import Client

from cachedeps.recording import recording
from tests.django.testapp.models import Author, Book

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.django.web.poison_views")]

_KINDS = ["iterator", "random", "raw", "rawqs", "nocache"]


@pytest.fixture
def books(engine):
    ann = Author.objects.create(name="Ann")
    return [Book.objects.create(author=ann, title=t, isbn=t) for t in ("A", "B")]


@pytest.mark.parametrize("prefix", ["titles", "fragment"])
@pytest.mark.parametrize("kind", _KINDS)
def test_a_write_shows_after_an_uncached_read(books, kind, prefix):
    client = Client()
    url = f"/{prefix}/{kind}/"
    assert client.get(url).content.split() == [b"A", b"B"]
    Book.objects.filter(pk=books[0].pk).update(title="Z")
    assert sorted(client.get(url).content.split()) == [b"B", b"Z"]


@pytest.mark.parametrize("prefix", ["titles", "fragment"])
def test_pages_of_cached_reads_are_still_stored(books, prefix, engine):
    client = Client()
    url = f"/{prefix}/cached/"
    events = []
    engine.add_listener(lambda event, key, **detail: events.append((event, key)))
    first = client.get(url).content
    assert client.get(url).content == first
    assert any(e == "hit" and k.startswith(("view.p.", "frag.")) for e, k in events)
    Book.objects.filter(pk=books[0].pk).update(title="Z")
    assert client.get(url).content.split() == [b"Z", b"B"]


@pytest.mark.parametrize("kind", _KINDS)
def test_the_recording_is_poisoned(books, kind):
    from tests.django.web.poison_views import _titles

    with recording() as rec:
        _titles(kind)
    assert rec.poisoned and "uncached statement" in rec.poisoned
    with recording() as rec:
        _titles("cached")
        _titles("cached")  # a hit
    assert rec.poisoned is None and rec.keys


def test_get_or_compute_does_not_store_a_poisoned_value(books, engine):
    from tests.django.web.poison_views import _titles

    calls = []

    def compute():
        calls.append(1)
        return _titles("iterator")

    assert engine.get_or_compute("titles", compute) == ["A", "B"]
    assert engine.get_or_compute("titles", compute) == ["A", "B"]
    assert len(calls) == 2


def test_a_page_built_on_a_dependent_caches_value_is_stored_and_follows_it(engine):
    """Its entry lives under the backend's own key: the page inherits its keys as recorded."""
    from django.core.cache import caches

    caches["default"].set("card:1", "v1", depends_on=["item:1"])
    client = Client()
    first = client.get("/dependent/").content
    assert first.startswith(b"v1 ")
    assert client.get("/dependent/").content == first
    caches["default"].invalidate("item:1")
    caches["default"].set("card:1", "v2", depends_on=["item:1"])
    assert client.get("/dependent/").content.startswith(b"v2 ")


def test_a_second_cache_alias_polls_without_poisoning_the_recording(books, store_url):
    """A CachedepsCache alias other than CACHEDEPS["CACHE"] polls the feed itself: that
    poll is bookkeeping, not a read the page depends on."""
    from django.core.cache import caches
    from django.test.utils import override_settings

    from tests.django.web.conftest import cache_settings

    setting = cache_settings(store_url)
    setting["other"] = {**setting["default"], "KEY_PREFIX": "other"}
    with override_settings(CACHES=setting):
        with recording() as rec:
            caches["other"].set("k", 1, depends_on=["book"])
            assert caches["other"].get("k") == 1
        assert rec.poisoned is None


def test_fragments_of_different_arguments_never_share_an_entry(engine):
    """A fragment is keyed by the exact values of its arguments, never by their repr: two
    books of the same title (``Book.__str__``) are different arguments."""
    from django.template import Context, Template

    ann, bob = Author.objects.create(name="Ann"), Author.objects.create(name="Bob")
    first = Book.objects.create(author=ann, title="Dune", isbn="1")
    second = Book.objects.create(author=bob, title="Dune", isbn="2")
    page = Template('{% load cachedeps %}{% cachedeps "card" book %}{{ book.author.name }}{% endcachedeps %}')
    for _ in range(2):
        assert page.render(Context({"book": first})) == "Ann"
        assert page.render(Context({"book": second})) == "Bob"
    by_pk = Template('{% load cachedeps %}{% cachedeps "card" pk %}{{ pk }}{% endcachedeps %}')
    for _ in range(2):  # exact values: 1 and "1" and True differ
        assert [by_pk.render(Context({"pk": v})) for v in (1, "1", True)] == ["1", "1", "True"]
