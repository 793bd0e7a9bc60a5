"""Fixtures of the web-layer tests: a CachedepsCache on the embedded store, memcached or Redis."""

from __future__ import annotations

import itertools

import pytest
from django.test import override_settings

BACKEND = "django_cachedeps.backend.CachedepsCache"
_names = itertools.count()


def cache_settings(location: str, **extra: object) -> dict:
    """Return a CACHES setting with one CachedepsCache alias, ``default``."""
    return {"default": {"BACKEND": BACKEND, "LOCATION": location, **extra}}


@pytest.fixture(params=["embedded", "memcached", "redis"])
def store_url(request) -> str:
    """A store URL: a fresh embedded store, or the session's memcached or redis-server (flushed)."""
    if request.param == "embedded":
        return f"embedded://web{next(_names)}?max_memory=16MB"
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url
    server = request.getfixturevalue("memcached")
    return server.url


@pytest.fixture
def django_cache(store_url):
    """The ``default`` cache, a CachedepsCache on ``store_url``, emptied."""
    from django.core.cache import caches

    with override_settings(CACHES=cache_settings(store_url)):
        cache = caches["default"]
        cache.clear()
        yield cache
        cache.clear()
