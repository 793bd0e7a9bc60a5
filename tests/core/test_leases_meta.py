"""Native leases on the meta protocol (memcached, ``cachedeps serve``) and lease voiding by purges."""

from __future__ import annotations

import threading
import time

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.config import open_store
from cachedeps.keys import safe_key
from cachedeps.leases import Leases
from cachedeps.store.embedded import EmbeddedStore
from tests.server.conftest import ServeProcess

from ._support import herd


@pytest.fixture(scope="module")
def served():
    """One ``cachedeps serve`` for this module."""
    server = ServeProcess("--max-memory", "32MB").start()
    yield server
    server.stop()


def _open_meta(request, kind: str):
    server = request.getfixturevalue("memcached" if kind == "memcached" else "served")
    store = open_store(server.url if kind == "memcached" else f"memcache://{server.address}")
    store.flush_all()
    return store


@pytest.fixture(params=["memcached", "serve"])
def meta_store(request):
    """A RemoteStore to a server speaking the meta protocol, emptied."""
    store = _open_meta(request, request.param)
    yield store
    store.close()


@pytest.fixture(params=["embedded", "memcached", "serve"])
def any_store(request):
    """Every kind of store: embedded (emulated leases, native trees), memcached, serve."""
    store = EmbeddedStore(background=False) if request.param == "embedded" else _open_meta(request, request.param)
    yield store
    store.close()


def test_servers_speaking_meta_get_native_leases(meta_store):
    assert meta_store.meta_leases() is not None
    leases = Leases(meta_store)
    assert leases.mechanism == "undecided"
    assert leases.acquire("l:probe", leases.new_token())
    assert leases.mechanism == "native"
    assert meta_store.get("l:probe") == b""  # the empty item mg N created, not an add'ed token


def test_embedded_store_keeps_emulated_leases():
    store = EmbeddedStore(background=False)
    try:
        cache = Cache(store)
        cache.poll()
        assert cache.get_or_compute("k", lambda: 1) == 1
        assert cache._leases.mechanism == "emulated"
    finally:
        store.close()


def test_fifty_threads_missing_one_key_compute_once(meta_store):
    cache = Cache(meta_store)
    cache.poll()
    calls, results = herd(cache, 50, work=0.1, depends_on=["book:1"])
    assert len(calls) == 1
    assert results == ["value"] * 50
    stats = cache.stats()
    assert stats["lease_wins"] == 1 and stats["lease_timeouts"] == 0
    assert cache._leases.mechanism == "native"
    assert meta_store.get("l:hot") is None  # released
    assert cache.get("hot") == "value"


def test_one_winner_among_racing_acquires(meta_store):
    leases = Leases(meta_store)
    won: list[bool] = []
    barrier = threading.Barrier(20)

    def take() -> None:
        barrier.wait()
        won.append(leases.acquire("l:race", leases.new_token()))

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1


def test_invalidation_during_fill_keeps_the_fill_out(any_store):
    """A purge by another process while the winner computes voids its lease: no late fill."""
    reader = Cache(any_store)
    writer = Cache(any_store)
    reader.poll()
    writer.poll()

    def fn():
        writer.invalidate("book:1")  # commits while the reader's computation runs
        return "old"

    assert reader.get_or_compute("k", fn, depends_on=["book:1"]) == "old"
    assert any_store.get(safe_key("d:", "k")) is None  # the fill did not land
    reader.poll()
    assert reader.get_or_compute("k", lambda: "new", depends_on=["book:1"]) == "new"
    assert reader.get("k") == "new"


def test_purge_voids_the_lease_of_a_stored_entry(any_store):
    """An entry already stored links its next fill's lease: purging the entry voids it."""
    cache = Cache(any_store)
    cache.poll()
    cache.set("k", "v1", depends_on=["book:2"])
    leases = cache._leases
    token = leases.new_token()
    assert leases.acquire("l:k", token)
    cache._trees.link_lease("d:k", "l:k", [], leases.ttl)  # no dependency known up front
    assert leases.holds("l:k", token)
    cache.invalidate("book:2")
    assert not leases.holds("l:k", token)


def test_crashed_winner_lease_expires_and_another_caller_fills(meta_store):
    cache = Cache(meta_store)
    cache.poll()
    cache._leases = Leases(meta_store, ttl=1, min_wait=0.05, max_wait=4.0)
    crashed = Leases(meta_store, ttl=1)
    assert crashed.acquire("l:k", crashed.new_token())  # never released
    calls: list[int] = []

    def fn():
        calls.append(1)
        return "filled"

    started = time.monotonic()
    assert cache.get_or_compute("k", fn) == "filled"
    assert time.monotonic() - started < 3.5
    assert calls == [1]
    assert cache.stats()["lease_timeouts"] == 0
    assert cache.get("k") == "filled"  # the second caller won the lease and filled


def test_md_invalidate_voids_the_holder_and_hands_the_lease_on(meta_store):
    meta = meta_store.meta_leases()
    first, second = Leases(meta_store), Leases(meta_store)
    t1 = first.new_token()
    assert first.acquire("l:v", t1)
    assert not second.acquire("l:v", second.new_token())  # Z: already handed out
    assert meta.void("l:v", 5)  # md I T5
    assert not first.holds("l:v", t1)
    t2 = second.new_token()
    assert second.is_out("l:v") is False  # the stale lease is won by the checker ...
    assert second.acquire("l:v", t2)  # ... and claimed by its next acquire
    first.release("l:v", t1)  # the voided holder leaves the new lease alone
    assert second.holds("l:v", t2)
    second.release("l:v", t2)
    assert meta_store.get("l:v") is None


def test_pool_routes_each_lease_to_its_server(memcached_pool):
    store = open_store("memcache://" + ",".join(s.address for s in memcached_pool))
    try:
        store.flush_all()
        leases = Leases(store)
        keys = [f"l:pool{i}" for i in range(30)]
        tokens = {k: leases.new_token() for k in keys}
        assert all(leases.acquire(k, tokens[k]) for k in keys)
        assert leases.mechanism == "native"
        assert not any(leases.acquire(k, leases.new_token()) for k in keys)
        assert all(leases.holds(k, tokens[k]) for k in keys)
        per_server = store.stats()["servers"]
        assert sum(1 for figures in per_server.values() if figures["curr_items"] > 0) >= 2
        for k in keys:
            leases.release(k, tokens[k])
        assert store.get_many(keys) == {}
    finally:
        store.close()


def test_a_loser_gives_back_a_lease_it_won_while_the_value_arrived(meta_store):
    """The lease check wins a free lease; the value then read makes the loser release it."""
    leases = Leases(meta_store, min_wait=0.01, max_wait=1.0)
    checked: list[int] = []

    def fetch():
        if meta_store.get("l:gone") is not None:  # the check took the lease just now
            checked.append(1)
            return "v"
        return NO_VALUE

    assert leases.wait(fetch, "l:gone", time.monotonic() + 1.0) == ("v", "value")
    assert checked
    assert meta_store.get("l:gone") is None  # given back, not left to block others for its TTL


def test_pool_with_a_dead_server_still_gets_native_leases(memcached_factory):
    alive, dead = memcached_factory(), memcached_factory()
    dead.stop()
    store = open_store(f"memcache://{alive.address},{dead.address}?timeout=200ms")
    try:
        assert store.meta_leases() is not None
    finally:
        store.close()


def test_server_without_meta_commands_keeps_emulated_leases():
    """A server answering ERROR to ``mn`` (memcached before 1.6) is not given meta leases."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_error() -> None:
        conn, _ = listener.accept()
        with conn:
            while conn.recv(4096):
                conn.sendall(b"ERROR\r\n")

    thread = threading.Thread(target=answer_error, daemon=True)
    thread.start()
    store = open_store(f"memcache://127.0.0.1:{port}")
    try:
        assert store.meta_leases() is None
        assert store.meta_leases() is None  # decided once, no second probe needed
    finally:
        store.close()
        listener.close()
