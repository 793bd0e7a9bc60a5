"""Leases: a herd of misses computes once; losers wait, then compute without filling."""

from __future__ import annotations


from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.leases import Leases

from ._support import herd


def test_fifty_threads_missing_one_key_compute_once(embedded):
    cache = Cache(embedded)
    cache.poll()
    calls, results = herd(cache, 50, work=0.05, record="hot:1")
    assert len(calls) == 1
    assert results == ["value"] * 50
    assert cache.stats()["lease_waits"] == 49
    assert embedded.get("l:hot") is None  # released


def test_fifty_threads_on_a_store_without_native_trees(dictstore):
    cache = Cache(dictstore)
    cache.poll()
    calls, results = herd(cache, 50, work=0.05, record="hot:1")
    assert len(calls) == 1 and results == ["value"] * 50


def test_loser_computes_without_filling_when_the_holder_is_slow(embedded):
    cache = Cache(embedded)
    cache.poll()
    cache._leases = Leases(embedded, min_wait=0.02, max_wait=0.02)
    assert cache._leases.acquire("l:k", b"someone-else")
    value = cache.get_or_compute("k", lambda: 42)
    assert value == 42
    assert cache.get("k") is NO_VALUE  # the loser did not fill
    assert cache.stats()["lease_timeouts"] == 1


def test_voided_lease_stops_the_fill(embedded):
    """An invalidation during the computation deletes the lease: the late fill is dropped."""
    cache = Cache(embedded)
    cache.poll()

    def fn():
        cache.delete("k")  # stands for a purge voiding the lease mid-computation
        return "late"

    assert cache.get_or_compute("k", fn) == "late"
    assert cache.get("k") is NO_VALUE


def test_failing_computation_releases_the_lease(embedded):
    cache = Cache(embedded)
    cache.poll()

    def boom():
        raise RuntimeError("db down")

    try:
        cache.get_or_compute("k", boom)
    except RuntimeError:
        pass
    assert embedded.get("l:k") is None
    assert cache.get_or_compute("k", lambda: 1) == 1
