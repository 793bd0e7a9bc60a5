"""Engine figures: hit cost against a raw store get, the cost of event listeners and metrics
exporters on a hit, poll cost, delta-map memory, lease herds.

Run with ``python -m benchmarks engine [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import tracemalloc
import uuid
from typing import Any, Callable

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.checkpoints import DeltaMaps
from cachedeps.feed import SqlFeed
from cachedeps.store.embedded import EmbeddedStore

__all__ = ["main"]


def _best_per_op(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _row(*cols: Any) -> None:
    print("  ".join(f"{c:>14}" if i else f"{c:<44}" for i, c in enumerate(cols)))


def _sqlite(path: str) -> tuple[sqlite3.Connection, SqlFeed]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = OFF")
    feed = SqlFeed("sqlite")
    for stmt in feed.ddl():
        conn.execute(stmt)
    return conn, feed


def _hits(quick: bool, workdir: str) -> None:
    n = 20_000 if quick else 200_000
    store = EmbeddedStore(background=False)
    conn, feed = _sqlite(os.path.join(workdir, "hits.db"))
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    deps = ["book:1", "book.author_id=7", "author:7"]
    rows = {"rows": list(range(10))}
    page = b"<li>a rendered fragment</li>" * 64
    cache.set("q", rows, depends_on=deps)
    cache.set("v", page, depends_on=deps)
    store.set("raw-q", store.get("d:q"))
    store.set("raw-v", store.get("d:v"))
    store.set("raw-rows", cache.serializer.dumps(rows))
    get = cache.get
    sget = store.get
    loads = cache.serializer.loads
    cases = (("query result (dict payload)", "q", "raw-q"), ("rendered fragment (1.8 kB bytes)", "v", "raw-v"))
    t_raw = {key: _best_per_op(lambda: sget(raw_key), n) for _, key, raw_key in cases}
    t_fast = {key: _best_per_op(lambda: get(key), n) for _, key, _ in cases}
    cache.committed(["publisher:1"], cache.current_tid + 1)  # an unrelated change after the stamps
    t_slow = {key: _best_per_op(lambda: get(key), n) for _, key, _ in cases}
    assert get("q") == rows and get("v") == page
    t_dec = _best_per_op(lambda: loads(sget("raw-rows")), n)
    print("validated hit on a derived entry (embedded store, 3 dependency keys)")
    _row("", "per op (us)", "vs raw get")
    for label, key, _ in cases:
        raw = t_raw[key]
        print(label)
        _row("  raw store get of the same bytes", f"{raw * 1e6:.2f}", "1.00x")
        if key == "q":
            _row("  raw store get + decode of the value alone", f"{t_dec * 1e6:.2f}", f"{t_dec / raw:.2f}x")
        _row("  cache.get, no change since the stamp", f"{t_fast[key] * 1e6:.2f}", f"{t_fast[key] / raw:.2f}x")
        _row("  cache.get, after an unrelated change", f"{t_slow[key] * 1e6:.2f}", f"{t_slow[key] / raw:.2f}x")
    store.close()
    conn.close()


def _listeners(quick: bool, workdir: str) -> None:
    """The cost a hit pays for events: none listening, a Django-style signal relay with no
    receiver for hits, the Prometheus and the OpenTelemetry exporters."""
    from cachedeps import events

    n = 20_000 if quick else 200_000
    store = EmbeddedStore(background=False)
    conn, feed = _sqlite(os.path.join(workdir, "listeners.db"))
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    cache.set("q", {"rows": list(range(10))}, depends_on=["book:1", "book.author_id=7", "author:7"])
    get = cache.get

    def idle(cache: Any, event: str, key: str, **detail: Any) -> None:
        return None

    cases: list[tuple[str, Any]] = [("  no listener (the default)", None),
                                    ("  a no-op listener of every event", idle)]
    try:
        import prometheus_client

        from cachedeps.metrics.prometheus import PrometheusExporter

        cases.append(("  Prometheus exporter", PrometheusExporter(prometheus_client.CollectorRegistry())))
    except ImportError:
        print("  (prometheus_client not installed: Prometheus skipped)")
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from cachedeps.metrics.otel import OtelExporter

        cases.append(("  OpenTelemetry exporter (SDK)", OtelExporter(MeterProvider(metric_readers=[InMemoryMetricReader()]))))
    except ImportError:
        print("  (opentelemetry-sdk not installed: OpenTelemetry skipped)")
    best = [float("inf")] * len(cases)
    for _ in range(7):  # rounds interleaved: a busy machine slows every case alike
        for i, (_, listener) in enumerate(cases):
            if listener is not None:
                listener.install() if hasattr(listener, "flush") else events.add_listener(listener)
            try:
                best[i] = min(best[i], _best_per_op(lambda: get("q"), n // 4, rounds=1))
            finally:
                if listener is not None:
                    listener.uninstall() if hasattr(listener, "flush") else events.remove_listener(listener)
    print("\ncost of events on a hit (cache.get of a query result, embedded store)")
    _row("", "per op (us)", "vs no listener")
    for (label, _), t in zip(cases, best):
        _row(label, f"{t * 1e6:.2f}", f"{t / best[0]:.2f}x")
    store.close()
    conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memcached_round_trips(quick: bool, workdir: str) -> None:
    binary = shutil.which("memcached") or "/usr/bin/memcached"
    if not os.path.exists(binary):
        print("\nmemcached not installed: round-trip count skipped")
        return
    try:
        from cachedeps.config import open_store
    except ImportError:
        return
    port = _free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        store = open_store(f"memcache://127.0.0.1:{port}")
        conn, feed = _sqlite(os.path.join(workdir, "mc.db"))
        cache = Cache(store, feed=feed, namespace=uuid.uuid4().hex[:8] + ":")
        cache.poll(conn)
        cache.set("q", {"rows": [1, 2, 3]}, depends_on=["book:1", "author:7"])
        cache.set_state("book:1", {"title": "x"})
        counts: dict[str, int] = {}

        class Counting:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(store, name)
                if not callable(attr):
                    return attr

                def call(*a: Any, **kw: Any) -> Any:
                    counts[name] = counts.get(name, 0) + 1
                    return attr(*a, **kw)

                return call

        cache.store = Counting()  # type: ignore[assignment]
        n = 200 if quick else 2000
        start = time.perf_counter()
        for _ in range(n):
            assert cache.get("q") is not None
        t_hit = (time.perf_counter() - start) / n
        trips_hit = sum(counts.values()) / n
        counts.clear()
        for _ in range(n):
            assert cache.get_state("book:1") is not None
        trips_state = sum(counts.values()) / n
        print("\nround trips per hit on memcached (store calls counted)")
        _row("", "trips/hit", "per op (us)")
        _row("derived entry hit", f"{trips_hit:.2f}", f"{t_hit * 1e6:.1f}")
        _row("object state hit", f"{trips_state:.2f}", "")
        store.close()
        conn.close()
    finally:
        proc.kill()
        proc.wait()


def _polls(quick: bool, workdir: str) -> None:
    sizes = [10, 1_000, 100_000] if not quick else [10, 1_000, 20_000]
    print("\npoll cost on SQLite (one indexed query)")
    _row("pending changes", "poll (ms)", "us/change")
    for size in sizes:
        conn, feed = _sqlite(os.path.join(workdir, f"poll{size}.db"))
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO {feed.table} (key) VALUES (?)", ((f"t.c={i}",) for i in range(size)))
        conn.execute("COMMIT")
        store = EmbeddedStore(background=False)
        best = float("inf")
        for _ in range(3):
            cache = Cache(store, feed=feed, max_delta=10 * size)
            cache.maps.reset(0)
            start = time.perf_counter()
            cache.poll(conn)
            best = min(best, time.perf_counter() - start)
        _row(f"{size:,}", f"{best * 1e3:.2f}", f"{best / size * 1e6:.2f}")
        store.close()
        conn.close()
    conn, feed = _sqlite(os.path.join(workdir, "poll-empty.db"))
    store = EmbeddedStore(background=False)
    cache = Cache(store, feed=feed)
    cache.poll(conn)
    t = _best_per_op(lambda: cache.poll(conn), 2_000 if quick else 20_000)
    _row("0 (steady state, per request)", f"{t * 1e3:.3f}", "")
    store.close()
    conn.close()


def _memory(quick: bool) -> None:
    max_delta = 10_000 if quick else 100_000
    tracemalloc.start()
    maps = DeltaMaps(max_delta=max_delta)
    maps.reset(0)
    tid = 0
    peak_size = 0
    for _ in range(30):
        batch = [(tid + i + 1, f"book.author_id={tid + i}") for i in range(max_delta // 5)]
        tid += len(batch)
        maps.apply(batch, tid)
        if maps.needs_shift():
            maps.adopt(*maps.shifted())
        peak_size = max(peak_size, maps.size())
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print("\ndelta-map memory at its limit (tracemalloc, keys like 'book.author_id=123456')")
    _row("max_delta", "keys held", "MiB (peak)")
    _row(f"{max_delta:,}", f"{peak_size:,}", f"{peak / 2**20:.1f}")


def _herd(quick: bool) -> None:
    store = EmbeddedStore(background=False)
    total = 1_000
    threads_n = 50
    per_thread = total // threads_n
    print(f"\nlease-protected herd: {total:,} misses, {threads_n} threads at once on each of {per_thread} keys")
    _row("", "db calls", "ms")
    for label, use_lease in (("get_or_compute (lease)", True), ("get, compute, set (no lease)", False)):
        cache = Cache(store, namespace=uuid.uuid4().hex[:8] + ":")
        cache.poll()
        calls = [0]
        lock = threading.Lock()
        barrier = threading.Barrier(threads_n)

        def db_call() -> str:
            with lock:
                calls[0] += 1
            time.sleep(0.02)
            cache.record("hot:1")
            return "rows"

        def worker() -> None:
            for round_ in range(per_thread):
                key = f"hot{round_}"
                barrier.wait()  # every round: all threads miss the same fresh key at once
                if use_lease:
                    cache.get_or_compute(key, db_call)
                elif cache.get(key) is NO_VALUE:
                    cache.set(key, db_call(), depends_on=["hot:1"])

        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _row(label, f"{calls[0]:,}", f"{(time.perf_counter() - start) * 1e3:.0f}")
    store.close()


def main(quick: bool) -> None:
    """Print every engine figure; ``quick`` keeps the run under about 20 seconds."""
    workdir = tempfile.mkdtemp(prefix="cachedeps-bench-")
    _hits(quick, workdir)
    _listeners(quick, workdir)
    _memcached_round_trips(quick, workdir)
    _polls(quick, workdir)
    _memory(quick)
    _herd(quick)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
