"""Store URLs: parsed into frozen values, bad parts named, embedded stores shared by name."""

from __future__ import annotations

import dataclasses

import pytest

from cachedeps.config import (
    EmbeddedConfig,
    MemcacheConfig,
    open_store,
    parse_duration,
    parse_size,
    parse_url,
)
from cachedeps.errors import ConfigurationError
from cachedeps.store.embedded import EmbeddedStore


@pytest.mark.parametrize("text, size", [
    ("1000", 1000), ("512k", 512 * 1024), ("64MB", 64 * 2**20), ("1MiB", 2**20), ("2G", 2 * 2**30),
    ("1.5KB", 1536), ("10b", 10),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, seconds", [("0.5", 0.5), ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_embedded_url():
    config = parse_url("embedded://sessions?max_memory=16MB&item_max=2MiB&low_water=0.7&high_water=0.95"
                       "&sweep_interval=250ms&max_dependents=50")
    assert config == EmbeddedConfig(name="sessions", max_memory=16 * 2**20, item_max=2 * 2**20, low_water=0.7,
                                    high_water=0.95, sweep_interval=0.25, max_dependents=50)
    assert parse_url("embedded://") == EmbeddedConfig()
    assert parse_url("embedded://?max_memory=1MB").name == "default"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]


def test_memcache_url():
    config = parse_url("memcache://10.0.0.1:11211,[::1]:11212?timeout=500ms&connect_timeout=2&pool_size=4")
    assert config == MemcacheConfig(servers=(("10.0.0.1", 11211), ("::1", 11212)), timeout=0.5,
                                    connect_timeout=2.0, pool_size=4)
    assert parse_url("memcached://h:1").servers == (("h", 1),)


@pytest.mark.parametrize("url, words", [
    ("nosuch://h:1", ["'nosuch'", "embedded", "memcache", "redis"]),
    ("embedded://?maxmemory=1MB", ["'maxmemory'", "max_memory", "sweep_interval"]),
    ("embedded://?max_memory=lots", ["'lots'", "64MB"]),
    ("embedded://?sweep_interval=soon", ["'soon'", "500ms"]),
    ("embedded://?low_water=0.9&high_water=0.5", ["low_water", "high_water"]),
    ("embedded://?low_water=2", ["'2'", "fraction"]),
    ("memcache://", ["host:port"]),
    ("memcache://host", ["'host'", "host:port"]),
    ("memcache://host:99999", ["'host:99999'"]),
    ("memcache://h:1?retries=3", ["'retries'", "retry_attempts"]),
    ("memcache://h:1?timeout=0", ["timeout", "positive"]),
    ("localhost:11211", ["SCHEME://"]),
])
def test_bad_urls_name_the_bad_part(url, words):
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    for word in words:
        assert word in str(info.value)


def test_same_embedded_url_gives_the_same_store():
    first = open_store("embedded://test-config-same?max_memory=1MB")
    try:
        assert isinstance(first, EmbeddedStore)
        assert open_store("embedded://test-config-same?max_memory=1MiB") is first
        assert open_store(EmbeddedConfig(name="test-config-same", max_memory=2**20)) is first
        other = open_store("embedded://test-config-other?max_memory=1MB")
        assert other is not first
        other.close()
        with pytest.raises(ConfigurationError, match="already open"):
            open_store("embedded://test-config-same?max_memory=2MB")
    finally:
        first.close()
    # A closed store leaves its name free.
    again = open_store("embedded://test-config-same?max_memory=2MB")
    assert again is not first
    again.close()


def test_open_store_overrides():
    store = open_store("embedded://test-config-override", max_memory=2**20)
    try:
        assert store.stats()["limit_maxbytes"] == 2**20
    finally:
        store.close()
    with pytest.raises(ConfigurationError, match="'bogus'|bogus"):
        open_store("embedded://x", bogus=1)


def test_open_memcache_store_needs_no_server_to_open():
    store = open_store("memcache://127.0.0.1:1?connect_timeout=0.2")
    try:
        assert store.name == "memcache://127.0.0.1:1"
    finally:
        store.close()
