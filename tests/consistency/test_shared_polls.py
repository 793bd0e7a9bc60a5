"""Shared feed polls (``Cache(shared_polls=...)``, :mod:`cachedeps.pollshare`) never serve a stale read.

Reader processes on PostgreSQL each read inside a unit of work and poll ``fresh``; a poll of
another reader sent after the unit began, that saw the feed end where this reader stands,
stands in for its own. The checker counts reads that missed a commit returned before they
started, with the cache server restarted and a writer killed between commit and purge
mid-run; and a reader that shares polls without the time condition is caught.
"""

from __future__ import annotations

import os
import uuid

import pytest

from cachedeps.pollshare import slot_path

from . import checker, model

pytestmark = [pytest.mark.memcached, pytest.mark.postgres]


def _ctx(postgres_dsn: str, server, **extra) -> dict:
    ctx = {
        "dialect": "postgresql",
        "db": postgres_dsn,
        "store": server.url,
        "namespace": uuid.uuid4().hex[:8] + ":",
        "items": 4,
        "shared_polls": "test-shared-polls:" + uuid.uuid4().hex,
        "poll_delay": 0.002,  # a request's middleware between its start and its poll
    }
    ctx.update(extra)
    model.setup(ctx)
    return ctx


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def test_no_stale_reads_with_polls_shared_between_processes(postgres_dsn, memcached_factory):
    server = memcached_factory()
    ctx = _ctx(postgres_dsn, server, crash_after=40)
    path = slot_path(ctx["shared_polls"])
    try:
        report = checker.run(model.make_writer, model.make_reader, ctx, writers=2, readers=4, duration=3.0,
                             min_writes=50, faults=[checker.at(1.0, server.restart)])
    finally:
        _unlink(path)
    print(report.summary(), report.counters)
    report.assert_ok(min_reads=300, min_writes=50)
    assert report.crashed_writers == 1
    assert report.counters.get("polls_shared", 0) > 0  # the sharing was exercised


def test_checker_catches_polls_shared_without_the_time_condition(postgres_dsn, memcached_factory):
    """Not vacuous: a reader that takes any poll that saw its position (sent before its read
    began too) serves stale reads, and is caught."""
    server = memcached_factory()
    ctx = _ctx(postgres_dsn, server, share_ignores_time=True, poll_delay=0.0)
    path = slot_path(ctx["shared_polls"])
    try:
        report = checker.run(model.make_writer, model.make_reader, ctx, writers=1, readers=3, duration=2.5,
                             min_writes=50)
    finally:
        _unlink(path)
    print(report.summary(), report.counters)
    assert report.stale and report.reads > 100
