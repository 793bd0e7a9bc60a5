"""MCAS and deque throughput on the embedded store and on memcached.

Figures are operations per second from one thread without contention, against a plain
``gets`` + ``cas`` on one entry; the last row is four threads moving money between four
accounts (contended), with the share of operations that lost a race.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from typing import Any, Callable

from cachedeps.config import open_store
from cachedeps.deque import Deque
from cachedeps.mcas import mcas, mcas_add, mcas_get, mcas_get_many

__all__ = ["main"]


def _rate(fn: Callable[[], None], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            fn()
        done += 20
    return done / (time.perf_counter() - start)


def _raw_cas(store: Any) -> Callable[[], None]:
    key = f"bench:raw:{uuid.uuid4().hex[:8]}"
    store.set(key, b"0")

    def op() -> None:
        value, cas = store.gets(key)
        store.cas(key, value, cas)

    return op


def _mcas_n(store: Any, n: int) -> Callable[[], None]:
    keys = [f"bench:m{n}:{uuid.uuid4().hex[:8]}:{i}" for i in range(n)]
    for k in keys:
        mcas_add(store, k, 0)

    def op() -> None:
        entries = mcas_get_many(store, keys)
        if not mcas(store, [(e, e.value + 1) for e in entries.values()]):
            raise RuntimeError("uncontended MCAS failed")

    return op


def _deque_pair(store: Any, size: int) -> Callable[[], None]:
    deque = Deque.create(store, f"bench{uuid.uuid4().hex[:8]}")
    value = b"x" * size

    def op() -> None:
        deque.append(value)
        deque.popleft()

    return op


def _contended(store: Any, seconds: float) -> tuple[float, float]:
    keys = [f"bench:acct:{uuid.uuid4().hex[:8]}:{i}" for i in range(4)]
    for k in keys:
        mcas_add(store, k, 1000)
    counts = [[0, 0] for _ in range(4)]
    deadline = time.perf_counter() + seconds

    def worker(slot: list[int], seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            src, dst = rng.sample(keys, 2)
            got = mcas_get_many(store, [src, dst])
            moved = min(got[src].value, 5)
            ok = mcas(store, [(got[src], got[src].value - moved), (got[dst], got[dst].value + moved)])
            slot[0 if ok else 1] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(counts[i], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    total = sum(v for _, v in (e for e in [(k, mcas_get(store, k).value) for k in keys]))
    if total != 4000:
        raise RuntimeError(f"money was created or lost: {total}")
    ok = sum(c[0] for c in counts)
    failed = sum(c[1] for c in counts)
    return ok / elapsed, failed / max(1, ok + failed)


def _start_memcached() -> tuple[subprocess.Popen | None, str | None]:
    binary = shutil.which("memcached") or ("/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)
    if binary is None:
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"memcache://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    return None, None


def main(quick: bool) -> None:
    """Print operations per second for each store, with ratios to a plain gets+cas."""
    seconds = 0.3 if quick else 2.0
    proc, url = _start_memcached()
    stores: list[tuple[str, str]] = [("embedded", "embedded://bench")]
    if url:
        stores.append(("memcached", url))
    try:
        rows = [
            ("gets+cas, 1 entry (baseline)", _raw_cas),
            ("mcas, 1 entry", lambda s: _mcas_n(s, 1)),
            ("mcas, 2 entries", lambda s: _mcas_n(s, 2)),
            ("mcas, 4 entries", lambda s: _mcas_n(s, 4)),
            ("deque append+popleft, 100 B", lambda s: _deque_pair(s, 100)),
            ("deque append+popleft, 100 KB", lambda s: _deque_pair(s, 100_000)),
        ]
        print(f"{'operation':<34}" + "".join(f"{name:>14}{'vs base':>9}" for name, _ in stores))
        opened = []
        for _, store_url in stores:
            try:
                opened.append(open_store(store_url))
            except Exception as exc:  # the remote store may be missing its extra
                print(f"(cannot open {store_url}: {exc})")
                opened.append(None)
        bases: list[float] = []
        for label, make in rows:
            line = f"{label:<34}"
            for i, store in enumerate(opened):
                if store is None:
                    line += f"{'-':>14}{'':>9}"
                    continue
                rate = _rate(make(store), seconds)
                if not bases or len(bases) <= i:
                    bases.append(rate)
                line += f"{rate:>12,.0f}/s{rate / bases[i]:>8.2f}x"
            print(line, flush=True)
        line = f"{'transfers, 4 threads contended':<34}"
        for store in opened:
            if store is None:
                line += f"{'-':>14}{'':>9}"
                continue
            rate, lost = _contended(store, seconds)
            line += f"{rate:>12,.0f}/s{lost:>7.0%} l"
        print(line + "   (l: share of MCAS that lost a race)")
        for store in opened:
            if store is not None:
                store.close()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
