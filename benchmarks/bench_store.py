"""Store speed: get and set of 100-byte values on the embedded store, Django's
LocMemCache and pymemcache against a local memcached; ratios embedded / LocMemCache.

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
             rounds: int, samples: int) -> dict[str, tuple[float, float, float]]:
    for key in keys:
        set_(key, VALUE)
    out = {}
    for name, op in (("get", get), ("set", lambda k: set_(k, VALUE))):
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
            results["memcached"] = _measure(remote.get, remote.set, keys[:200], 5, samples // 20)
            remote.close()
        finally:
            proc.kill()
            proc.wait()
    else:
        note = "(memcached not installed: its column is left out)"

    print(f"{'store':<14}{'op':<5}{'ops/s':>12}{'p50 µs':>10}{'p99 µs':>10}")
    for store, figures in results.items():
        for op, (ops, p50, p99) in figures.items():
            print(f"{store:<14}{op:<5}{ops:>12,.0f}{p50:>10.2f}{p99:>10.2f}")
    for op in ("get", "set"):
        ratio = results["embedded"][op][0] / results["LocMemCache"][op][0]
        print(f"embedded / LocMemCache {op}: {ratio:.1f}x (target >= 5x)")
    if note:
        print(note)
