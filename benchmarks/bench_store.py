"""Store speed: get and set of 100-byte values on the embedded store, Django's
LocMemCache, pymemcache against a local memcached and redis-py against a local
redis-server; ratios embedded / LocMemCache. The networked stores also run ``get_many`` of
100 keys (calls/s), and every store purges an entry with 10, 1,000 and 100,000 dependents.

Throughput is the best of many passes of one operation over 1,000 warm keys; latency
percentiles come from timing single calls (they include about 0.1 µs of timer overhead).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Any, Callable

__all__ = ["main"]

VALUE = b"v" * 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throughput(op: Callable[[str], Any], keys: list[str], rounds: int) -> float:
    # The best of many short passes: the machine may be shared, and a pass that another
    # process interrupted says nothing about the store.
    clock = time.perf_counter
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for key in keys:
            op(key)
        best = min(best, clock() - start)
    return len(keys) / best


def _latency(op: Callable[[str], Any], keys: list[str], samples: int) -> tuple[float, float]:
    clock = time.perf_counter_ns
    times = []
    n = len(keys)
    for i in range(samples):
        key = keys[i % n]
        t0 = clock()
        op(key)
        times.append(clock() - t0)
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000


def _measure(get: Callable[[str], Any], set_: Callable[[str, bytes], Any], keys: list[str],
             rounds: int, samples: int, get_many: Callable[[list[str]], Any] | None = None,
             ) -> dict[str, tuple[float, float, float]]:
    for key in keys:
        set_(key, VALUE)
    ops: list[tuple[str, Callable[[str], Any]]] = [("get", get), ("set", lambda k: set_(k, VALUE))]
    if get_many is not None:
        batch = keys[:100]
        ops.append(("get_many", lambda k: get_many(batch)))
    out = {}
    for name, op in ops:
        _throughput(op, keys, 1)
        best = _throughput(op, keys, rounds)
        p50, p99 = _latency(op, keys, samples)
        out[name] = (best, p50, p99)
    return out


def _locmem():
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.core.cache.backends.locmem import LocMemCache

    return LocMemCache("bench", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


def _start(args: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc


def _purge_native(store: Any, n: int) -> float:
    """Seconds to purge a parent with ``n`` dependents on a native dependency store."""
    children = [f"d:p:{i}" for i in range(n)]
    for i in range(0, n, 1000):
        chunk = children[i : i + 1000]
        store.set_many({c: VALUE for c in chunk})
        store.link("t:p", chunk)
    start = time.perf_counter()
    deleted = store.invalidate(["t:p"])
    took = time.perf_counter() - start
    assert deleted == n, (deleted, n)
    return took


def _purge_emulated(store: Any, n: int) -> float | None:
    """Seconds to purge a node of ``n`` dependents with the memcached emulation, or None when
    memcached cannot hold the node (its 1 MiB item limit)."""
    from cachedeps.deps import DependencyTrees

    trees = DependencyTrees(store)
    children = [f"d:p:{i}" for i in range(n)]
    node = b" " + " ".join(children).encode()
    for i in range(0, n, 1000):
        store.set_many({c: VALUE for c in children[i : i + 1000]})
    try:
        store.set(trees.node("p"), node)
    except Exception:
        return None
    start = time.perf_counter()
    trees.purge(["p"])
    took = time.perf_counter() - start
    assert not store.get_many(children[:100])
    return took


def main(quick: bool = False) -> None:
    """Print ops/s and p50/p99 latency per store and operation, and the ratios."""
    from cachedeps.store.embedded import EmbeddedStore

    keys = [f"bench:{i}" for i in range(1000)]
    rounds = 20 if quick else 200
    samples = 20_000 if quick else 200_000
    results: dict[str, dict[str, tuple[float, float, float]]] = {}

    embedded = EmbeddedStore("bench")
    results["embedded"] = _measure(embedded.get, embedded.set, keys, rounds, samples)
    embedded.close()
    sizes = (10, 1000, 100_000)
    purges: dict[str, list[float | None]] = {}
    embedded = EmbeddedStore("bench-purge", max_dependents=200_000, max_memory=512 * 2**20)
    purges["embedded"] = [_purge_native(embedded, n) for n in sizes]
    embedded.close()

    locmem = _locmem()
    results["LocMemCache"] = _measure(locmem.get, locmem.set, keys, rounds, samples)

    note = ""
    binary = shutil.which("memcached")
    if binary:
        from cachedeps.store.remote import RemoteStore

        port = _free_port()
        proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-u", "root"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.02)
            remote = RemoteStore([("127.0.0.1", port)])
            results["memcached"] = _measure(remote.get, remote.set, keys[:200], 5, samples // 20,
                                            get_many=remote.get_many)
            remote.flush_all()
            purges["memcached"] = [_purge_emulated(remote, n) for n in sizes]
            remote.close()
        finally:
            proc.kill()
            proc.wait()
    else:
        note = "(memcached not installed: its column is left out)"
    binary = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        binary = None
    if binary:
        from cachedeps.config import open_store

        port = _free_port()
        proc = _start([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                       "--protected-mode", "no"], port)
        try:
            # no bound on a key's dependents, as the embedded store above: the purge of all N is timed
            rstore: Any = open_store(f"redis://127.0.0.1:{port}/0?max_dependents=0")
            results["redis"] = _measure(rstore.get, rstore.set, keys[:200], 5, samples // 20,
                                        get_many=rstore.get_many)
            rstore.flush_all()
            purges["redis"] = [_purge_native(rstore, n) for n in sizes]
            rstore.close()
        finally:
            proc.kill()
            proc.wait()
    else:
        note += " (redis-server or redis-py not installed: the redis column is left out)"

    print(f"{'store':<14}{'op':<5}{'ops/s':>12}{'p50 µs':>10}{'p99 µs':>10}")
    for store, figures in results.items():
        for op, (ops, p50, p99) in figures.items():
            print(f"{store:<14}{op:<5}{ops:>12,.0f}{p50:>10.2f}{p99:>10.2f}")
    print("\npurge of an entry with N dependents (ms)")
    print(f"{'store':<14}" + "".join(f"{n:>12,}" for n in sizes))
    for store, times in purges.items():
        cells = "".join(f"{t * 1000:>12.2f}" if t is not None else f"{'n/a':>12}" for t in times)
        print(f"{store:<14}{cells}")
    if "memcached" in purges and None in purges["memcached"]:
        print("memcached n/a: a node listing that many dependents is over its 1 MiB item limit "
              "(the emulation bounds nodes; the feed keeps reads correct)")
    for op in ("get", "set"):
        ratio = results["embedded"][op][0] / results["LocMemCache"][op][0]
        print(f"embedded / LocMemCache {op}: {ratio:.1f}x (target >= 5x)")
    if note:
        print(note)
