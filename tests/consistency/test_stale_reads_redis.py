"""Invariant I1 on the Redis store under faults: a restart, FLUSHALL, allkeys-lru evictions of
entries and dependency sets, the server unreachable, and a 3-node cluster.

Each test prints its summary (reads, writes, stale, hits, misses) and asserts stale == 0.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from . import checker, model

pytestmark = pytest.mark.redis


def _ctx(tmp_path, url: str, **extra) -> dict:
    ctx = {
        "dialect": "sqlite",
        "db": str(tmp_path / "app.db"),
        "store": url,
        "namespace": uuid.uuid4().hex[:8] + ":",
        "items": 4,
    }
    ctx.update(extra)
    model.setup(ctx)
    return ctx


def _run(ctx, **kw) -> checker.Report:
    kw.setdefault("duration", 2.5)
    kw.setdefault("min_writes", 50)
    report = checker.run(model.make_writer, model.make_reader, ctx, **kw)
    print(report.summary())
    return report


def test_no_stale_reads_with_redis_restarted_mid_run(tmp_path, redis_factory):
    server = redis_factory()
    report = _run(_ctx(tmp_path, server.url), faults=[checker.at(1.0, server.restart)])
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("hits", 0) > 0


def test_no_stale_reads_across_flushall(tmp_path, redis_factory):
    server = redis_factory()
    flushes = [checker.at(t, lambda: server.cli("flushall")) for t in (0.6, 1.2, 1.8)]
    report = _run(_ctx(tmp_path, server.url), faults=flushes)
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("hits", 0) > 0


def test_no_stale_reads_while_redis_is_unreachable(tmp_path, redis_factory):
    server = redis_factory()
    report = _run(_ctx(tmp_path, server.url), duration=3.0,
                  faults=[checker.at(0.8, server.stop), checker.at(1.8, server.start)])
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("store_errors", 0) > 0  # readers noticed, and kept answering


def test_no_stale_reads_under_lru_evictions_of_entries_and_sets(tmp_path, redis_factory):
    server = redis_factory(maxmemory="3mb")
    stop = threading.Event()

    def fill() -> None:
        store = model.open_store(server.url)
        blob = b"x" * 50_000
        i = 0
        while not stop.is_set():
            try:
                store.set(f"filler:{i}", blob)
                store.link(f"t:filler:{i}", [f"filler:{i}"])
            except Exception:
                time.sleep(0.01)
            i += 1

    filler = threading.Thread(target=fill, daemon=True)
    filler.start()
    try:
        report = _run(_ctx(tmp_path, server.url, max_delta=20))
    finally:
        stop.set()
        filler.join(5)
    report.assert_ok(min_reads=500, min_writes=50)
    assert model.open_store(server.url).stats()["evictions"] > 0


def test_no_stale_reads_on_a_redis_cluster(tmp_path, redis_cluster):
    report = _run(_ctx(tmp_path, redis_cluster.url))
    report.assert_ok(min_reads=300, min_writes=50)
    assert report.counters.get("hits", 0) > 0


def test_checker_catches_readers_that_never_poll_on_redis(tmp_path, redis_factory):
    """Not vacuous on Redis either: readers that skip poll() serve stale hits, and are caught."""
    server = redis_factory()
    report = _run(_ctx(tmp_path, server.url, never_poll=True), duration=1.5)
    assert report.stale and report.reads > 100


@pytest.mark.slow
def test_soak_on_redis_every_fault_at_least_100k_reads(tmp_path, redis_factory):
    server = redis_factory(maxmemory="4mb")
    ctx = _ctx(tmp_path, server.url, crash_after=200, max_delta=50, items=8)
    stop = threading.Event()

    def churn(start: float) -> None:
        """Restart, FLUSHALL and outage pulses for the whole run."""
        while time.monotonic() < start:
            time.sleep(0.05)
        while not stop.is_set():
            time.sleep(4)
            server.restart()
            time.sleep(3)
            server.cli("flushall")
            time.sleep(3)
            server.stop()
            time.sleep(1)
            server.start()

    def fill() -> None:
        store = model.open_store(server.url)
        i = 0
        while not stop.is_set():
            try:
                store.set(f"filler:{i}", b"x" * 50_000)
            except Exception:
                time.sleep(0.01)
            i += 1

    filler = threading.Thread(target=fill, daemon=True)
    filler.start()
    try:
        # Redis is down a tenth of the run and empty after each pulse: 110 s reach 100k reads on a busy 2-core machine
        report = checker.run(model.make_writer, model.make_reader, ctx, writers=2, readers=4,
                             duration=110.0, faults=[churn])
    finally:
        stop.set()
        filler.join(5)
    report.assert_ok(min_reads=100_000, min_writes=1000)
