"""``@cached_view`` and ``{% cachedeps %}``: hits, invalidation by dependency, Vary and users."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from . import views

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.urls("tests.django.web.views")]


@pytest.fixture
def client():
    return Client()


def invalidate(*keys):
    """Write through the feed as an ORM write would, committed."""
    caches["default"].invalidate(*keys)


def test_second_request_is_a_hit_with_no_query_but_the_poll(client):
    first = client.get("/item/1/")
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        second = client.get("/item/1/")
    assert second.content == first.content
    assert [q["sql"] for q in ctx.captured_queries if "cachedeps_change" not in q["sql"]] == []
    assert len(ctx.captured_queries) <= 1  # the feed poll


def test_write_to_a_dependency_drops_the_page(client):
    first = client.get("/item/1/").content
    invalidate("item:1")
    second = client.get("/item/1/").content
    assert second != first
    assert client.get("/item/1/").content == second


def test_write_to_another_row_keeps_the_page(client):
    first = client.get("/item/1/").content
    invalidate("item:2")
    assert client.get("/item/1/").content == first


def test_write_to_the_whole_table_drops_the_page(client):
    first = client.get("/item/1/").content
    invalidate("item:*")
    assert client.get("/item/1/").content != first


def test_rolled_back_invalidation_keeps_the_page(client):
    first = client.get("/item/1/").content

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        invalidate("item:1")
        raise Rollback
    assert client.get("/item/1/").content == first


def test_query_string_is_part_of_the_key(client):
    a = client.get("/item/1/?q=a").content
    b = client.get("/item/1/?q=b").content
    assert a != b and b"q=a" in a and b"q=b" in b
    assert client.get("/item/1/?q=a").content == a


def test_vary_header_separates_entries(client):
    en = client.get("/lang/", HTTP_ACCEPT_LANGUAGE="en").content
    fr = client.get("/lang/", HTTP_ACCEPT_LANGUAGE="fr").content
    assert en.startswith(b"en") and fr.startswith(b"fr")
    assert client.get("/lang/", HTTP_ACCEPT_LANGUAGE="en").content == en
    assert client.get("/lang/", HTTP_ACCEPT_LANGUAGE="fr").content == fr


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
def test_sessions_never_share_a_page():
    # Signed-cookie sessions: the session is the cookie the page varies on. (A database
    # session is read with a query no key covers, so such a page is not stored at all.)
    alice, bob = Client(), Client()
    for c, name in ((alice, "alice"), (bob, "bob")):
        session = c.session
        session["name"] = name
        session.save()
        c.cookies["sessionid"] = session.session_key
    a = alice.get("/who/")
    b = bob.get("/who/")
    assert b"hello alice" in a.content and b"hello bob" in b.content
    assert alice.get("/who/").content == a.content
    assert bob.get("/who/").content == b.content
    assert "Cookie" in alice.get("/who/").headers.get("Vary", "")


@pytest.mark.parametrize("path", ["/private/", "/cookie/", "/missing/"])
def test_uncacheable_responses_are_not_stored(client, path):
    first = client.get(path).content
    assert client.get(path).content != first


def test_a_database_session_page_is_not_stored():
    """Its data may change under the same cookie: the read of the session poisons the page."""
    alice = Client()
    session = alice.session
    session["name"] = "alice"
    session.save()
    alice.cookies["sessionid"] = session.session_key
    assert b"hello alice" in alice.get("/who/").content
    session["name"] = "ally"
    session.save()  # same session key, same cookie
    assert b"hello ally" in alice.get("/who/").content


def test_post_is_never_served_from_the_cache(client):
    client.get("/item/1/")
    before = views.CALLS["n"]
    client.post("/item/1/")
    assert views.CALLS["n"] == before + 1


def test_async_view(client):
    first = client.get("/async/3/").content
    assert client.get("/async/3/").content == first
    invalidate("item:3")
    assert client.get("/async/3/").content != first


def test_nested_fragments_pass_dependencies_outwards(client):
    first = client.get("/fragments/5/").content
    assert client.get("/fragments/5/").content == first  # both fragments hit
    invalidate("item:6")
    assert client.get("/fragments/5/").content == first
    invalidate("item:5")
    third = client.get("/fragments/5/").content
    assert third != first  # the outer fragment depended on the inner one's key


def test_inner_hit_still_records_into_a_new_outer(client):
    from django_cachedeps.runtime import get_engine
    from django_cachedeps.templatetags.cachedeps import fragment_key

    client.get("/fragments/7/")
    get_engine().delete(fragment_key("outer", []))  # outer gone, inner still cached
    client.get("/fragments/7/")  # outer re-rendered around an inner hit
    page = client.get("/fragments/7/").content
    invalidate("item:7")
    assert client.get("/fragments/7/").content != page


def test_disabled_means_no_caching(client):
    with override_settings(CACHEDEPS={"CACHE": "default", "ENABLED": False}):
        first = client.get("/item/1/").content
        assert client.get("/item/1/").content != first


_WITH_LOCALE = [*__import__("tests.django.settings", fromlist=["MIDDLEWARE"]).MIDDLEWARE[:3],
                "django.middleware.locale.LocaleMiddleware",
                *__import__("tests.django.settings", fromlist=["MIDDLEWARE"]).MIDDLEWARE[3:]]


@override_settings(USE_I18N=True, MIDDLEWARE=_WITH_LOCALE, LANGUAGE_CODE="en")
def test_the_language_cookie_picks_the_cached_page_as_cache_page_does():
    english, french = Client(), Client()
    french.cookies["django_language"] = "fr"
    en = english.get("/language/").content
    fr = french.get("/language/").content
    assert en.startswith(b"language en") and fr.startswith(b"language fr")
    assert french.get("/language/").content == fr  # a hit, in French
    assert english.get("/language/").content == en


@override_settings(USE_I18N=True, MIDDLEWARE=_WITH_LOCALE, LANGUAGE_CODE="en")
def test_a_fragment_is_kept_per_language():
    english, french = Client(), Client()
    french.cookies["django_language"] = "fr"
    assert english.get("/language-fragment/").content == b"en"
    assert french.get("/language-fragment/").content == b"fr"
    assert english.get("/language-fragment/").content == b"en"


def test_vary_cookie_set_by_the_view_varies_on_the_cookies(client):
    dark = Client()
    dark.cookies["theme"] = "dark"
    light = client.get("/vary-cookie/").content
    assert dark.get("/vary-cookie/").content.startswith(b"theme dark")
    assert client.get("/vary-cookie/").content == light


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
                   MIDDLEWARE=[*_WITH_LOCALE, "django.middleware.csrf.CsrfViewMiddleware"])
def test_one_kind_of_visitor_does_not_evict_the_others_page():
    guest, member = Client(), Client()
    session = member.session
    session["name"] = "alice"
    session.save()
    member.cookies["sessionid"] = session.session_key
    g = guest.get("/kinds/").content
    member.get("/kinds/")  # sets the CSRF cookie: not stored yet
    m = member.get("/kinds/").content
    assert g.startswith(b"guest") and m.startswith(b"member alice")
    # Each kind's page stays cached while the other kind is served: no re-render.
    for _ in range(2):
        assert guest.get("/kinds/").content == g
        assert member.get("/kinds/").content == m
