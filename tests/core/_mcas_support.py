"""Stores and worker functions shared by the MCAS and deque tests.

``DictStore`` is a small thread-safe in-process store with memcached's CAS semantics
(unique, never reused CAS ids; negative expiry means already expired) that can list its
live keys, so tests can see everything an operation leaves behind. ``open_store`` opens
the remote store on memcached addresses; the multiprocessing workers live here so that
spawned children can import them.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from typing import Any, Iterable, Mapping

import pytest

from cachedeps.api import RELATIVE_EXPIRY_LIMIT
from cachedeps.config import open_store as open_url

__all__ = [
    "DictStore",
    "open_store",
    "deque_worker",
    "transfer_worker",
    "Crash",
    "CrashingStore",
    "make_store",
    "mcas_serve",
    "STORE_KINDS",
]


def _deadline(expire: float) -> float | None:
    if not expire:
        return None
    if expire < 0:
        return 0.0
    if expire <= RELATIVE_EXPIRY_LIMIT:
        return time.monotonic() + expire
    return time.monotonic() + (expire - time.time())


class DictStore:
    """The part of the store contract MCAS uses, over a dict, with CAS ids and expiry."""

    name = "dict://test"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, int, float | None]] = {}
        self._ids = itertools.count(1)
        self.calls = 0

    def _live(self, key: str) -> tuple[bytes, int, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[2] is not None and item[2] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def _put(self, key: str, value: bytes, expire: float) -> None:
        self._data[key] = (bytes(value), next(self._ids), _deadline(expire))

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self.calls += 1
            item = self._live(key)
            return None if item is None else item[0]

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return {k: v for k, (v, _) in self.gets_many(keys).items()}

    def gets(self, key: str) -> tuple[bytes, int] | None:
        with self._lock:
            self.calls += 1
            item = self._live(key)
            return None if item is None else (item[0], item[1])

    def gets_many(self, keys: Iterable[str]) -> dict[str, tuple[bytes, int]]:
        with self._lock:
            self.calls += 1
            out = {}
            for key in keys:
                item = self._live(key)
                if item is not None:
                    out[key] = (item[0], item[1])
            return out

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        with self._lock:
            self.calls += 1
            self._put(key, value, expire)

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        for key, value in mapping.items():
            self.set(key, value, expire)
        return []

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        with self._lock:
            self.calls += 1
            if self._live(key) is not None:
                return False
            self._put(key, value, expire)
            return True

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        with self._lock:
            self.calls += 1
            item = self._live(key)
            if item is None:
                return None
            if item[1] != cas:
                return False
            self._put(key, value, expire)
            return True

    def touch(self, key: str, expire: float = 0) -> bool:
        with self._lock:
            self.calls += 1
            item = self._live(key)
            if item is None:
                return False
            self._data[key] = (item[0], item[1], _deadline(expire))
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            self.calls += 1
            return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        """Return the live keys (a test helper, not part of the store contract)."""
        with self._lock:
            return [k for k in list(self._data) if self._live(k) is not None]

    def close(self) -> None:
        pass


def open_store(addresses: list[str]) -> Any:
    """Open the library's remote store on memcached ``host:port`` addresses (a pool when several)."""
    # A generous timeout: the test machine is shared and may stall a process briefly.
    return open_url("memcache://" + ",".join(addresses) + "?timeout=5s")


def deque_worker(addresses: list[str], name: str, role: str, ids: list[int], timeout: float) -> list[int]:
    """Produce ``ids`` into the deque ``name``, or consume from it; return what was consumed.

    Producers push on a random end each time; consumers pop from a random end until the
    deque is empty after the parent set ``<name>:done`` (every producer finished).
    """
    from cachedeps.deque import Deque

    store = open_store(addresses)
    deque = Deque.bind(store, name)
    rng = random.Random()
    got: list[int] = []
    if role == "producer":
        for i in ids:
            (deque.append if rng.random() < 0.5 else deque.appendleft)(i)
    else:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append((deque.pop if rng.random() < 0.5 else deque.popleft)())
            except IndexError:
                if store.get(f"{name}:done"):
                    break
                time.sleep(0.001)
    store.close()
    return got


def transfer_worker(
    addresses: list[str], keys: list[str], transfers: int, seed: int, beacon: str | None = None
) -> tuple[int, int]:
    """Move random amounts from one account to one or two others with MCAS.

    Sets ``beacon`` (when given) after the first transfer. Returns (done, failed).
    """
    from cachedeps.mcas import mcas, mcas_get_many

    store = open_store(addresses)
    rng = random.Random(seed)
    done = failed = 0
    while done < transfers:
        chosen = rng.sample(keys, rng.choice([2, 3]))
        entries = mcas_get_many(store, chosen)
        source, targets = entries[chosen[0]], [entries[k] for k in chosen[1:]]
        amounts = [min(rng.randint(1, 10), source.value // len(targets)) for _ in targets]
        updates = [(source, source.value - sum(amounts))]
        updates += [(t, t.value + a) for t, a in zip(targets, amounts)]
        if mcas(store, updates):
            done += 1
            if beacon is not None and done == 1:
                store.set(beacon, b"1")
        else:
            failed += 1
    store.close()
    return done, failed


class Crash(Exception):
    """Raised by :class:`CrashingStore` to stop a caller in the middle of its work."""


class CrashingStore:
    """Wrap a store and raise :class:`Crash` on the ``after``-th write (cas/add/delete/touch).

    The caller stops exactly there, as a process killed at that point would.
    """

    _WRITES = frozenset({"cas", "add", "delete", "touch", "set"})

    def __init__(self, store: Any, after: int) -> None:
        self._store = store
        self._left = after
        self.name = store.name

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._store, attr)
        if attr not in self._WRITES:
            return target

        def write(*args: Any, **kwargs: Any) -> Any:
            self._left -= 1
            if self._left <= 0:
                raise Crash(attr)
            return target(*args, **kwargs)

        return write


@pytest.fixture(scope="module")
def mcas_serve():
    """A ``cachedeps serve`` process for one test module."""
    from tests.server.conftest import ServeProcess

    server = ServeProcess("--max-memory", "32MB").start()
    yield server
    server.stop()


def make_store(kind: str, request: Any) -> Any:
    """Return a store of ``kind``: dict, embedded, memcached, pool or serve."""

    if kind == "dict":
        return DictStore()
    if kind == "embedded":
        embedded = pytest.importorskip("cachedeps.store.embedded")
        store = embedded.EmbeddedStore("mcas-test", background=False)
        request.addfinalizer(store.close)
        return store
    fixture = {"memcached": "memcached", "pool": "memcached_pool", "serve": "mcas_serve"}[kind]
    servers = request.getfixturevalue(fixture)
    servers = servers if isinstance(servers, list) else [servers]
    store = open_store([s.address for s in servers])
    request.addfinalizer(store.close)
    return store


STORE_KINDS = ["dict", "embedded", "memcached", "pool", "serve"]
