"""``install()``: the session listeners that serve reads from the cache.

Reads go through ``do_orm_execute``:

- ``session.get(Model, pk)``, the refresh of an expired object and many-to-one lazy loads
  by primary key read the row's state by ``(tid, oid)`` checkpoints:
  :meth:`cachedeps.Cache.get_state` on the oid, one store round trip; a miss loads from the
  database and stores the state at the tid polled when the transaction began.
- selects marked with :class:`~sqla_cachedeps.options.FromCache` (or
  ``execution_options(cachedeps=True)``) and lazy loads marked with
  :class:`~sqla_cachedeps.options.RelationshipCache` (or all lazy loads with
  ``install(..., lazy_loads=True)``) are derived entries, valid while none of their
  dependency keys (:func:`~sqla_cachedeps.analysis.read_keys`) changed.

The change feed is polled once per session transaction, in ``after_begin``, on the
session's own connection (once per unit inside :func:`cachedeps.unit_of_work`). Inside a transaction that has written, reads bypass the cache
(a transaction reads its own writes). Writes, ORM ``update()``/``delete()`` statements
included, are handled by :mod:`sqla_cachedeps.writes`.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from typing import Any, Mapping, Sequence

from sqlalchemy import event
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.base import instance_state
from sqlalchemy.sql.cache_key import anon_map

from cachedeps import NO_VALUE
from cachedeps import recording as _rec
from cachedeps.errors import CachedepsError, ConfigurationError
from cachedeps.feed import SqlFeed
from cachedeps.querykey import query_key
from cachedeps.verify import Verifier
from cachedeps.views import over_views

from . import identity
from .analysis import compiled_tables, primary_key_binds, read_keys, statement_mappers
from .finer import finer_read, row_deps
from .spelling import pk_oid
from .databases import Databases, check_binds, namespace_of, statement_bind, statement_connection
from .feed import DEFAULT_TABLE, feed_for_dialect, feed_name
from .options import EXECUTION_OPTION, FromCache, RelationshipCache
from .verify import VERIFY_OPTION, verify_query, verify_state
from .writes import Writes, conn_state, session_state

__all__ = ["install", "Installation"]

log = logging.getLogger("sqla_cachedeps")

_QUERY_PREFIX = "sqla:q:"
# session factory target -> its installation (one per target)
_installed: weakref.WeakKeyDictionary[Any, Installation] = weakref.WeakKeyDictionary()
# the execution option SQLAlchemy gives an ORM update()/delete() and its pre-fetch SELECT
_DML_PREFETCH = "_sa_orm_update_options"
# distinct statement shapes whose SQL text is kept for building query keys
_MAX_STATEMENTS = 2000


def install(
    session_factory: Any,
    cache: Any,
    *,
    gets: bool = True,
    lazy_loads: bool = False,
    feed_table: str = DEFAULT_TABLE,
    verify: Any = False,
    views: Mapping[str, Sequence[str]] | None = None,
    capture: bool = False,
    database: Any = None,
    feed_keep: int | None = 100_000,
) -> Installation:
    """Serve reads of ``session_factory``'s sessions from ``cache``, invalidated by their writes.

    Args:
        session_factory: a ``sessionmaker``, a ``Session`` subclass or an
            ``async_sessionmaker`` (its sync session class gets the listeners; a private
            subclass is configured when it uses the plain ``Session``).
        cache: a :class:`cachedeps.Cache` whose feed is a ``SqlFeed``, or a store URL such as
            ``"embedded://"`` or ``"memcache://127.0.0.1:11211"`` (a cache is then built with
            a ``SqlFeed`` for the engine's database).
        gets: serve ``session.get()`` and refreshes of expired objects from the cache.
        lazy_loads: serve every relationship lazy load from the cache (otherwise only those
            marked with :class:`~sqla_cachedeps.options.RelationshipCache`).
        feed_table: the change feed table (create it with
            :func:`~sqla_cachedeps.feed.create_feed_table`).
        verify: verify mode (:mod:`cachedeps.verify`): ``True`` runs every hit's query on the
            database as well, in the session's connection and transaction, and raises
            :class:`~cachedeps.errors.StaleRead` on a difference; a fraction such as ``0.01``
            verifies that share of hits and logs differences. Verify statements carry the
            execution option ``cachedeps_verify=True`` (for statement counters to skip).
        views: ``{"view_name": ["base_table", ...]}``: the base tables of database views
            mapped as tables. Views are detected in the database (SQLite, PostgreSQL views and
            materialized views); reads of an undeclared one are not cached, reads of a
            declared one depend on its base tables' table keys.
        capture: capture triggers (:func:`sqla_cachedeps.capture`) are installed on some
            tables: writes leave those tables' keys to the triggers (given a store URL; a
            ``Cache`` brings its own ``SqlFeed(capture=True)``).
        database: the engine whose database the cache serves. Each database has its own
            change feed and tid sequence, so one cache serves one database
            (:mod:`sqla_cachedeps.databases`); statements on any other database run
            uncached. Default: the factory's ``bind``, else the first database a session
            uses. Required when the factory's ``binds`` reach several databases.
        feed_keep: every :data:`~sqla_cachedeps.writes.PRUNE_EVERY` commits of this process
            that write to the feed, the committing transaction prunes the feed table to its
            newest ``feed_keep`` rows (in a savepoint; a failure is logged and retried at the
            next prune). A process whose position is older than what was pruned starts
            afresh: misses, never a stale read. ``None``: never prune (prune with
            ``SqlFeed.prune`` yourself).

    Returns:
        An :class:`Installation`; ``uninstall()`` removes every listener.

    A ``memcache://`` server that does not accept connections is logged as a warning
    (logger ``sqla_cachedeps``): the application then runs on its database and caches
    nothing until the server is up.

    Raises:
        ConfigurationError: the factory or the cache is not usable; the factory's binds
            reach several databases and ``database`` does not say which one to cache.
    """
    target = _session_class(session_factory)
    bound = _binds_of(session_factory)
    check_binds(bound, database)
    existing = _installed.get(target)
    if existing is not None and existing.installed:
        raise ConfigurationError(
            f"{session_factory!r} is already installed; call uninstall() on the first handle before "
            "installing again"
        )
    if feed_keep is not None and (isinstance(feed_keep, bool) or not isinstance(feed_keep, int) or feed_keep < 0):
        raise ConfigurationError(f"install(feed_keep=...) must be an int >= 0 or None, got {feed_keep!r}")
    inst = Installation(target, cache, gets=gets, lazy_loads=lazy_loads, feed_table=feed_table, verify=verify,
                        views=views, capture=capture, feed_keep=feed_keep)
    from cachedeps.config import unreachable_servers

    for problem in unreachable_servers(cache if isinstance(cache, str) else getattr(cache, "store", None)):
        log.warning("sqla_cachedeps.install(): %s", problem)
    if database is not None or bound:
        inst.databases.choose(database if database is not None else bound[0])
    bind = _bind_of(session_factory)
    for engine in (database, bind):
        if engine is not None:
            inst.watch_engine(engine)
    inst._listen()
    _installed[target] = inst
    return inst


def _session_class(factory: Any) -> Any:
    if isinstance(factory, sessionmaker):
        return factory
    if isinstance(factory, type) and issubclass(factory, Session):
        return factory
    kw = getattr(factory, "kw", None)
    if hasattr(factory, "configure") and isinstance(kw, dict) and "sync_session_class" in _async_kw(factory):
        sync_cls = kw.get("sync_session_class")
        if sync_cls is None:
            # Listening on the plain Session class would reach every session in the process.
            sync_cls = type("Session", (Session,), {})
            factory.configure(sync_session_class=sync_cls)
        return sync_cls
    raise ConfigurationError(
        f"install() takes a sessionmaker, a Session subclass or an async_sessionmaker, got {factory!r}"
    )


def _async_kw(factory: Any) -> set[str]:
    try:
        from sqlalchemy.ext.asyncio import async_sessionmaker
    except ImportError:  # pragma: no cover - asyncio extra missing
        return set()
    return {"sync_session_class"} if isinstance(factory, async_sessionmaker) else set()


def _bind_of(factory: Any) -> Any:
    kw = getattr(factory, "kw", None)
    return kw.get("bind") if isinstance(kw, dict) else None


def _binds_of(factory: Any) -> list[Any]:
    """Return the engines a session factory is configured with (``bind`` first, then ``binds``)."""
    kw = getattr(factory, "kw", None)
    if not isinstance(kw, dict):
        return []
    out = [kw["bind"]] if kw.get("bind") is not None else []
    out.extend(b for b in (kw.get("binds") or {}).values() if b is not None)
    return out


class Installation:
    """The listeners installed on one session factory; see :func:`install`."""

    def __init__(self, target: Any, cache: Any, *, gets: bool, lazy_loads: bool, feed_table: str,
                 verify: Any = False, views: Mapping[str, Sequence[str]] | None = None,
                 capture: bool = False, feed_keep: int | None = None) -> None:
        self.target = target
        #: rows the feed keeps when the commits prune it (None: never)
        self.feed_keep = feed_keep
        self.capture = capture
        self.verifier = Verifier(verify, "install(verify=...)")
        self.declared_views = _declared_views(views)
        # engine -> {view name: declared base tables, or None}: the views found in its database
        # (weakly: an installation must not keep the engines it saw, nor their pools, alive)
        self._views: weakref.WeakKeyDictionary[Any, dict[str, tuple[str, ...] | None]] = (
            weakref.WeakKeyDictionary())
        self.gets = gets
        self.lazy_loads = lazy_loads
        self.feed_table = feed_table
        #: the database the cache serves (:mod:`sqla_cachedeps.databases`)
        self.databases = Databases(feed_table)
        self._lock = threading.Lock()
        self._statement_cache: dict[Any, tuple[str, list[list[Any]], tuple, frozenset[str]]] = {}
        # instance state -> RelationshipCache options of the cached query that produced it
        self._hit_options: weakref.WeakKeyDictionary[Any, list] = weakref.WeakKeyDictionary()
        if isinstance(cache, str):
            self._url: str | None = cache
            self._cache: Any = None
            self._feed: SqlFeed | None = None
        else:
            feed = getattr(cache, "feed", None)
            if not isinstance(feed, SqlFeed):
                raise ConfigurationError(
                    f"install() needs a cache whose feed is a cachedeps.feed.SqlFeed (got feed {feed!r}); "
                    "pass Cache(store, feed=SqlFeed(dialect=...)) or a store URL"
                )
            self._url = None
            self._cache = cache
            self._feed = feed
        self.writes = Writes(self)
        self._guarded: weakref.WeakSet[Any] = weakref.WeakSet()
        self._installed = False

    # -- configuration --------------------------------------------------------------------

    @property
    def cache(self) -> Any:
        """The :class:`cachedeps.Cache` in use (built on first use from a URL)."""
        if self._cache is None:
            raise ConfigurationError(
                "the cache is built when the first engine is seen; bind the session factory to an engine "
                "or call watch_engine(engine)"
            )
        return self._cache

    @property
    def feed(self) -> SqlFeed:
        """The change feed."""
        if self._feed is None:
            raise ConfigurationError("no engine seen yet; bind the session factory or call watch_engine(engine)")
        return self._feed

    def ensure_feed(self, dialect: Any, engine: Any = None) -> None:
        """Build the cache for ``dialect``'s database if it was given as a URL.

        Its store namespace is the database's own (:func:`~sqla_cachedeps.databases.namespace_of`):
        installations over other databases may share the store.
        """
        if self._cache is not None:
            if self._feed is not None and self._feed.dialect != (feed_name(dialect) or dialect.name):
                raise ConfigurationError(
                    f"this cache's feed speaks {self._feed.dialect!r} but the engine is {dialect.name!r}; "
                    "one installation serves one database"
                )
            return
        with self._lock:
            if self._cache is None:
                import cachedeps

                feed = feed_for_dialect(dialect, self.feed_table, capture=self.capture)
                namespace = namespace_of(engine) if engine is not None else ""
                self._cache = cachedeps.Cache(self._url, feed=feed, namespace=namespace)
                self._feed = feed

    def watch_engine(self, engine: Any) -> None:
        """Also detect Core writes made directly on ``engine`` (not through a session).

        Every statement on a watched engine that is not a cached read's own (a read this
        installation does not cache, Core or text SQL) poisons the open
        :meth:`cachedeps.Cache.recording` blocks: what they compute is then not stored.
        """
        self.writes.watch_engine(engine)
        engine = getattr(engine, "sync_engine", engine)
        if engine not in self._guarded:
            event.listen(engine, "before_cursor_execute", _guard)
            self._guarded.add(engine)

    def _listen(self) -> None:
        event.listen(self.target, "after_begin", self._after_begin)
        event.listen(self.target, "do_orm_execute", self._do_orm_execute)
        self.writes.listen(self.target)
        self._installed = True

    @property
    def installed(self) -> bool:
        """Whether the listeners are in place (False after :meth:`uninstall`)."""
        return self._installed

    def uninstall(self) -> None:
        """Remove every listener this installation added."""
        if not self._installed:
            return
        for name, fn in (("after_begin", self._after_begin), ("do_orm_execute", self._do_orm_execute)):
            if event.contains(self.target, name, fn):
                event.remove(self.target, name, fn)
        self.writes.remove(self.target)
        for engine in list(self._guarded):
            if event.contains(engine, "before_cursor_execute", _guard):
                event.remove(engine, "before_cursor_execute", _guard)
        self._guarded = weakref.WeakSet()
        self._installed = False
        if _installed.get(self.target) is self:
            del _installed[self.target]
        if self._url is not None and self._cache is not None:
            self._cache.store.close()  # the store this installation opened from its URL

    # -- transactions -------------------------------------------------------------------------

    def _after_begin(self, session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        if not isinstance(connection, Connection):
            return  # a stand-in for a connection (a test double): nothing to watch or poll
        state = session_state(session, self)
        if state is None:
            return
        self.watch_engine(connection.engine)
        self.views_on(connection)
        if connection not in state.connections:
            state.connections.append(connection)
        conn_state(connection)
        if state.tid is None and self.databases.serves(connection):
            # Once per transaction; inside cachedeps.unit_of_work() once per unit (a task, a
            # script), its later transactions reading as of that poll plus this process's
            # own writes, as a request does. Only the cache's own database is polled:
            # another's positions are not ours. The database's own error propagates (noted
            # with how to create the table).
            state.tid = self.cache.ensure_polled(connection.connection)

    def _find_views(self, connection: Connection) -> dict[str, tuple[str, ...] | None]:
        """Return the database's views (with their declared base tables, or None).

        Read on the DB-API connection, like the feed poll: no statement event fires.
        """
        names = set(self.declared_views)
        sql = _VIEW_SQL.get(connection.dialect.name)
        if sql is not None:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(sql)
                names.update(row[0] for row in cursor.fetchall())
            finally:
                cursor.close()
        return {name: self.declared_views.get(name) for name in names}

    def views_on(self, connection: Connection) -> dict[str, tuple[str, ...] | None]:
        """Return the views known in ``connection``'s database (found on first use)."""
        engine = connection.engine
        if engine not in self._views:
            self._views[engine] = self._find_views(connection)
        return self._views[engine]

    def views_of(self, bind: Any) -> dict[str, tuple[str, ...] | None]:
        """Return the views known in ``bind``'s database (an engine or a connection)."""
        return self._views.get(getattr(bind, "engine", bind)) or dict(self.declared_views)

    # -- reads ----------------------------------------------------------------------------------

    def _do_orm_execute(self, orm_state: ORMExecuteState) -> Result | None:
        if _followed(orm_state.session):
            # A do_orm_execute listener runs after this one (one of the session's own, or
            # added later): it may change the statement, its parameters or options, or answer
            # with a result of its own, none of which this listener would see. Reads run
            # uncached, writes emit their tables' keys (before_cursor_execute).
            return None
        if orm_state.is_update or orm_state.is_delete:
            if _flag(orm_state) is False:
                return None
            return self.writes.statement(orm_state)
        if not orm_state.is_select:
            return None
        if not getattr(orm_state, "is_orm_statement", True):
            # A select of tables alone runs as Core: SQLAlchemy answers with the cursor's own
            # CursorResult (its execution context, cursor and rowcount; Query.instances()
            # loads entities from it), which no copy of its rows can be. Not cached.
            return None
        flag = _flag(orm_state)
        if flag is False:
            return None
        if _DML_PREFETCH in orm_state.local_execution_options or _DML_PREFETCH in orm_state.execution_options:
            # SQLAlchemy's own SELECT of the rows an ORM update()/delete() matches
            # (synchronize_session="fetch"): part of the write. Its last listener chooses
            # RETURNING, which a hit would skip, syncing the session from rows matched earlier.
            return None
        session = orm_state.session
        state = session_state(session, self)
        if state is None:
            return None
        if orm_state.is_column_load:
            if not self.gets:
                return None
            return self._get(orm_state, state, refresh=True)
        if orm_state.is_relationship_load:
            if self.gets and "_sa_orm_load_options" in orm_state.local_execution_options:
                # A many-to-one lazy load by primary key is a get: the row's cached state.
                result = self._get(orm_state, state, refresh=False)
                if result is not None:
                    return result
            options = list(orm_state.user_defined_options)
            parent = orm_state.lazy_loaded_from
            if parent is not None:
                options.extend(self._hit_options.get(parent, ()))
            if self.lazy_loads or any(isinstance(o, RelationshipCache) and o.applies(orm_state) for o in options):
                return self._query(orm_state, state, None)
            return None
        option = next((o for o in orm_state.user_defined_options if type(o) is FromCache), None)
        if option is not None or flag is True:
            return self._query(orm_state, state, option)
        if self.gets and "_sa_orm_load_options" in orm_state.local_execution_options:
            return self._get(orm_state, state, refresh=False)
        return None

    def _begin(self, orm_state: ORMExecuteState, state: Any) -> tuple[int, Any] | None:
        """Make sure the transaction began (and polled); return its tid and the statement's
        bind, None to bypass.

        The bind is the one the statement itself runs on (:func:`statement_bind`): the
        transaction begins, and the feed is polled, on the statement's own connection.
        """
        try:
            bind = statement_bind(orm_state)
        except Exception:  # noqa: BLE001 - no bind: the ORM raises its own error on execution
            return None
        if not self.databases.serves(bind):
            return None  # another database: its positions are not this cache's
        if state.tid is None:
            statement_connection(orm_state, bind)
        if state.has_writes() or state.tid is None:
            return None
        session = orm_state.session
        if session.new or session.dirty or session.deleted:
            return None  # unflushed changes (autoflush off): what a load returns is not the database's
        return state.tid, bind

    def _get(self, orm_state: ORMExecuteState, state: Any, refresh: bool) -> Result | None:
        statement = orm_state.statement
        mapper = orm_state.bind_mapper
        if mapper is None or not identity.state_cacheable(mapper):
            return None
        opts = orm_state.load_options
        if getattr(opts, "_populate_existing", False) or getattr(statement, "_for_update_arg", None) is not None:
            return None
        if not identity.options_reproducible(statement):
            return None  # loader options a state of columns cannot give the object
        if refresh:
            refresh_state = getattr(opts, "_refresh_state", None)
            compile_opts = getattr(statement, "_compile_options", None)
            only = getattr(compile_opts, "_only_load_props", None)
            if refresh_state is None or refresh_state.modified or refresh_state.mapper is not mapper:
                return None
            if only and not only.issuperset(p.key for p in mapper.column_attrs):
                return None  # a partial refresh (deferred columns): leave it to the database
            pk = refresh_state.identity
        else:
            pk = _get_identity(mapper, orm_state)
        if pk is None:
            return None
        begun = self._begin(orm_state, state)
        if begun is None:
            return None
        tid, bind = begun
        if mapper.local_table.name in self.views_of(bind):
            return None  # a view: its rows change with its base tables, not under its oids
        oid = pk_oid(mapper.local_table, tuple(pk), bind.dialect)
        if oid is None:
            return None
        cache = self.cache
        verifier = self.verifier
        verifying = verifier.rate and verifier.sample()
        if verifying:
            position = cache.current_tid
            cached, stamp = cache.get_state_meta(oid)  # records the oid
        else:
            cached = cache.get_state(oid)  # records the oid
        if cached is not NO_VALUE:
            if verifying:
                verify_state(self, orm_state.session, mapper, pk, cached, oid, stamp, position, bind=bind)
            try:
                rows = [] if cached is None else [
                    (identity.attach(orm_state.session, mapper, cached, identity.load_context(statement)),)]
            except (identity.Unsupported, TypeError, KeyError, AttributeError) as exc:
                log.debug("cached state of %s unusable (%s); loading from the database", oid, exc)
            else:
                return identity.make_result((mapper.class_.__name__,), rows, (0,))
        # The one instance this load may return: already there and fully expired, it is
        # filled from the row (an instance holding loaded values is not stored).
        expired = identity.expired_states(orm_state.session, [mapper.identity_key_from_primary_key(tuple(pk))])
        before = identity.keys_before(orm_state.session)
        with _rec.accounted():  # the oid was recorded by get_state
            result = orm_state.invoke_statement()
        if identity.requires_unique(result):
            return result  # joined collections: the caller uniques it; not cached
        runid = identity.load_run(result)
        frozen = result.freeze()
        objs = [row[0] for row in frozen()]
        if len(objs) <= 1 and identity.not_from_rows(frozen, runid, expired, before) == []:
            try:
                value = identity.encode_state(objs[0]) if objs else None
            except identity.Unsupported:
                return frozen()
            _store(cache.set_state, oid, value, tid=tid)
        return frozen()

    def _query(self, orm_state: ORMExecuteState, state: Any, option: FromCache | None) -> Result | None:
        statement = orm_state.statement
        params = orm_state.parameters or {}
        if not isinstance(params, Mapping):
            return None  # several parameter sets (a bulk statement's fetch): not cached
        if _streamed(orm_state):
            return None  # rows fetched in batches: a cached copy would hold them all at once
        if not identity.options_reproducible(statement):
            return None  # eager loads and options carried to later loads: not cached
        begun = self._begin(orm_state, state)
        if begun is None:
            return None
        tid, bind = begun
        keyed = self._query_key(statement, params, _shaping_load_options(orm_state))
        if keyed is None:
            return None
        key, compiled_tables = keyed
        cache = self.cache
        verifier = self.verifier
        verifying = verifier.rate and verifier.sample()
        if getattr(orm_state.load_options, "_populate_existing", False):
            # A hit keeps the loaded attributes of instances already in the session; the
            # caller asked for the database's values over them: load (and refill) instead.
            cached = NO_VALUE
        elif verifying:
            position = cache.current_tid
            cached, stamp, hit_deps = cache.get_meta(key)  # a hit records its dependencies
        else:
            cached = cache.get(key)  # a hit records its dependencies
        if cached is not NO_VALUE:
            if verifying:
                verify_query(self, orm_state, cached, hit_deps, stamp, position, bind=bind)
            try:
                # unique() as on SQLAlchemy's own result of the statement (by identity,
                # by hash, or its error for a type of unhashable values)
                columns = identity.hit_columns(
                    statement, bool(getattr(orm_state.load_options, "_legacy_uniquing", False)))
                if columns is None:
                    raise identity.Unsupported("the statement's result columns are not known")
                filters, targets = columns
                result = identity.decode_result(orm_state.session, cached, lambda: _registries(statement),
                                                identity.load_context(statement), targets, filters)
            except (identity.Unsupported, TypeError, KeyError, AttributeError, ValueError) as exc:
                log.debug("cached result %s unusable (%s); loading from the database", key, exc)
            else:
                return self._carry_options(orm_state, result)
        dialect = bind.dialect
        plain = read_keys(statement, params, dialect, compiled_tables)
        deps = None if plain is None else over_views(plain, self.views_of(bind))
        if deps is None:
            return None  # not analysable, or an undeclared view: never cached
        # Finer keys name the read's own table: not for a read over a view.
        fine = finer_read(statement, params, dialect) if deps == plain else None
        if fine is None:
            cache.record(*deps)
        # The statement runs as the caller gave it (the listeners after this one see its
        # options unchanged); instances already in the identity map keep their loaded
        # attributes, as without the cache. Those may hold values from an earlier
        # transaction (expire_on_commit=False) or the caller's own (merge(load=False)):
        # the entry stores their rows' values, read again (identity.database_values).
        expired = identity.expired_states(orm_state.session)
        before = identity.keys_before(orm_state.session)
        with _rec.accounted():  # its keys are recorded (below for finer reads)
            result = orm_state.invoke_statement()
        if identity.requires_unique(result):
            return result  # joined collections: the caller uniques it; not cached
        runid = identity.load_run(result)
        frozen = result.freeze()
        if fine is not None:
            # Change keys and the oids of the rows returned (sqla_cachedeps.finer).
            deps = list(row_deps(fine, list(frozen()), dialect) or deps)
            cache.record(*deps)
        kept = identity.not_from_rows(frozen, runid, expired, before)
        if kept is None:
            return frozen()
        stored = None
        if kept:
            # Instances the load did not fill: store the database's values of their rows. A
            # session that does not expire its instances on commit may hand the caller values
            # older than the transaction: a recorded computation (a view) made of them is not
            # stored.
            if not orm_state.session.expire_on_commit:
                _rec.poison("a load returned instances a session kept from an earlier transaction")
            with _rec.accounted():  # the rows' own values, under the keys recorded
                stored = identity.database_values(orm_state.session, kept, bind)
            if stored is None:
                return frozen()
        try:
            value = identity.encode_result(frozen, stored)
        except identity.Unsupported:
            return frozen()
        timeout = option.timeout if option is not None else None
        _store(cache.set, key, value, depends_on=deps, timeout=timeout, tid=tid)
        return frozen()

    def _carry_options(self, orm_state: ORMExecuteState, result: Result) -> Result:
        """Give entities from a hit the relationship options a database load would attach."""
        carried = [o for o in orm_state.user_defined_options if isinstance(o, RelationshipCache)]
        if not carried:
            return result
        frozen = result.freeze()
        for row in frozen():
            for cell in row:
                try:
                    self._hit_options[instance_state(cell)] = carried
                except Exception:  # not an entity
                    continue
        return frozen()

    def _query_key(self, statement: Any, params: Any, load: tuple = ()) -> tuple[str, frozenset[str]] | None:
        """Return the query key and the tables the compiled statement reads, or ``None``.

        ``load``: the load options that shape the result (:func:`_shaping_load_options`), which
        the statement's own cache key leaves out."""
        cache_key = statement._generate_cache_key()
        if cache_key is None:
            return None
        if len(self._statement_cache) > _MAX_STATEMENTS:
            self._statement_cache.clear()
        # As CacheKey.to_offline_string, with the exact typed encoding instead of repr().
        # The SQL text and the result's shape are fixed by the statement's structure.
        text = self._statement_cache.get(cache_key.key)
        if text is None:
            text = self._statement_cache[cache_key.key] = _statement_text(statement, cache_key)
        sql, shape, constants, tables = text
        if cache_key.bindparams:
            try:
                values = tuple(params[bp.key] if bp.key in params else bp.effective_value
                               for bp in cache_key.bindparams)
            except Exception:  # noqa: BLE001 - a deferred value that cannot be read now
                # (``Address.user == u`` of an unflushed or detached expired ``u``): not
                # cached; the statement raises the ORM's own error when it runs
                return None
            extracted = {bp.key for bp in cache_key.bindparams}
            extra = tuple((k, params[k]) for k in sorted(params) if k not in extracted)
        else:
            values = tuple(params[k] for k in sorted(params))
            extra = ()
        return query_key(_QUERY_PREFIX, sql, values, shape, constants, extra + load), tables


_VIEW_SQL = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'view'",
    "postgresql": "SELECT viewname FROM pg_views WHERE schemaname = ANY (current_schemas(false)) "
                  "UNION SELECT matviewname FROM pg_matviews WHERE schemaname = ANY (current_schemas(false))",
    "mysql": "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
    "mariadb": "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
}


def _declared_views(views: Any) -> dict[str, tuple[str, ...]]:
    if views is None:
        return {}
    if not isinstance(views, Mapping):
        raise ConfigurationError(f"views must map view names to lists of base tables, got {views!r}")
    out: dict[str, tuple[str, ...]] = {}
    for name, bases in views.items():
        if not isinstance(name, str) or isinstance(bases, str) or not bases or not all(
            isinstance(b, str) and b for b in bases
        ):
            raise ConfigurationError(
                f"views[{name!r}] must be a non-empty list of base table names, got {bases!r}"
            )
        out[name] = tuple(bases)
    return out


def _guard(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    if not _rec.RECORDERS.get():
        return
    if context is not None and context.execution_options.get(VERIFY_OPTION):
        return  # verify mode's check of a hit
    _rec.poison_statement(statement)


def _statement_text(statement: Any, cache_key: Any) -> tuple[str, list[list[Any]], tuple, frozenset[str]]:
    """Return the SQL text, the result's shape, the values bound in the structure and the
    tables the compiled statement reads (:func:`sqla_cachedeps.analysis.compiled_tables`).

    The SQL names its bound parameters, not their values. The values a cache key extracts
    (``cache_key.bindparams``) vary between statements of one structure and are keyed per
    read; every other bound value is part of the structure -- a literal in a relationship's
    ``primaryjoin`` (``orders.isopen = :isopen_1``) that an eager or lazy load's statement
    reaches through the relationship, not through its own clauses. Two relationships to one
    mapper that differ only in such a literal compile to the same SQL text: the values must
    be in the key, or one relationship's cached rows are served for the other. SQLAlchemy
    itself reuses these values for every statement of the structure, so they are constant
    under ``cache_key.key``.
    """
    compiled = statement.compile()
    extracted = {bp.key for bp in cache_key.bindparams}
    constants = []
    for bind, name in compiled.bind_names.items():
        if bind.key in extracted:
            continue
        try:
            value = bind.effective_value if bind.callable else bind.value
        except Exception:  # a callable that cannot run here: keyed by nothing, so not cached
            value = _Unkeyable()
        constants.append((name, value))
    constants.sort(key=lambda item: item[0])
    # Loader options decide which columns an entity loads and how, not only the SQL: a
    # ``load_only()`` and a plain load of one mapper can compile to the same SELECT (columns
    # deduplicated) yet populate different attributes. Their structure is in the key.
    options = []
    for opt in getattr(statement, "_with_options", ()):
        if getattr(opt, "_is_user_defined", False):
            continue  # carries data to event handlers (FromCache): loads nothing differently
        gen = getattr(opt, "_generate_cache_key", None)
        try:
            opt_key = gen() if gen is not None else None
        except Exception:  # noqa: BLE001 - an option SQLAlchemy cannot key: not cached
            opt_key = None
        options.append(_stable(opt_key.key) if opt_key is not None else _Unkeyable())
    compile_options = getattr(statement, "_compile_options", None)
    if compile_options is not None and hasattr(compile_options, "_gen_cache_key"):
        try:
            options.append(_stable(compile_options._gen_cache_key(anon_map(), [])))
        except Exception:  # noqa: BLE001 - an option SQLAlchemy cannot key: not cached
            options.append(_Unkeyable())
    return (str(compiled), _result_shape(statement), tuple(constants) + (("options", tuple(options)),),
            compiled_tables(compiled))


_ANON = re.compile(r"%\(\d+ ")


def _stable(value: Any) -> Any:
    """Return ``value`` (part of a SQLAlchemy cache key) as plain data, the same in every process.

    Mappers, properties and classes become their names; anonymous names lose their object
    ids. A part that cannot be named so becomes ``_Unkeyable``: the read is not cached.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return _ANON.sub("%(", value) if isinstance(value, str) else value
    if isinstance(value, (tuple, list)):
        return tuple(_stable(v) for v in value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapper):
        cls = value.class_
        return f"mapper:{cls.__module__}.{cls.__qualname__}:{value.local_table}"
    text = str(value)
    if " at 0x" in text:
        return _Unkeyable()
    return f"{type(value).__qualname__}:{_ANON.sub('%(', text)}"


class _Unkeyable:
    """A bound value that cannot be read when the key is built: ``query_key`` refuses it."""


def _result_shape(statement: Any) -> list[list[Any]]:
    """Return what the result's columns are, beyond the SQL text.

    ``select(Book)`` and ``select(Book.__table__)`` (or a ``Bundle`` of its columns) compile
    to the same SQL but return entities in one case and plain rows in the other: their
    cached results must not be shared.
    """
    resolved = getattr(statement, "_resolved", statement)
    try:
        descriptions = resolved.column_descriptions
    except Exception:  # not a select of columns: the SQL says it all
        return []
    shape: list[list[Any]] = []
    for d in descriptions:
        entity = d.get("entity")
        path = None
        if entity is not None:
            cls = getattr(getattr(entity, "mapper", None), "class_", entity)
            path = f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', repr(cls))}"
        expr = d.get("expr")
        shape.append([str(d.get("name")), type(expr).__qualname__, path, bool(d.get("aliased"))])
    return shape


def _store(fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except (CachedepsError, TypeError, ValueError, OverflowError) as exc:  # unserializable: served, not cached
        log.debug("result not cached: %s", exc)


def _flag(orm_state: ORMExecuteState) -> Any:
    """Return the ``cachedeps`` execution option of a statement's execution.

    An earlier ``do_orm_execute`` listener may set it with ``update_execution_options()``:
    SQLAlchemy 2.1 puts those in ``local_execution_options`` only (the statement runs with
    them), not in the ``execution_options`` merged when the execution began.
    """
    local = orm_state.local_execution_options
    if EXECUTION_OPTION in local:
        return local[EXECUTION_OPTION]
    return orm_state.execution_options.get(EXECUTION_OPTION)


#: load options of a legacy ``Query`` that change what its rows are, not its SQL
_SHAPING_LOAD_OPTIONS = ("_only_return_tuples", "_legacy_uniquing")


def _shaping_load_options(orm_state: ORMExecuteState) -> tuple:
    """Return the load options that shape ``orm_state``'s result (``Query.only_return_tuples()``:
    rows, not entities), as ``(name, value)`` pairs: two reads that differ only in them share
    SQL and parameters, never an entry."""
    load = orm_state.local_execution_options.get("_sa_orm_load_options")
    return tuple((name, bool(getattr(load, name, False))) for name in _SHAPING_LOAD_OPTIONS)


def _followed(session: Any) -> bool:
    """Return whether a ``do_orm_execute`` listener that is not an installation's runs after
    the installations' listeners on ``session``."""
    seen = False
    for fn in session.dispatch.do_orm_execute:
        if isinstance(getattr(fn, "__self__", None), Installation):
            seen = True
        elif seen:
            return True
    return False


def _streamed(orm_state: ORMExecuteState) -> bool:
    """Return whether the caller asked for a streamed result (``yield_per``, ``stream_results``).

    Such a result is read from the cursor in batches and behaves so (``unique()`` refused,
    ``close()`` closing the cursor, memory bounded by the batch): a cached result, frozen
    whole, is none of that. These reads run uncached.
    """
    local = orm_state.local_execution_options
    merged = orm_state.execution_options
    for name in ("yield_per", "stream_results"):
        if local.get(name, merged.get(name)):
            return True
    return bool(getattr(orm_state.load_options, "_yield_per", None))


def _registries(statement: Any) -> list[Any]:
    return [m.registry for m in statement_mappers(statement)]


def _get_identity(mapper: Any, orm_state: ORMExecuteState) -> tuple | None:
    """Return the primary key a ``session.get()`` statement loads, or None if it is not one."""
    params = orm_state.parameters
    statement = orm_state.statement
    where = getattr(statement, "whereclause", None)
    if not params or not isinstance(params, Mapping) or where is None:
        return None
    bind_keys = primary_key_binds(mapper, where)
    if bind_keys is None:
        return None
    try:
        values = tuple(params[k] for k in bind_keys)
    except KeyError:
        return None
    if None in values:
        return None
    if getattr(statement, "_setup_joins", None) or getattr(statement, "_limit_clause", None) is not None:
        return None
    return values
