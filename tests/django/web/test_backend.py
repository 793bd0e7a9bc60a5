"""The Django cache API on CachedepsCache, ported from Django's ``BaseCacheTests``.

Runs over the embedded store and a real memcached.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import pickle
import time
import warnings

import pytest
from django.core.cache import CacheKeyWarning, InvalidCacheKey, caches
from django.http import HttpResponse
from django.test import override_settings

from .conftest import cache_settings

pytestmark = pytest.mark.django_db


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError("not picklable")


def custom_key_func(key, key_prefix, version):
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def test_simple_get_set(django_cache):
    django_cache.set("key", "value")
    assert django_cache.get("key") == "value"
    assert django_cache.get("missing") is None
    assert django_cache.get("missing", "default") == "default"


def test_default_used_when_none_is_set(django_cache):
    django_cache.set("key_default_none", None)
    assert django_cache.get("key_default_none", default="default") is None


def test_add(django_cache):
    assert django_cache.add("addkey1", "value") is True
    assert django_cache.add("addkey1", "newvalue") is False
    assert django_cache.get("addkey1") == "value"


def test_non_existent_and_has_key(django_cache):
    django_cache.set("hello1", "goodbye1")
    assert django_cache.has_key("hello1")
    assert not django_cache.has_key("goodbye1")
    django_cache.set("no_expiry", "here", None)
    assert django_cache.has_key("no_expiry")
    django_cache.set("null", None)
    assert django_cache.has_key("null")
    assert "hello1" in django_cache


def test_get_many(django_cache):
    django_cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert django_cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert django_cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert django_cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    assert django_cache.get_many([]) == {}


def test_delete(django_cache):
    django_cache.set_many({"key1": "spam", "key2": "eggs"})
    assert django_cache.delete("key1") is True
    assert django_cache.get("key1") is None
    assert django_cache.get("key2") == "eggs"
    assert django_cache.delete("key1") is False


def test_incr_decr(django_cache):
    django_cache.set("answer", 41)
    assert django_cache.incr("answer") == 42
    assert django_cache.get("answer") == 42
    assert django_cache.incr("answer", 10) == 52
    assert django_cache.incr("answer", -10) == 42
    assert django_cache.decr("answer") == 41
    assert django_cache.decr("answer", -10) == 51
    with pytest.raises(ValueError):
        django_cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        django_cache.decr("does_not_exist")
    django_cache.set("null", None)
    with pytest.raises((ValueError, TypeError)):
        django_cache.incr("null")


def test_incr_is_atomic_in_the_store(django_cache):
    import threading

    django_cache.set("counter", 0)

    def bump():
        backend = caches["default"]  # one backend per thread, as Django makes them
        for _ in range(200):
            backend.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert django_cache.get("counter") == 800


def test_negative_and_huge_ints_round_trip_and_incr(django_cache):
    django_cache.set("neg", -5)
    assert django_cache.get("neg") == -5
    assert django_cache.incr("neg", 2) == -3
    django_cache.set("huge", 2**70)
    assert django_cache.get("huge") == 2**70


def test_data_types(django_cache):
    stuff = {
        "string": "this is a string",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": custom_key_func,
        "class": Unpicklable,
        "decimal": decimal.Decimal("1.10"),
        "date": datetime.date(2024, 2, 29),
        "bytes": b"\x00\xffraw",
        "set": {1, 2},
    }
    django_cache.set("stuff", stuff)
    assert django_cache.get("stuff") == stuff
    assert django_cache.get("stuff")["bool"] is True


def test_cache_responses_like_cache_page(django_cache):
    response = HttpResponse("<p>hello</p>", headers={"X-Test": "1"})
    django_cache.set("response", response)
    got = django_cache.get("response")
    assert got.content == b"<p>hello</p>"
    assert got.headers["X-Test"] == "1"


def test_unpicklable_raises(django_cache):
    # Django's own cache tests: set/add of an unpicklable value raise pickle.PickleError.
    with pytest.raises(pickle.PickleError):
        django_cache.set("unpicklable", Unpicklable())
    with pytest.raises(pickle.PickleError):
        django_cache.add("unpicklable", Unpicklable())
    with pytest.raises(pickle.PickleError):
        django_cache.set("unpicklable", Unpicklable(), depends_on=["book:1"])
    assert django_cache.get("unpicklable") is None


def test_expiration(django_cache):
    django_cache.set("expire1", "very quickly", 1)
    django_cache.set("expire2", "very quickly", 1)
    django_cache.set("expire3", "very quickly", 1)
    time.sleep(2.1)
    assert django_cache.get("expire1") is None
    assert django_cache.add("expire2", "newvalue") is True
    assert django_cache.get("expire2") == "newvalue"
    assert not django_cache.has_key("expire3")


def test_touch(django_cache):
    django_cache.set("expire1", "very quickly", timeout=1)
    assert django_cache.touch("expire1", timeout=4) is True
    time.sleep(2.1)
    assert django_cache.has_key("expire1")
    assert django_cache.touch("expire1", timeout=None) is True
    assert django_cache.touch("nonexistent") is False


def test_zero_timeout_means_not_stored(django_cache):
    django_cache.set("key1", "eggs", 0)
    assert django_cache.get("key1") is None
    django_cache.add("key2", "ham", 0)
    assert django_cache.get("key2") is None
    django_cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert django_cache.get("key3") is None


def test_forever_and_long_timeouts(django_cache):
    django_cache.set("key1", "eggs", None)
    assert django_cache.get("key1") == "eggs"
    django_cache.set("key2", "ham", 60 * 60 * 24 * 365)  # beyond 30 days: absolute
    assert django_cache.get("key2") == "ham"
    assert django_cache.add("key2", "newvalue", None) is False


def test_set_many_and_delete_many(django_cache):
    assert django_cache.set_many({"key1": "spam", "key2": "eggs"}) == []
    assert django_cache.get("key1") == "spam"
    django_cache.set("key3", "ham")
    django_cache.delete_many(["key1", "key2"])
    assert django_cache.get("key1") is None and django_cache.get("key2") is None
    assert django_cache.get("key3") == "ham"
    django_cache.delete_many([])


def test_clear(django_cache):
    django_cache.set_many({"key1": "spam", "key2": "eggs"})
    django_cache.clear()
    assert django_cache.get("key1") is None and django_cache.get("key2") is None


def test_get_or_set(django_cache):
    assert django_cache.get_or_set("projector", 42) == 42
    assert django_cache.get("projector") == 42
    assert django_cache.get_or_set("projector", 43) == 42
    assert django_cache.get_or_set("callable", lambda: "value") == "value"
    assert django_cache.get_or_set("null", None) is None
    assert django_cache.get_or_set("null", "default") is None


def test_versions(django_cache):
    django_cache.set("answer1", 42, version=2)
    assert django_cache.get("answer1") is None
    assert django_cache.get("answer1", version=2) == 42
    assert django_cache.incr_version("answer1", version=2) == 3
    assert django_cache.get("answer1", version=2) is None
    assert django_cache.get("answer1", version=3) == 42
    assert django_cache.decr_version("answer1", version=3) == 2
    assert django_cache.get("answer1", version=2) == 42
    with pytest.raises(ValueError):
        django_cache.incr_version("does_not_exist")


def test_default_version_setting(store_url):
    with override_settings(CACHES=cache_settings(store_url, VERSION=2)):
        cache = caches["default"]
        cache.clear()
        cache.set("answer", 42)
        assert cache.get("answer") == 42
        assert cache.get("answer", version=1) is None
        assert cache.get("answer", version=2) == 42


def test_key_prefix_separates_caches(store_url):
    caches_setting = {
        "default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": store_url},
        "prefixed": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": store_url,
                     "KEY_PREFIX": "cacheprefix"},
    }
    with override_settings(CACHES=caches_setting):
        caches["default"].clear()
        caches["default"].set("somekey", "value")
        assert caches["prefixed"].get("somekey") is None
        caches["prefixed"].set("somekey", "other")
        assert caches["default"].get("somekey") == "value"
        assert caches["prefixed"].get("somekey") == "other"


def test_key_function(store_url):
    with override_settings(CACHES=cache_settings(store_url, KEY_FUNCTION=custom_key_func)):
        cache = caches["default"]
        cache.clear()
        cache.set("answer1", 42)
        assert cache.make_key("answer1") == "CUSTOM--1-answer1"
        assert cache.get("answer1") == 42
        assert cache.store.get("CUSTOM--1-answer1") == b"42"


@pytest.mark.parametrize("key", ["key with spaces", "key\x00ctrl", "a" * 251])
def test_memcache_invalid_keys_raise(django_cache, key):
    with pytest.raises(InvalidCacheKey):
        django_cache.set(key, "value")
    with pytest.raises(InvalidCacheKey):
        django_cache.get(key)
    with pytest.raises(InvalidCacheKey):
        django_cache.get_many(["fine", key])


def test_long_key_through_key_function_is_rejected_not_truncated(django_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        with pytest.raises(InvalidCacheKey, match="250"):
            django_cache.set("x" * 250, "value")  # 250 + ':1:' prefix


def test_async_variants(django_cache):
    from asgiref.sync import async_to_sync

    async def run():
        await django_cache.aset("akey", "avalue")
        assert await django_cache.aget("akey") == "avalue"
        assert await django_cache.aadd("akey", "other") is False
        assert await django_cache.ahas_key("akey")
        await django_cache.aset_many({"a1": 1, "a2": 2})
        assert await django_cache.aget_many(["a1", "a2", "a3"]) == {"a1": 1, "a2": 2}
        assert await django_cache.aincr("a1", 5) == 6
        assert await django_cache.adecr("a1") == 5
        assert await django_cache.atouch("a2", 10) is True
        assert await django_cache.aget_or_set("a4", "x") == "x"
        assert await django_cache.adelete("a1") is True
        await django_cache.adelete_many(["a2"])
        assert await django_cache.aget("a2") is None
        await django_cache.aclear()
        assert await django_cache.aget("akey") is None
        await django_cache.aclose()

    async_to_sync(run)()


def test_close_keeps_the_cache_usable(django_cache):
    django_cache.set("k", "v")
    django_cache.close()
    assert django_cache.get("k") == "v"


def test_values_are_signed_pickles(django_cache):
    django_cache.set("obj", {"a": 1})
    raw = django_cache.store.get(django_cache.make_key("obj"))
    assert raw.startswith(b"P")
    assert b"\x80" in raw  # pickle inside, but behind a signature


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/cachedeps-pwned",))


@pytest.mark.parametrize("forge", ["tagged", "raw", "resigned"])
def test_poisoned_entry_is_a_miss_and_a_log_line_never_unpickled(django_cache, caplog, forge, tmp_path):
    import os

    marker = "/tmp/cachedeps-pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    payload = pickle.dumps(_Exploit())
    if forge == "tagged":
        data = b"P" + payload
    elif forge == "raw":
        data = payload
    else:
        signer = type(django_cache._serializer())(b"not-the-key-derived-from-this-SECRET_KEY")
        data = b"P" + signer.dumps(_Exploit())
    key = django_cache.make_key("victim")
    django_cache.store.set(key, data)
    with caplog.at_level(logging.WARNING, logger="django_cachedeps.backend"):
        assert django_cache.get("victim", "miss") == "miss"
        assert django_cache.get_many(["victim"]) == {}
    assert not os.path.exists(marker)
    assert any("victim" in r.getMessage() for r in caplog.records)


def test_another_secret_key_cannot_read_entries(store_url):
    with override_settings(CACHES=cache_settings(store_url), SECRET_KEY="first-secret"):
        caches["default"].clear()
        caches["default"].set("obj", ["secret"])
    with override_settings(CACHES=cache_settings(store_url), SECRET_KEY="second-secret"):
        assert caches["default"].get("obj") is None
