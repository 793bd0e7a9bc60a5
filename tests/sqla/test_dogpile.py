"""dogpile.cache's own backend test suites, run on the cachedeps backend (embedded and memcached)."""

from __future__ import annotations

import pytest
from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from dogpile.testing.fixtures import _GenericBackendTestSuite, _GenericMutexTestSuite

from cachedeps.errors import ConfigurationError, SerializationError
from cachedeps.store.embedded import EmbeddedStore
from sqla_cachedeps.dogpile import CachedepsBackend
from tests.conftest import MemcachedProcess, memcached_available, require


class TestEmbeddedBackend(_GenericBackendTestSuite):
    backend = "cachedeps"
    config_args = {"arguments": {"url": "embedded://"}}


class TestEmbeddedMutex(_GenericMutexTestSuite):
    backend = "cachedeps"
    config_args = {"arguments": {"store": EmbeddedStore(), "distributed_lock": True}}


class _Memcached:
    _server: MemcachedProcess | None = None

    @classmethod
    def setup_class(cls):
        require(memcached_available(), "memcached is not installed (apt-get install memcached)")
        cls._server = MemcachedProcess().start()
        cls.config_args = {"arguments": {"url": cls._server.url, **cls.extra}}
        super().setup_class()

    @classmethod
    def teardown_class(cls):
        if cls._server is not None:
            cls._server.stop()


class TestMemcachedBackend(_Memcached, _GenericBackendTestSuite):
    backend = "cachedeps"
    extra: dict = {}


class TestMemcachedMutex(_Memcached, _GenericMutexTestSuite):
    backend = "cachedeps"
    extra = {"distributed_lock": True}


def test_configured_by_entry_point_name_without_pickle():
    region = make_region().configure("cachedeps", arguments={"url": "embedded://"})
    assert isinstance(region.backend, CachedepsBackend)
    region.set("a key with spaces", {"n": [1, 2]})
    assert region.get("a key with spaces") == {"n": [1, 2]}
    with pytest.raises(SerializationError):
        region.set("k", object())  # msgpack refuses it; pickle is never used silently
    assert region.get("k") is NO_VALUE


def test_needs_exactly_one_of_url_or_store():
    with pytest.raises(ConfigurationError, match="exactly one"):
        CachedepsBackend({})
    with pytest.raises(ConfigurationError, match="exactly one"):
        CachedepsBackend({"url": "embedded://", "store": EmbeddedStore()})
