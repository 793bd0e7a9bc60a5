"""Hold one :class:`cachedeps.Cache` per cache alias and database, shared by every thread.

Django builds cache backends and database connections per thread; the engine's delta maps
are process-wide, so the engine lives here, in a lock-protected registry. Each database
alias gets its own engine (its own change feed table and store namespace); the CACHES alias
(``CACHEDEPS["CACHE"]`` by default) gives the store URL in its ``LOCATION``.

:func:`ensure_polled` brings the engine up to date with the feed: once per unit of work
inside :func:`unit_of_work` (the middleware opens one per request, :mod:`.units` one per
management command and Celery task), before every cached read outside one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from cachedeps.work import unit_of_work as _unit_of_work

from .conf import FEED_TABLE, get_settings

__all__ = [
    "get_engine",
    "ensure_polled",
    "poll_engine",
    "idle",
    "prepares",
    "unit_of_work",
    "feed_ready",
    "position",
    "snapshot_stamp",
    "reset",
]

logger = logging.getLogger("django_cachedeps")

_lock = threading.Lock()
_engines: dict[tuple[str, str], Any] = {}
_stores: dict[str, Any] = {}
_feed_ready: set[str] = set()


def _location(alias: str) -> str:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        config = settings.CACHES[alias]
    except KeyError:
        raise ImproperlyConfigured(
            f"CACHEDEPS['CACHE'] is {alias!r}, which is not in CACHES ({', '.join(settings.CACHES)}); "
            "add a CACHES entry with BACKEND 'django_cachedeps.backend.CachedepsCache'"
        ) from None
    location = config.get("LOCATION") or "embedded://"
    if not isinstance(location, str):
        raise ImproperlyConfigured(
            f"CACHES[{alias!r}]['LOCATION'] must be a store URL string such as "
            f"'embedded://?max_memory=64MB' or 'memcache://127.0.0.1:11211', got {location!r}"
        )
    return location


def _namespace(using: str) -> str:
    # Several databases (or test runs) may share one memcached: keep their keys apart.
    s = connections[using].settings_dict
    ident = "|".join(str(s.get(k) or "") for k in ("ENGINE", "NAME", "HOST", "PORT"))
    return "d" + hashlib.blake2b(ident.encode("utf-8"), digest_size=5).hexdigest() + ":"


def _build(alias: str, using: str) -> Any:
    import cachedeps
    from cachedeps.feed import SqlFeed

    conf = get_settings()
    location = _location(alias)
    store = _stores.get(location)
    if store is None:
        store = _stores[location] = cachedeps.open_store(location)
    vendor = connections[using].vendor
    dialect = {"postgresql": "postgresql", "mysql": "mysql"}.get(vendor, "sqlite")
    feed = SqlFeed(dialect=dialect, paramstyle="format", table=FEED_TABLE, capture=conf.capture,
                   prepare=dialect == "postgresql" and prepares(connections[using]))
    shared = None
    if conf.shared_polls and dialect == "postgresql":
        db = connections[using].settings_dict
        shared = "\0".join(str(db.get(k) or "") for k in ("HOST", "PORT", "NAME")) + "\0" + FEED_TABLE
    return cachedeps.Cache(store, feed=feed, namespace=_namespace(using), max_delta=conf.max_delta,
                           shared_polls=shared)


def poll_engine(engine: Any, using: str) -> int:
    """Poll database ``using``'s feed for ``engine`` (bookkeeping: poisons no recording).

    Outside a transaction on PostgreSQL the poll's statement has a snapshot of its own, so
    it may cover other requests of this process, and of the host's other worker processes
    with ``SHARED_POLLS`` (:meth:`cachedeps.Cache.poll`).
    """
    from .db.hints import own_statements

    connection = connections[using]
    fresh = connection.vendor == "postgresql" and connection.get_autocommit() and idle(connection.connection)
    with own_statements():
        if getattr(engine.feed, "prepare", False):
            return engine.poll(_PreparingConnection(connection), fresh=fresh)
        return engine.poll(connection, fresh=fresh)


def prepares(connection: Any) -> bool:
    """Return whether the feed poll runs as a prepared statement on this database.

    Only on psycopg 3 with ``OPTIONS["prepare_threshold"]`` set: Django's default (``None``)
    turns psycopg's prepared statements off on the connection, so that a pooler handing each
    transaction another server session (PgBouncer's transaction mode, before 1.21 or without
    ``max_prepared_statements``) keeps working. Django's own statements bind parameters on
    the client and are never prepared, whatever the threshold; the poll, run through a
    server-binding cursor, is prepared at its first execution.
    """
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3 and connection.settings_dict.get("OPTIONS", {}).get("prepare_threshold") is not None


class _PreparingConnection:
    """A Django connection as the feed poll sees it when the poll is prepared.

    Django's cursors bind parameters on the client (psycopg's ``ClientCursor`` prepares
    nothing) and their ``execute`` takes no ``prepare``: this one opens a psycopg server-binding
    cursor on the same connection, inside Django's cursor wrapper (execute wrappers, query
    logging, database error translation).
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def cursor(self) -> "_PreparingCursor":
        db = self.connection
        db.ensure_connection()
        raw = _server_cursor_type()(db.connection)
        return _PreparingCursor(db, raw)


_server_cursor: Any = None


def _server_cursor_type() -> Any:
    global _server_cursor
    if _server_cursor is None:
        import psycopg

        class ServerCursor(psycopg.Cursor):
            """psycopg's server-binding cursor; prepares as its ``prepare`` attribute says."""

            prepare: bool | None = None

            def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                        binary: bool | None = None) -> Any:
                return super().execute(query, params, prepare=self.prepare if prepare is None else prepare,
                                       binary=binary)

        _server_cursor = ServerCursor
    return _server_cursor


class _PreparingCursor:
    def __init__(self, db: Any, raw: Any) -> None:
        self._db, self._raw, self._wrapper = db, raw, db.make_cursor(raw)

    def execute(self, sql: str, params: Any = None, prepare: bool | None = None) -> Any:
        self._raw.prepare = prepare
        if not self._db.queries_logged:
            return self._wrapper.execute(sql, params)
        # Logged with its placeholders: Django reads the statement sent back from psycopg's
        # client-binding cursors only (a prepared execution sends the statement's name).
        with self._db.make_debug_cursor(self._raw).debug_sql(sql, params):
            return self._wrapper.execute(sql, params)

    def fetchall(self) -> list[Any]:
        return self._wrapper.fetchall()

    def fetchone(self) -> Any:
        return self._wrapper.fetchone()

    def close(self) -> None:
        self._wrapper.close()


def idle(raw: Any) -> bool:
    """Return whether libpq reports no transaction open on a psycopg (3 or 2) connection.

    Django's autocommit mode alone does not say it: a ``BEGIN`` run through a cursor opens a
    transaction (perhaps REPEATABLE READ, with an older snapshot) that Django does not track.
    """
    info = getattr(raw, "info", None)
    status = getattr(info, "transaction_status", None)  # psycopg 3
    if status is None and hasattr(raw, "get_transaction_status"):  # psycopg2
        status = raw.get_transaction_status()
    return status is not None and int(status) == 0  # IDLE in both


def get_engine(alias: str | None = None, using: str | None = None) -> Any:
    """Return the process-wide engine for a cache alias and a database alias.

    Args:
        alias: a CACHES alias; default ``CACHEDEPS["CACHE"]``.
        using: a database alias; default ``"default"``. Its feed table holds the changes.

    Raises:
        ImproperlyConfigured: the cache alias is missing or its LOCATION is not a URL.
    """
    key = (alias or get_settings().cache, using or DEFAULT_DB_ALIAS)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = _build(*key)
    return engine


def position(using: str) -> int:
    """Return the position of database ``using``'s engine (0 when it is not built yet).

    A lower bound of what a snapshot taken from now on holds: every change up to it has
    committed. 0 is below every horizon, so nothing stamped with it is stored.
    """
    engine = _engines.get((get_settings().cache, using))
    return 0 if engine is None else engine.current_tid


def snapshot_stamp(engine: Any, using: str = DEFAULT_DB_ALIAS) -> int:
    """Return the stamp for a value about to be computed from database ``using``'s reads.

    The engine's position now, but inside a transaction never newer than the position when
    it began: its snapshot may be as old as its first statement (REPEATABLE READ, a
    ``SET TRANSACTION`` inside ``atomic()``, ``ATOMIC_REQUESTS``).
    """
    stamp = engine.current_tid
    connection = connections[using]
    began = getattr(connection, "cachedeps_tx_stamp", None)
    if began is not None and connection.connection is not None and not connection.get_autocommit():
        stamp = min(stamp, began)
    return stamp


def feed_ready(using: str) -> bool:
    """Return whether the feed table exists in database ``using`` (a positive answer is kept).

    Before ``migrate`` has created it nothing can be cached (no poll succeeds), so writes
    have nothing to invalidate and reads run uncached.
    """
    if using in _feed_ready:
        return True
    from .db.hints import own_statements

    connection = connections[using]
    with own_statements(), connection.cursor() as cursor:
        present = FEED_TABLE in connection.introspection.table_names(cursor)
    if present:
        with _lock:
            _feed_ready.add(using)
    return present


def ensure_polled(using: str) -> Any:
    """Return the engine of database ``using``, polled for this unit of work.

    Inside :func:`unit_of_work` the feed is read once per database (the engine's
    :meth:`~cachedeps.Cache.ensure_polled`); outside, every call polls. Feed errors
    propagate (a read must not be served unvalidated).
    """
    engine = get_engine(using=using)
    if engine.polled_in_unit():
        return engine
    poll_engine(engine, using)
    return engine


#: one request, one task, one command: :func:`cachedeps.unit_of_work` (the engine's scope,
#: framework-free, shared with the SQLAlchemy adapter)
unit_of_work = _unit_of_work


def reset(**kwargs: Any) -> None:
    """Drop every engine and store (a ``setting_changed`` receiver; tests call it too)."""
    setting = kwargs.get("setting")
    if setting not in (None, "CACHEDEPS", "CACHES", "DATABASES"):
        return
    with _lock:
        stores = list(_stores.values())
        _engines.clear()
        _stores.clear()
        _feed_ready.clear()
    for store in stores:
        try:
            store.close()
        except Exception:  # a store that cannot close cleanly is dropped anyway
            logger.debug("cachedeps: closing store %r failed", store, exc_info=True)
