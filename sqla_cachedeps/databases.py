"""Which database an installation's cache serves.

Each database has its own change feed and its own tid sequence: a position in one says
nothing about another. A value read from database B and stamped with database A's position
would be validated against changes A's feed reports, and a write in B (tid of B's sequence)
would not reach it: a stale read. So one :class:`cachedeps.Cache` serves one database.

An installation's database is the one named by ``install(..., database=engine)``, else the
session factory's ``bind``, else the first one it meets. Engines reaching that database
(another pool, ``execution_options()`` copies, an ``AsyncEngine``'s sync engine) share it.
Statements on any other database run uncached: its reads go to that database, its writes
append to that database's own feed (for the processes that cache it) but never touch this
cache's delta maps. A factory whose configured binds span several databases is refused by
``install()`` unless ``database=`` says which one to cache.

Identity is the engine's URL without credentials (dialect, host, port, database; the
resolved path of a SQLite file; the pool of an in-memory SQLite database, which no other
engine reaches). Two URLs for one database (``localhost`` and ``127.0.0.1``) count as two:
reads through the second are not cached, which costs hits only. One URL for two databases
(a proxy spreading connections over a primary and lagging replicas) cannot be told apart:
give each replica its own engine URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from typing import Any, Iterable

from sqlalchemy.engine import Engine

from cachedeps.errors import ConfigurationError
from cachedeps.feed import SqlFeed

from .feed import feed_for_dialect

__all__ = ["database_of", "describe", "namespace_of", "Databases", "check_binds", "statement_bind",
           "statement_connection"]

log = logging.getLogger("sqla_cachedeps")

_MEMORY = {None, "", ":memory:"}


def engine_of(bind: Any) -> Any:
    """Return the sync ``Engine`` behind an engine, a connection or an ``AsyncEngine``."""
    bind = getattr(bind, "sync_engine", bind)
    return getattr(bind, "engine", bind)


def statement_bind(orm_state: Any) -> Any:
    """Return the bind an ORM execution's statement runs on, resolved as SQLAlchemy does.

    ``get_bind()`` gets the execution's own bind arguments (the statement as ``clause``,
    its ``mapper``), never the mapper alone: a session may route by statement (SQLAlchemy's
    "custom vertical partitioning": writes to a leader, reads to followers), and the cache
    must poll, read old rows and append to the feed on the connection the statement itself
    runs on.
    """
    return orm_state.session.get_bind(**(orm_state.bind_arguments or {}))


def statement_connection(orm_state: Any, bind: Any = None) -> Any:
    """Return the session's connection for ``orm_state``'s statement (beginning it if need be).

    ``bind`` is :func:`statement_bind`'s answer when the caller has it already.
    """
    if bind is None:
        bind = statement_bind(orm_state)
    return orm_state.session.connection(bind_arguments={"bind": bind})


def database_of(bind: Any) -> tuple:
    """Return a hashable identity of the database ``bind`` (engine or connection) reaches."""
    engine = engine_of(bind)
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        name = url.database
        if name in _MEMORY or "mode=memory" in str(name) or url.query.get("mode") == "memory":
            return ("sqlite-memory", id(engine.pool))
        if name.startswith("file:"):
            name = name[5:].split("?", 1)[0]
        return ("sqlite", os.path.realpath(name))
    host = url.host or url.query.get("host") or ""
    if isinstance(host, tuple):
        host = ",".join(host)
    return (backend, host, url.port, url.database)


def namespace_of(bind: Any) -> str:
    """Return the store namespace of a cache built for ``bind``'s database.

    Several databases' caches may share one store (one memcached): their entries, stamped
    with positions of different feeds, must never meet.
    """
    ident = repr(database_of(bind)).encode("utf-8")
    return "q" + hashlib.blake2b(ident, digest_size=5).hexdigest() + ":"


def describe(bind: Any) -> str:
    """Return the engine's URL without its password, for messages."""
    return engine_of(bind).url.render_as_string(hide_password=True)


class Databases:
    """The database one installation caches, and the feeds of the others it writes to."""

    def __init__(self, feed_table: str) -> None:
        self.feed_table = feed_table
        self.home: tuple | None = None
        self.home_name = ""
        self._lock = threading.Lock()
        # engine -> whether it reaches the home database
        self._serves: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        # engine of another database -> the feed its writes append to
        self._feeds: weakref.WeakKeyDictionary[Any, SqlFeed] = weakref.WeakKeyDictionary()

    def choose(self, bind: Any) -> None:
        """Make ``bind``'s database the one this installation caches."""
        with self._lock:
            self.home = database_of(bind)
            self.home_name = describe(bind)
            self._serves = weakref.WeakKeyDictionary()

    def serves(self, bind: Any) -> bool:
        """Return whether statements on ``bind`` may use the cache (the first one seen wins)."""
        engine = engine_of(bind)
        if not isinstance(engine, Engine):
            return False  # a stand-in (a test double, a custom bind): nothing to poll or stamp
        try:
            return self._serves[engine]
        except (KeyError, TypeError):
            pass
        with self._lock:
            if self.home is None:
                self.home = database_of(engine)
                self.home_name = describe(engine)
            serves = database_of(engine) == self.home
            try:
                self._serves[engine] = serves
            except TypeError:  # not weak-referenceable: decide again next time
                pass
        if not serves:
            log.warning(
                "sqla_cachedeps: reads from %s are not cached: this installation caches %s, and each "
                "database has its own change feed; install a session factory bound to it with a cache "
                "of its own (its own namespace) to cache it", describe(engine), self.home_name,
            )
        return serves

    def feed_for(self, bind: Any) -> SqlFeed:
        """Return the feed a write on ``bind``, another database, appends to: its own."""
        engine = engine_of(bind)
        feed = self._feeds.get(engine)
        if feed is None:
            feed = self._feeds[engine] = feed_for_dialect(engine.dialect, self.feed_table)
        return feed


def check_binds(engines: Iterable[Any], database: Any) -> None:
    """Refuse a factory whose binds reach several databases unless ``database`` picks one.

    Raises:
        ConfigurationError: several databases and no ``database``, or a ``database`` the
            factory does not reach.
    """
    found: dict[tuple, list[str]] = {}
    for engine in engines:
        names = found.setdefault(database_of(engine), [])
        name = describe(engine)
        if name not in names:
            names.append(name)
    if database is not None:
        if found and database_of(database) not in found:
            raise ConfigurationError(
                f"install(database={describe(database)!r}) names a database the session factory is not "
                f"bound to ({'; '.join(n for ns in found.values() for n in ns)}); pass database= one of "
                "the factory's engines"
            )
        return
    if len(found) > 1:
        listed = "; ".join(", ".join(ns) for ns in found.values())
        raise ConfigurationError(
            f"the session factory is bound to {len(found)} databases ({listed}); one cache serves one "
            "database, since each has its own change feed and tid sequence. Pass install(..., "
            "database=engine) to cache that one (reads from the others then run uncached), or give "
            "each database a session factory and an install() of its own with its own cache namespace"
        )
