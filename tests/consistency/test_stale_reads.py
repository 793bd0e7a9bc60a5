"""Invariant I1 under faults: writer and reader processes, real databases, real memcached.

Each test prints its summary (reads, writes, stale, hits, misses) and asserts stale == 0.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from . import checker, model

pytestmark = pytest.mark.memcached


def _ctx(tmp_path, server, **extra) -> dict:
    ctx = {
        "dialect": "sqlite",
        "db": str(tmp_path / "app.db"),
        "store": server.url,
        "namespace": uuid.uuid4().hex[:8] + ":",
        "items": 4,
    }
    ctx.update(extra)
    model.setup(ctx)
    return ctx


def _run(ctx, **kw) -> checker.Report:
    kw.setdefault("duration", 2.5)
    kw.setdefault("min_writes", 50)
    return checker.run(model.make_writer, model.make_reader, ctx, **kw)


def test_no_stale_reads_with_memcached_restarted_mid_run(tmp_path, memcached_factory):
    server = memcached_factory()
    ctx = _ctx(tmp_path, server)
    report = _run(ctx, faults=[checker.at(1.0, server.restart)])
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("hits", 0) > 0


def test_no_stale_reads_while_the_cache_is_unreachable(tmp_path, memcached_factory):
    server = memcached_factory()
    ctx = _ctx(tmp_path, server)
    report = _run(ctx, duration=3.0, faults=[checker.at(0.8, server.stop), checker.at(1.8, server.start)])
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("store_errors", 0) > 0  # readers noticed, and kept answering


def _filler(server, stop: threading.Event) -> None:
    store = model.open_store(server.url)
    blob = b"x" * 200_000
    i = 0
    while not stop.is_set():
        try:
            store.set(f"filler:{i}", blob)
        except Exception:
            time.sleep(0.01)
        i += 1


def test_no_stale_reads_under_evictions_of_entries_and_metadata(tmp_path, memcached_factory):
    server = memcached_factory(memory_mb=2)
    ctx = _ctx(tmp_path, server, max_delta=20)
    stop = threading.Event()
    filler = threading.Thread(target=_filler, args=(server, stop), daemon=True)
    filler.start()
    try:
        report = _run(ctx)
    finally:
        stop.set()
        filler.join(5)
    report.assert_ok(min_reads=500, min_writes=50)


def test_no_stale_reads_when_a_writer_dies_between_commit_and_purge(tmp_path, memcached_factory):
    server = memcached_factory()
    ctx = _ctx(tmp_path, server, crash_after=10)
    report = _run(ctx)
    assert report.crashed_writers == 1
    report.assert_ok(min_reads=500, min_writes=10)


@pytest.mark.postgres
def test_no_stale_reads_on_postgresql(postgres_dsn, memcached_factory):
    server = memcached_factory()
    ctx = {
        "dialect": "postgresql",
        "db": postgres_dsn,
        "store": server.url,
        "namespace": uuid.uuid4().hex[:8] + ":",
        "items": 4,
    }
    model.setup(ctx)
    report = checker.run(model.make_writer, model.make_reader, ctx, duration=2.5, min_writes=50,
                         faults=[checker.at(1.2, server.restart)])
    report.assert_ok(min_reads=500, min_writes=50)


@pytest.mark.mysql
@pytest.mark.parametrize("fault", ["restart", "crash"])
def test_no_stale_reads_on_mariadb(mysql_url, memcached_factory, fault):
    """The MySQL feed orders tids by its lock row, not by commit: two writers at once, a
    memcached restart or a writer killed between commit and purge, and no stale read."""
    from tests.conftest import mysql_params

    server = memcached_factory()
    ctx = {
        "dialect": "mysql",
        "db": mysql_params(mysql_url),
        "store": server.url,
        "namespace": uuid.uuid4().hex[:8] + ":",
        "items": 4,
    }
    faults = []
    if fault == "restart":
        faults.append(checker.at(1.2, server.restart))
    else:
        ctx["crash_after"] = 40
    model.setup(ctx)
    report = checker.run(model.make_writer, model.make_reader, ctx, writers=2, duration=2.5, min_writes=50,
                         faults=faults)
    report.assert_ok(min_reads=500, min_writes=50)
    assert report.counters.get("hits", 0) > 0


@pytest.mark.slow
def test_soak_every_fault_at_least_100k_reads(tmp_path, memcached_factory):
    server = memcached_factory(memory_mb=4)
    ctx = _ctx(tmp_path, server, crash_after=200, max_delta=50, items=8)
    stop = threading.Event()
    pulses = threading.Event()

    def churn(start: float) -> None:
        """Restart, outage and eviction pulses for the whole run."""
        while time.monotonic() < start:
            time.sleep(0.05)
        while not pulses.is_set():
            time.sleep(4)
            server.restart()
            time.sleep(4)
            server.stop()
            time.sleep(1)
            server.start()

    filler = threading.Thread(target=_filler, args=(server, stop), daemon=True)
    filler.start()
    try:
        report = checker.run(model.make_writer, model.make_reader, ctx, writers=2, readers=4,
                             duration=60.0, faults=[churn])
    finally:
        pulses.set()
        stop.set()
        filler.join(5)
    report.assert_ok(min_reads=100_000, min_writes=1000)


def test_checker_catches_readers_that_never_poll(tmp_path, memcached_factory):
    """The harness is not vacuous: a reader that skips poll() serves stale hits, and is caught."""
    server = memcached_factory()
    ctx = _ctx(tmp_path, server, never_poll=True)
    report = _run(ctx, duration=1.5)
    print(report.summary())
    assert report.stale and report.reads > 100


def test_checker_detects_a_stale_read():
    """The verdict itself: a read after a returned commit that saw an older version."""
    commits = {1: [(10.0, 1), (20.0, 2)]}
    reads = [(1, 1, 15.0), (1, 2, 25.0), (1, 1, 19.999), (1, 1, 20.5), (2, 0, 30.0)]
    stale = checker._check(commits, reads)
    assert [(s.item, s.seen, s.committed) for s in stale] == [(1, 1, 2)]
    assert stale[0].read_start == 20.5
