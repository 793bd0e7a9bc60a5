"""A pytest plugin for SQLAlchemy's own test suite: ``sqla_cachedeps.install()`` on every
session, every ORM select and lazy load cached, verify mode on where the code has it.

Loaded with ``-p sqla_plugin`` by ``run.py`` in a subprocess whose working directory is the
SQLAlchemy sdist. ``ORM_SUITE_INSTALL=0`` runs the suite without cachedeps (the comparison
run). Writes ``ORM_SUITE_REPORT`` (JSON): the outcome of every test that did not pass and
the engine's counters.

Hook: ``install(Session, cache)`` on the ``Session`` class itself reaches every session the
suite makes (``fixture_session()``, ``Session(testing.db)``, ``sessionmaker()``); a
``do_orm_execute`` listener inserted first marks every ORM ``SELECT`` with the
``cachedeps`` execution option, the equivalent of Django's ``MODELS = "__all__"``. One cache
serves the whole run, so the database is one SQLite *file* (every engine the suite makes
sees the same tables and change feed) or one PostgreSQL database.
"""

from __future__ import annotations

import inspect
import json
import os
import sqlite3
import traceback
from typing import Any

import pytest

_INSTALL = os.environ.get("ORM_SUITE_INSTALL", "1") == "1"
_OUTCOMES: list[dict[str, Any]] = []
_STATE: dict[str, Any] = {"cache": None, "verify": False, "tests_run": 0, "feed_created": 0, "reinstalls": 0}


def _chain(exc: BaseException | None) -> list[str]:
    names, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.append(type(exc).__module__ + "." + type(exc).__qualname__)
        exc = exc.__cause__ or exc.__context__
    return names


def _mark_every_select(orm_state: Any) -> None:
    if orm_state.is_select and orm_state.execution_options.get("cachedeps") is None:
        orm_state.update_execution_options(cachedeps=True)


def _feed_on_connect(dbapi_conn: Any, record: Any) -> None:
    # The suite's engines come and go (SQLite files are removed and made again): every new
    # connection makes sure the feed table is there.
    feed = _STATE["feed"]
    if isinstance(dbapi_conn, sqlite3.Connection) != (feed.dialect == "sqlite"):
        # An engine of another kind of database than the suite's (a test's own SQLite in a
        # PostgreSQL run): not the cache's database. Writes there append to its own feed
        # (for whoever caches it), which must exist, as cachedeps tells a user whose
        # database lacks it; made here as for the suite's own databases.
        if isinstance(dbapi_conn, sqlite3.Connection):
            from cachedeps.feed import SqlFeed

            for statement in SqlFeed("sqlite", table=feed.table).ddl():
                dbapi_conn.execute(statement)
            dbapi_conn.commit()
        return
    cur = dbapi_conn.cursor()
    try:
        if feed.dialect == "sqlite":
            cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (feed.table,))
        elif feed.dialect == "mysql":
            cur.execute("SELECT 1 FROM information_schema.tables WHERE table_name = %s AND table_schema = DATABASE()",
                        (feed.table,))
        else:
            cur.execute("SELECT 1 FROM pg_tables WHERE tablename = %s AND schemaname = current_schema()", (feed.table,))
        if cur.fetchone() is None:
            for statement in feed.ddl():
                cur.execute(statement)
            _STATE["feed_created"] += 1
            cache = _STATE["cache"]
            if cache is not None:
                # A new database under a running cache, as if restored from nothing: start its
                # feed above the cache's position and drop the old database's entries, so the
                # harness tests cachedeps on one database at a time (SQLAlchemy's suite removes
                # the SQLite file when a test class disposes its engine).
                mark = "?" if feed.dialect == "sqlite" else "%s"
                position = cache.stats().get("current_tid") or 0
                cur.execute(f"INSERT INTO {feed.table} (tid, key) VALUES ({mark}, {mark})",
                            (position + 1, "orm_suite:new-database"))
                cache.store.flush_all()
        dbapi_conn.commit()
    finally:
        cur.close()


def _install() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session
    from sqlalchemy.testing import config

    import cachedeps
    import sqla_cachedeps
    from sqla_cachedeps.feed import feed_for_dialect

    engine = config.db
    _STATE["feed"] = feed_for_dialect(engine.dialect)
    event.listen(Engine, "connect", _feed_on_connect)
    sqla_cachedeps.create_feed_table(engine)
    cache = cachedeps.Cache(cachedeps.open_store("embedded://?max_memory=256MB"),
                            feed=feed_for_dialect(engine.dialect), namespace="orm_suite:")
    # ORM_SUITE_SQLA_CACHE: "all" (every select and lazy load), "lazy" (gets and lazy loads),
    # "gets" (gets only: install()'s default), "lazyonly" (lazy loads, no gets)
    level = os.environ.get("ORM_SUITE_SQLA_CACHE", "all")
    kwargs: dict[str, Any] = {"gets": level != "lazyonly", "lazy_loads": level in ("all", "lazy", "lazyonly")}
    if "database" in inspect.signature(sqla_cachedeps.install).parameters:
        # the suite's database; engines of other databases (in-memory SQLite) run uncached
        kwargs["database"] = engine
    wants_verify = os.environ.get("ORM_SUITE_VERIFY", "1") == "1"
    if wants_verify and "verify" in inspect.signature(sqla_cachedeps.install).parameters:
        kwargs["verify"] = True
        _STATE["verify"] = True
    _STATE["cache"] = cache
    _STATE["install"] = lambda: _listen(level, cache, kwargs)
    _STATE["install"]()


def _listen(level: str, cache: Any, kwargs: dict[str, Any]) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import sqla_cachedeps

    if level == "all" and not event.contains(Session, "do_orm_execute", _mark_every_select):
        event.listen(Session, "do_orm_execute", _mark_every_select, insert=True)
    _STATE["installation"] = sqla_cachedeps.install(Session, cache, **kwargs)


def _ensure_installed() -> None:
    # Some of the suite's tests clear every Session listener when they end
    # (SessionEvents._clear() in test/orm/test_events.py): install again when that happened.
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    inst = _STATE.get("installation")
    if inst is None or event.contains(Session, "do_orm_execute", inst._do_orm_execute):
        return
    inst.uninstall()
    _STATE["reinstalls"] += 1
    _STATE["install"]()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: Any) -> None:
    if _INSTALL:
        _install()


def pytest_runtest_setup(item: Any) -> None:
    if _INSTALL:
        _ensure_installed()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if call.when == "call":
        _STATE["tests_run"] += 1
    if report.failed or (report.skipped and call.when in ("setup", "call")):
        entry: dict[str, Any] = {
            "id": item.nodeid if call.when == "call" else f"{item.nodeid}",
            "outcome": "skip" if report.skipped else ("failure" if call.excinfo is not None
                                                      and call.excinfo.errisinstance(AssertionError) else "error"),
            "when": call.when,
        }
        if report.failed and call.excinfo is not None:
            exc = call.excinfo.value
            entry["exc"] = _chain(exc)
            entry["message"] = str(exc)[:3000]
            entry["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-12000:]
            entry["frames"] = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(exc.__traceback__)][-12:]
        if report.skipped:
            if any(o["id"] == entry["id"] for o in _OUTCOMES):
                return
        elif any(o["id"] == entry["id"] and o["outcome"] != "skip" for o in _OUTCOMES):
            return  # a teardown error after a failed call: one entry per test
        _OUTCOMES.append(entry)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("ORM_SUITE_REPORT")
    if not path:
        return
    cache = _STATE["cache"]
    stats = {}
    if cache is not None:
        stats = {k: v for k, v in cache.stats().items() if isinstance(v, int) and not isinstance(v, bool)}
    with open(path, "w") as fh:
        json.dump({"tests_run": _STATE["tests_run"], "outcomes": _OUTCOMES, "stats": stats, "engines": 1 if cache else 0, "feed_created": _STATE["feed_created"], "reinstalls": _STATE["reinstalls"],
                   "verify": _STATE["verify"], "mode": "install" if _INSTALL else "plain"}, fh, indent=1)
