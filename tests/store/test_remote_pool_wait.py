"""The remote store's connection pools: more threads than connections wait, then fail clearly."""

from __future__ import annotations

import threading
import time

import pytest

from cachedeps.config import open_store
from cachedeps.errors import BackendUnavailable

pytestmark = pytest.mark.memcached

_THREADS = 64
_OPS = 40


def _hammer(store, prefix: str) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(_THREADS)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(_OPS):
                key = f"{prefix}:{n}:{i % 4}"
                store.set(key, b"x" * 64)
                assert store.get(key) == b"x" * 64
                store.get_many([key, f"{prefix}:{(n + 1) % _THREADS}:0"])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_threads_share_a_small_pool_on_one_server(memcached):
    store = open_store(memcached.url + "?pool_size=4&timeout=5")
    try:
        assert _hammer(store, "pw1") == []
    finally:
        store.close()


def test_many_threads_share_small_pools_on_several_servers(memcached_pool):
    url = "memcache://" + ",".join(s.address for s in memcached_pool) + "?pool_size=2&timeout=5"
    store = open_store(url)
    try:
        assert _hammer(store, "pw3") == []
    finally:
        store.close()


def test_an_exhausted_pool_raises_backend_unavailable_after_the_timeout(memcached):
    store = open_store(memcached.url + "?pool_size=2&timeout=200ms")
    pool = store._client.client_pool
    held = [pool.get(), pool.get()]  # every connection busy
    try:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            store.get("pw:busy")
        waited = time.monotonic() - start
        assert 0.15 <= waited < 2.0
        assert info.value.address == memcached.address
        assert "pool_size" in str(info.value) and memcached.address in str(info.value)
        pool.release(held.pop())  # a connection comes back: the store works again
        store.set("pw:busy", b"v")
        assert store.get("pw:busy") == b"v"
    finally:
        for conn in held:
            pool.release(conn)
        store.close()


def test_a_waiting_caller_gets_the_connection_released_during_its_wait(memcached):
    store = open_store(memcached.url + "?pool_size=1&timeout=2")
    pool = store._client.client_pool
    conn = pool.get()
    threading.Timer(0.1, pool.release, args=(conn,)).start()
    try:
        store.set("pw:handoff", b"v")
        assert store.get("pw:handoff") == b"v"
    finally:
        store.close()


def test_a_busy_server_in_a_hash_pool_is_not_taken_out_of_the_ring(memcached_pool):
    url = "memcache://" + ",".join(s.address for s in memcached_pool) + "?pool_size=1&timeout=200ms"
    store = open_store(url)
    key = "pw:hash-busy"
    address = store._address_of(key)
    client = next(c for c in store._client.clients.values() if f"{c.server[0]}:{c.server[1]}" == address)
    conn = client.client_pool.get()
    try:
        with pytest.raises(BackendUnavailable) as info:
            store.get(key)
        assert "pool_size" in str(info.value) and info.value.address == address
    finally:
        client.client_pool.release(conn)
    store.set(key, b"v")  # the server stayed in the ring: its keys still work at once
    assert store.get(key) == b"v"
    store.close()
