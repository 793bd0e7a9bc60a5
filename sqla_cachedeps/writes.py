"""Write detection: flushes, Core and bulk statements, and their path to the change feed.

Every write becomes dependency keys written to the change feed inside the writer's
transaction, then handed to :meth:`cachedeps.Cache.committed` after the commit:

- **ORM flush** (precise). The old values of rows about to be updated or deleted are read
  from the database (one ``SELECT ... FOR NO KEY UPDATE SKIP LOCKED`` per table on
  PostgreSQL: no concurrent writer changes them before this transaction ends; a row another
  transaction holds is skipped and its table emits its table keys, see
  :meth:`Writes._fetch_old`), the new values of inserted and updated
  rows after the flush; each row emits :func:`cachedeps.keys.row_keys`. Tables the flush
  writes without mapped rows (many-to-many association tables) emit their table and
  all-rows keys. The keys are recorded against the innermost session transaction.
- **ORM-enabled ``update()``/``delete()``** of one table matching up to
  :data:`MAX_PRECISE_ROWS` rows (precise): the matched rows are read (and locked) before the
  statement, their new values after; a statement changing more rows than were read (rows
  that started matching in between) adds the table keys.
- **Other statements** (Core ``Connection.execute``, larger ORM statements, bulk inserts
  and updates, raw SQL): ``before_cursor_execute`` collects the table and all-rows keys of
  the table written (and of tables changed by cascading foreign keys).
- **Commit.** In the connection's ``commit`` event, just before COMMIT, the transaction's
  keys are appended to the feed (the feed's lock is held for that INSERT and the COMMIT
  only, so writers neither serialize nor deadlock with row locks); after the commit they
  go to :meth:`cachedeps.Cache.committed` (for Core statements outside a Session, which no
  session event follows, just before the COMMIT, without moving the context's stamp). On a
  connection in ``AUTOCOMMIT`` mode the append runs in a transaction of its own (``BEGIN``
  ... ``COMMIT``), so tids still commit in order, also when the connection or session ends
  without ``commit()`` (its statements committed all the same).
- **Views.** A write through a view (the database's, found when an engine is first used)
  also emits its base tables' keys (``install(views=...)``), or every mapped table's keys
  when they are not declared (:func:`cachedeps.views.through_views`).
- **Savepoints.** Keys of a ``begin_nested()`` block that rolls back are dropped; a
  released savepoint hands its keys to its parent.

SQLite serializes writers only once a write transaction has begun, so before reading old
values the adapter begins it with a no-op ``UPDATE`` of the feed table.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from sqlalchemy import event, select, tuple_
from sqlalchemy.exc import CompileError, DBAPIError, InvalidRequestError, StatementError
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, SessionTransaction, object_mapper, object_session
from sqlalchemy.orm.base import instance_state
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter

from cachedeps import keys
from cachedeps.errors import FeedError
from cachedeps.views import through_views

from .analysis import cascaded_tables, known_tables, referencing_tables, table_write_keys, written_tables
from .databases import statement_connection
from .spelling import stored_select
from .feed import feed_name

if TYPE_CHECKING:
    from .events import Installation

__all__ = ["Writes", "SessionState", "ConnState", "session_state", "MAX_PRECISE_ROWS", "PRUNE_EVERY"]

log = logging.getLogger("sqla_cachedeps")

_SESSION_KEY = "cachedeps"
_CONN_KEY = "cachedeps"
_SELECT_CHUNK = 500
#: ORM update()/delete() statements matching more rows than this emit table keys instead
MAX_PRECISE_ROWS = 1000
#: every this many commits that write to the feed (per process), the committing transaction
#: prunes it to ``install(feed_keep=...)`` rows
PRUNE_EVERY = 1000
_commits = 0
_commits_lock = threading.Lock()


class ConnState:
    """Per-connection write bookkeeping (``Connection.info``).

    ``Connection.info`` belongs to the pooled DB-API connection and outlives every checkout:
    nothing here may reference a session, a transaction or a ``Connection``, or a session
    dropped without ``close()`` would keep its connection checked out (and on SQLite its
    write lock held) for as long as the pool lives. The key records of the sessions that
    wrote on it are held (they hold keys only); the sessions themselves weakly.
    """

    __slots__ = ("pending", "locked", "flushing", "flush_tables", "published", "records", "sessions")

    def __init__(self) -> None:
        self.pending: dict[str, None] = {}
        self.locked = False
        self.flushing = False
        self.flush_tables: set[str] = set()
        self.published: list[tuple[list[str], int]] = []
        #: the key records (root transactions and savepoints) this connection's commit appends
        self.records: list[_TxRecord] = []
        #: the sessions whose after_commit tells the cache about this connection's commit
        self.sessions: weakref.WeakSet[SessionState] = weakref.WeakSet()

    def reset(self) -> None:
        """Forget the transaction's state (it committed, rolled back or a new one began)."""
        self.pending.clear()
        self.locked = False
        self.flushing = False
        self.flush_tables.clear()
        self.records.clear()
        self.sessions.clear()


class _TxRecord:
    """The keys a root transaction or a savepoint wrote (cleared if it rolls back)."""

    __slots__ = ("keys", "tid", "released")

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.tid = 0
        self.released = False


class SessionState:
    """Per-session bookkeeping (``Session.info``) for one installation."""

    def __init__(self, installation: Installation) -> None:
        self.installation = installation
        self.tid: int | None = None          # tid polled when the root transaction began
        self.wrote = False                   # writes flushed/executed in this root transaction
        self.records: dict[SessionTransaction, _TxRecord] = {}
        self.connections: list[Connection] = []
        self.old_rows: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self.written: dict[tuple[str, Any], tuple[Any, Any]] = {}  # (table, pk) -> (Table, op)
        self.coarse: set[Any] = set()        # tables whose rows could not be read: table keys
        self.flush_conn: Connection | None = None  # the connection of the flush in progress

    def end_root(self) -> None:
        """Forget the root transaction that ended."""
        self.tid = None
        self.wrote = False
        self.records.clear()
        self.connections.clear()
        self.old_rows.clear()
        self.written.clear()
        self.coarse.clear()
        self.flush_conn = None

    def has_writes(self) -> bool:
        """Return whether this transaction has written (reads then bypass the cache)."""
        if self.wrote:
            return True
        for conn in self.connections:
            state = _existing_conn_state(conn)
            if state is not None and state.pending:
                return True
        return False


def session_state(session: Session, installation: Installation | None = None) -> SessionState | None:
    """Return the session's bookkeeping for ``installation`` (created on first use)."""
    state = session.info.get(_SESSION_KEY)
    if state is None and installation is not None:
        state = session.info[_SESSION_KEY] = SessionState(installation)
    elif state is not None and installation is not None and state.installation is not installation:
        return None
    return state


def _existing_conn_state(conn: Connection) -> ConnState | None:
    """Return the connection's bookkeeping, or None if it has none or was invalidated.

    ``Connection.info`` raises on a connection invalidated mid-transaction (a disconnect):
    nothing it did can commit, so it has nothing to publish.
    """
    if conn.invalidated:
        return None
    try:
        return conn.info.get(_CONN_KEY)
    except Exception:  # noqa: BLE001 - PendingRollbackError and kin: see above
        return None


def conn_state(conn: Connection) -> ConnState:
    """Return the connection's write bookkeeping (created on first use)."""
    state = conn.info.get(_CONN_KEY)
    if state is None:
        state = conn.info[_CONN_KEY] = ConnState()
    return state


def _object_connection(session: Session, obj: Any) -> Connection:
    """Return the connection the flush writes ``obj`` on, chosen as the flush chooses it.

    The session's ``connection_callable`` with the object where it has one (a
    ``ShardedSession`` picks the shard from the instance), else the session's bind for the
    object's base mapper (what the unit of work asks for).
    """
    mapper = object_mapper(obj).base_mapper
    choose = getattr(session, "connection_callable", None)
    if choose is not None:
        if not session.in_transaction():
            # outside a transaction a connection_callable hands out a connection of its
            # own; the flush will have begun the session's first
            session.begin()
        return choose(mapper, obj)
    return session.connection(bind_arguments={"mapper": mapper})


def _flushing(conn: Connection) -> bool:
    """Return whether ``conn`` carries the flush in progress (:meth:`Writes.before_flush`).

    A row the flush writes on another connection (another bind or shard) is not read or
    noted: that connection's statements emit their tables' keys.
    """
    cstate = _existing_conn_state(conn)
    return cstate is not None and cstate.flushing


def _flush_connection(session: Session) -> Connection:
    """Return the connection a flush of ``session`` writes on (the first object's).

    Writes the flush sends on another connection (another bind or shard) are not this
    flush's rows: that connection is not marked as flushing, so each of its statements
    emits its tables' keys (:meth:`Writes.before_cursor_execute`).
    """
    for group in (session.new, session.dirty, session.deleted):
        for obj in group:
            return _object_connection(session, obj)
    return session.connection()


def _row_change(out: dict[str, None], table: Any, pk: Any, old: dict | None, new: dict | None) -> None:
    """Add the keys of one row write to ``out``, with tables changed by cascading keys.

    ``old`` and ``new`` hold the row's values as stored (:meth:`Writes._select_rows`), so
    keys are spelled from what the database compares and holds (an ``Enum``'s name, a
    ``Uuid``'s hex digits on SQLite) and changes are found on stored values.
    """
    stored = old or new
    if stored is not None:
        pk = _pk_value(tuple(stored[c.name] for c in table.primary_key.columns))
    else:  # the row is gone on both sides: every key of the table is implied
        out.update(dict.fromkeys(table_write_keys(table.name)))
        return
    out.update(dict.fromkeys(keys.row_keys(table.name, pk, old, new)))
    if old is not None:
        # Rows the database changes itself (ON DELETE/UPDATE CASCADE, SET NULL). No new row
        # under the old key: deleted, or its primary key updated (read back by the old key,
        # it is not found), so both actions apply.
        for delete in (True, False) if new is None else (False,):
            for child, columns in cascaded_tables(table, delete=delete):
                if new is None or any(old.get(c) != new.get(c) for c in columns):
                    out.update(dict.fromkeys(table_write_keys(child)))


def _binds_given(where: Any, params: dict) -> bool:
    """Return whether every bind parameter of ``where`` has a value (given or its own)."""
    for element in visitors.iterate(where):
        if isinstance(element, BindParameter) and element.key not in params:
            if element.required and element.callable is None:
                return False
    return True


def _stored_values(table: Any, row: Any, skip: int) -> dict[str, Any]:
    """Return ``{column name: stored value}`` from a row of :func:`.spelling.stored_select`."""
    return {c.name: v for c, v in zip(table.columns, row[skip:])}


def _invoke_accounted(orm_state: Any, cstate: ConnState, table: Any) -> tuple[Any, set[str]]:
    """Run the user's ORM statement, its write to ``table`` accounted for by the caller
    (precisely); return its result and the other tables it wrote (cascades, triggers' DML)."""
    cstate.flushing = True
    cstate.flush_tables.clear()
    try:
        result = orm_state.invoke_statement()
    finally:
        cstate.flushing = False
    written = cstate.flush_tables - {table.name}
    cstate.flush_tables.clear()
    return result, written


def _autocommit(conn: Connection) -> bool:
    """Return whether ``conn`` runs in AUTOCOMMIT mode (each statement commits by itself)."""
    return bool(getattr(conn, "_is_autocommit_isolation", lambda: False)())


def _pk_value(values: tuple) -> Any:
    return values[0] if len(values) == 1 else values


_ALL = object()  # SessionState.coarse: every table of the flush


def _read_or_none(select_rows: Any, conn: Connection, table: Any, pks: list, **kw: Any) -> Any:
    """Return ``select_rows(conn, table, pks)``, or None when SQLAlchemy refuses the read.

    A read SQLAlchemy cannot build or map (a column it will not select or name in a row, a
    parameter it cannot render) must not fail the user's flush: the table's writes then
    emit its table keys. The database's own errors propagate (the transaction is aborted).
    """
    try:
        return select_rows(conn, table, pks, **kw)
    except DBAPIError:
        raise
    except (StatementError, InvalidRequestError, CompileError) as exc:
        log.debug("rows of %s not read back (%s); its table keys are used", table.name, exc)
        return None


def _addressable(mapper: Any, table: Any) -> bool:
    """Return whether ``mapper``'s identity names rows of ``table`` by its primary key.

    Row keys and the read-back of old and new values select ``table``'s rows by its own
    primary key, with the values of the instance's identity, in the identity's order. That
    holds when each of ``table``'s primary key columns is, position by position, the
    mapper's primary key column or one the inherit conditions make equal to it (a joined
    subclass table keyed by a foreign key to its parent's key). A table without a primary
    key (mapped with ``primary_key=[...]``), or whose primary key is another column (a
    joined subclass table with a key of its own, joined on another column), cannot be
    addressed so: reading it by the identity's values would read another row, or fail on a
    key of another type. Its writes emit the table's keys (the flush's tables are collected
    for that anyway), never a query on the wrong columns.
    """
    cols = list(table.primary_key.columns)
    pk = list(mapper.primary_key)
    if not cols or len(cols) != len(pk):
        return False
    return all(col is key or col in _equal_columns(mapper, key) for col, key in zip(cols, pk))


def _equal_columns(mapper: Any, column: Any) -> set[Any]:
    """Return the columns the inherit conditions of ``mapper`` make equal to ``column``.

    ``Mapper._equivalent_columns`` pairs the columns of each inherit condition only (the
    grandchild's key with the child's, the child's with the parent's): they are followed
    through.
    """
    pairs = getattr(mapper, "_equivalent_columns", None) or {}
    seen: set[Any] = set()
    todo = [column]
    while todo:
        for other in pairs.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


class Writes:
    """The write-side listeners of one :class:`~sqla_cachedeps.events.Installation`."""

    def __init__(self, installation: Installation) -> None:
        self.inst = installation
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()
        self._session_events = [
            ("before_flush", self.before_flush),
            ("after_flush", self.after_flush),
            ("after_transaction_create", self.after_transaction_create),
            ("after_transaction_end", self.after_transaction_end),
            ("after_commit", self.after_commit),
        ]
        self._mapper_events = [
            ("before_update", self.before_row_write),
            ("before_delete", self.before_row_write),
            ("after_insert", self.after_insert),
            ("after_update", self.after_update),
            ("after_delete", self.after_delete),
        ]
        self._engine_events = [
            ("before_cursor_execute", self.before_cursor_execute),
            ("commit", self.on_commit),
            ("rollback", self.on_rollback),
            ("begin", self.on_begin),
        ]

    # -- wiring -------------------------------------------------------------------------

    def listen(self, target: Any) -> None:
        """Add the session and mapper listeners (``target``: the session factory or class)."""
        for name, fn in self._session_events:
            event.listen(target, name, fn)
        for name, fn in self._mapper_events:
            event.listen(Mapper, name, fn)

    def remove(self, target: Any) -> None:
        """Remove every listener :meth:`listen` and :meth:`watch_engine` added."""
        for name, fn in self._session_events:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        for name, fn in self._mapper_events:
            if event.contains(Mapper, name, fn):
                event.remove(Mapper, name, fn)
        for engine in list(self._engines):
            for name, fn in self._engine_events:
                if event.contains(engine, name, fn):
                    event.remove(engine, name, fn)
        self._engines = weakref.WeakSet()

    def watch_engine(self, engine: Any) -> None:
        """Detect Core writes on ``engine`` (an ``Engine`` or ``AsyncEngine``)."""
        engine = getattr(engine, "sync_engine", engine)
        if engine in self._engines:
            return
        if self.inst.databases.serves(engine):
            self.inst.ensure_feed(engine.dialect, engine)
        for name, fn in self._engine_events:
            event.listen(engine, name, fn)
        self._engines.add(engine)

    # -- session transactions --------------------------------------------------------------

    def after_transaction_create(self, session: Session, transaction: SessionTransaction) -> None:
        """Start the key record of a root transaction or a savepoint."""
        state = session_state(session, self.inst)
        if state is not None and (transaction.parent is None or transaction.nested):
            state.records[transaction] = _TxRecord()

    def after_commit(self, session: Session) -> None:
        """Mark a released savepoint; after the root commit, hand every key to the cache."""
        state = session_state(session)
        if state is None or state.installation is not self.inst:
            return
        nested = session.get_nested_transaction()
        if nested is not None:  # a savepoint released
            record = state.records.get(nested)
            if record is not None:
                record.released = True
            return
        root = session.get_transaction()
        pending: dict[str, None] = {}
        tid = 0
        record = state.records.get(root) if root is not None else None
        if record is not None:
            pending.update(record.keys)
            tid = record.tid
        for conn in state.connections:
            cstate = _existing_conn_state(conn)
            if cstate is None:
                continue
            for ks, t in cstate.published:
                pending.update(dict.fromkeys(ks))
                tid = max(tid, t)
            cstate.published.clear()
        if pending and tid:
            self.inst.cache.committed(list(pending), tid)

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        """Give a released savepoint's keys to its parent; drop a rolled-back one's."""
        state = session_state(session)
        if state is None or state.installation is not self.inst:
            return
        record = state.records.pop(transaction, None)
        if transaction.parent is None:
            state.end_root()
            return
        if record is None:
            return
        if record.released and record.keys:
            parent = transaction.parent
            while parent is not None and parent not in state.records:
                parent = parent.parent
            if parent is not None:
                target = state.records[parent]
                target.keys.update(record.keys)
                target.tid = max(target.tid, record.tid)
                # The parent holds the keys now: it takes the record's place on the
                # connections, so that the parent's rollback takes them back too.
                for conn in state.connections:
                    cstate = _existing_conn_state(conn)
                    if cstate is not None and any(record is r for r in cstate.records):
                        cstate.records = [r for r in cstate.records if r is not record]
                        if not any(target is r for r in cstate.records):
                            cstate.records.append(target)
            else:
                return  # no enclosing record: the connections keep this one
        # Rolled back (its keys are gone) or merged into its parent: the connections' lists
        # hold record objects, so its keys are taken out of every commit through them.
        record.keys.clear()

    # -- flush ------------------------------------------------------------------------------

    def before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Take the feed lock and read the old values of rows the flush will change."""
        state = session_state(session, self.inst)
        if state is None or not (session.new or session.dirty or session.deleted):
            return
        conn = state.flush_conn = _flush_connection(session)
        cstate = conn_state(conn)
        cstate.flushing = True
        cstate.flush_tables.clear()
        state.old_rows.clear()
        state.written.clear()
        state.coarse.clear()
        try:
            self._lock(conn, cstate)
        except FeedError:
            raise
        except Exception as exc:  # noqa: BLE001 - SQLite busy: another connection writes
            # Old values read now could change before the flush writes: none are read, and
            # every table the flush writes emits its table keys. The flush's own statements
            # then meet (or wait out) the other writer as they would without cachedeps.
            log.debug("feed lock not taken before the flush (%s); table keys for its writes", exc)
            state.coarse.add(_ALL)
            return
        targets = [o for o in session.dirty if session.is_modified(o, include_collections=False)]
        targets.extend(session.deleted)
        # the old rows of this connection's objects only: another shard's table of the same
        # name holds other rows under the same keys
        self._fetch_old(conn, state, [o for o in targets if _object_connection(session, o) is conn])

    def before_row_write(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Read the old values of a row the flush changes that ``before_flush`` did not see."""
        session = object_session(target)
        state = session_state(session) if session is not None else None
        if state is None or state.installation is not self.inst:
            return
        ident = instance_state(target).identity
        if ident is None or _ALL in state.coarse or not _flushing(connection):
            return
        missing = [t for t in mapper.tables
                   if _addressable(mapper, t) and t.name not in state.coarse
                   and (t.name, _pk_value(ident)) not in state.old_rows]
        if missing:
            self._fetch_old(connection, state, [target])

    def after_insert(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note an inserted row."""
        self._note(mapper, connection, target, "insert")

    def after_update(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note an updated row."""
        self._note(mapper, connection, target, "update")

    def after_delete(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note a deleted row."""
        self._note(mapper, connection, target, "delete")

    def _note(self, mapper: Mapper, connection: Connection, target: Any, op: str) -> None:
        session = object_session(target)
        state = session_state(session) if session is not None else None
        if state is None or state.installation is not self.inst or not _flushing(connection):
            return
        istate = instance_state(target)
        old = istate.identity
        new = tuple(mapper.primary_key_from_instance(target))
        for table in mapper.tables:
            if not _addressable(mapper, table):
                continue  # its write emits the table's keys (after_flush: flush_tables)
            if old is not None:
                state.written.setdefault((table.name, _pk_value(tuple(old))), (table, op))
            if op != "delete" and (old is None or tuple(old) != new):
                state.written[(table.name, _pk_value(new))] = (table, op)

    def after_flush(self, session: Session, flush_context: Any) -> None:
        """Read back the new values, turn every written row into keys, append them to the feed."""
        state = session_state(session)
        if state is None or state.installation is not self.inst:
            return
        conn = state.flush_conn or _flush_connection(session)
        state.flush_conn = None
        cstate = conn_state(conn)
        cstate.flushing = False
        out: dict[str, None] = {}
        if _ALL in state.coarse:  # no old values were read (before_flush)
            state.coarse.discard(_ALL)
            state.coarse.update(name for name, _ in state.written)
        # New values, read back: server defaults, triggers and onupdate included.
        by_table: dict[str, tuple[Any, list]] = {}
        for (name, pk), (table, op) in state.written.items():
            if name in state.coarse:
                continue
            if op != "delete":
                by_table.setdefault(name, (table, []))[1].append(pk)
        new_rows: dict[tuple[str, Any], dict[str, Any]] = {}
        for name, (table, pks) in by_table.items():
            found = _read_or_none(self._select_rows, conn, table, pks)
            if found is None:
                state.coarse.add(name)
            else:
                new_rows.update(found)
        rows_tables: set[str] = set()
        for (name, pk), (table, op) in state.written.items():
            if name in state.coarse:
                continue  # its table keys, below
            rows_tables.add(name)
            _row_change(out, table, pk, state.old_rows.get((name, pk)), new_rows.get((name, pk)))
        for name in state.coarse:
            out.update(dict.fromkeys(table_write_keys(name)))
        for name in cstate.flush_tables - rows_tables:
            out.update(dict.fromkeys(table_write_keys(name)))
        cstate.flush_tables.clear()
        state.old_rows.clear()
        state.written.clear()
        state.coarse.clear()
        self._publish(session, state, conn, out)

    def _publish(self, session: Session, state: SessionState, conn: Connection, out: dict[str, None]) -> None:
        """Record ``out`` against the innermost transaction; the commit appends it to the feed."""
        if not out:
            return
        transaction = session.get_nested_transaction() or session.get_transaction()
        record = state.records.get(transaction) if transaction is not None else None
        if record is None and transaction is not None:
            record = state.records[transaction] = _TxRecord()
        cstate = conn_state(conn)
        if record is not None:
            record.keys.update(out)
            if not any(record is r for r in cstate.records):
                cstate.records.append(record)
        else:
            cstate.pending.update(out)
        cstate.sessions.add(state)
        state.wrote = True

    # -- ORM update()/delete() statements ---------------------------------------------------

    def statement(self, orm_state: Any) -> Any:
        """Run an ORM-enabled ``update()``/``delete()`` with row-precise keys, or return None.

        The rows it matches are read first (under the feed lock), their new values after;
        each emits :func:`cachedeps.keys.row_keys`. The rows are matched with the statement's
        own parameters; an ``update()`` given a list of records (ORM bulk UPDATE by primary
        key) reads the records' rows by primary key. Statements over more than
        ``MAX_PRECISE_ROWS`` rows, over mappers of several tables, other parameter lists,
        or whose ``WHERE`` has a bind parameter without a value return None: they run
        normally, as the user wrote them, and emit table keys (:meth:`before_cursor_execute`).
        """
        session = orm_state.session
        state = session_state(session)
        if state is None or state.installation is not self.inst:
            return None
        if orm_state.is_executemany:
            return self._bulk_by_pk(orm_state, state) if orm_state.is_update else None
        mapper = orm_state.bind_mapper
        where = getattr(orm_state.statement, "whereclause", None)
        if mapper is None or where is None or len(mapper.tables) != 1:
            return None
        given = orm_state.parameters
        if given is not None and not isinstance(given, Mapping):
            return None
        params = dict(given or {})
        if not _binds_given(where, params):
            return None
        table = mapper.local_table
        conn = statement_connection(orm_state)  # the statement's own: a session may route by it
        cstate = conn_state(conn)
        self._lock(conn, cstate)
        cols = list(table.primary_key.columns)
        query = stored_select(table, cols).where(where).limit(MAX_PRECISE_ROWS + 1)
        query = _for_update(query, table, feed_name(conn.dialect) or "")
        try:
            found = conn.execute(query, params).all()
        except StatementError as exc:
            if isinstance(exc, DBAPIError):
                raise  # the database's own error: the user's statement would meet it too
            return None  # refused before reaching the database: run the user's statement as is
        if len(found) > MAX_PRECISE_ROWS or not cols:
            return None
        old_rows = {}
        for row in found:
            old_rows[_pk_value(tuple(row[: len(cols)]))] = _stored_values(table, row, len(cols))
        result, written = _invoke_accounted(orm_state, cstate, table)
        new_rows = {} if orm_state.is_delete else self._select_rows(conn, table, list(old_rows))
        out: dict[str, None] = {}
        if getattr(result, "rowcount", -1) > len(old_rows):
            # Rows that started matching after the read: their old values are unknown.
            out.update(dict.fromkeys(table_write_keys(table.name)))
        for pk, old in old_rows.items():
            new = new_rows.get((table.name, pk))
            if new is None and not orm_state.is_delete:
                # The row moved to another primary key: its new spelling is unknown.
                out.update(dict.fromkeys(table_write_keys(table.name)))
            _row_change(out, table, pk, old, new)
        for name in written:  # anything else the statement wrote
            out.update(dict.fromkeys(table_write_keys(name)))
        self._publish(session, state, conn, out)
        return result

    def _bulk_by_pk(self, orm_state: Any, state: SessionState) -> Any:
        """Run an ORM bulk UPDATE by primary key with row-precise keys, or return None.

        Every record names its row's primary key: those rows are read (and locked) before
        the statement and read after it. A record whose row is not found on both sides
        (absent, locked by another transaction, or a key value the database spells
        differently) adds the table keys.
        """
        mapper = orm_state.bind_mapper
        records = orm_state.parameters
        if mapper is None or len(mapper.tables) != 1 or not isinstance(records, (list, tuple)):
            return None
        if not records or len(records) > MAX_PRECISE_ROWS:
            return None
        table = mapper.local_table
        try:
            names = [mapper.get_property_by_column(c).key for c in table.primary_key.columns]
        except Exception:  # a primary key column the mapper does not map
            return None
        pks: list[Any] = []
        for record in records:
            if not isinstance(record, Mapping) or not names or any(n not in record for n in names):
                return None  # SQLAlchemy raises its own error, or runs it another way
            pks.append(_pk_value(tuple(record[n] for n in names)))
        session = orm_state.session
        conn = statement_connection(orm_state)
        cstate = conn_state(conn)
        self._lock(conn, cstate)
        try:
            # Locked like the flush's old-row read (:meth:`_fetch_old`): a row read cannot
            # change before the statement writes it; a row another transaction holds is
            # skipped, and its record adds the table keys below.
            old_rows = self._select_rows(conn, table, list(dict.fromkeys(pks)), lock=feed_name(conn.dialect) or "",
                                         skip_locked=_skips_locked_rows(conn.dialect))
        except StatementError as exc:
            if isinstance(exc, DBAPIError):
                raise
            return None
        result, written = _invoke_accounted(orm_state, cstate, table)
        new_rows = self._select_rows(conn, table, list(dict.fromkeys(pks)))
        out: dict[str, None] = {}
        for pk in dict.fromkeys(pks):
            old = old_rows.get((table.name, pk))
            new = new_rows.get((table.name, pk))
            if old is None or new is None:
                out.update(dict.fromkeys(table_write_keys(table.name)))
                if old is None and new is None:
                    continue
            _row_change(out, table, pk, old, new)
        for name in written:
            out.update(dict.fromkeys(table_write_keys(name)))
        self._publish(session, state, conn, out)
        return result

    def _fetch_old(self, conn: Connection, state: SessionState, objects: Iterable[Any]) -> None:
        """Read (and lock) the rows of ``objects`` a flush is about to update or delete.

        The flush's old-row read locks only rows it can lock at once (``SKIP LOCKED``
        where the database has it): SQLAlchemy calls ``before_update`` for every dirty
        object, also those it will not write (no net change), so a waiting read could block
        on a row lock another transaction holds where plain SQLAlchemy never waits (another
        session of the same thread: a hang). Sound either way: a row returned is locked
        until this transaction ends, so the values read are the ones the flush changes; a
        row not returned (locked by another transaction, or absent) has no old values
        known, and its table emits its table keys (:data:`SessionState.coarse`), which
        cover every row of the table whatever its values. The flush's own UPDATE or DELETE
        then waits on that lock exactly as it would without cachedeps.
        """
        by_table: dict[str, tuple[Any, list]] = {}
        for obj in objects:
            istate = instance_state(obj)
            if istate.identity is None:
                continue
            pk = _pk_value(tuple(istate.identity))
            for table in istate.mapper.tables:
                if (_addressable(istate.mapper, table) and table.name not in state.coarse
                        and (table.name, pk) not in state.old_rows):
                    by_table.setdefault(table.name, (table, []))[1].append(pk)
        lock = feed_name(conn.dialect) or ""
        skip = _skips_locked_rows(conn.dialect)
        for name, (table, pks) in by_table.items():
            found = _read_or_none(self._select_rows, conn, table, pks, lock=lock, skip_locked=skip)
            if found is None or any((name, pk) not in found for pk in pks):
                state.coarse.add(name)
                continue
            for pk in pks:
                state.old_rows[(name, pk)] = found[(name, pk)]

    @staticmethod
    def _select_rows(
        conn: Connection, table: Any, pks: list, lock: str = "", skip_locked: bool = False
    ) -> dict[tuple[str, Any], dict[str, Any]]:
        cols = list(table.primary_key.columns)
        out: dict[tuple[str, Any], dict[str, Any]] = {}
        if not cols:
            return out  # rows without a primary key cannot be selected by one: table keys
        for i in range(0, len(pks), _SELECT_CHUNK):
            chunk = pks[i : i + _SELECT_CHUNK]
            if len(cols) == 1:
                where = cols[0].in_(chunk)
            else:
                where = tuple_(*cols).in_(chunk)
            query = stored_select(table, cols).where(where)
            query = _for_update(query, table, lock, skip_locked=skip_locked)
            for row in conn.execute(query):
                pk = _pk_value(tuple(row[: len(cols)]))
                out[(table.name, pk)] = _stored_values(table, row, len(cols))
        return out

    # -- Core statements ----------------------------------------------------------------------

    def _lock(self, conn: Connection, cstate: ConnState) -> None:
        """On SQLite, begin the write transaction before old values are read.

        (PostgreSQL and MySQL read them ``FOR UPDATE`` instead; the feed's own lock is taken
        only around the append at COMMIT.)
        """
        if cstate.locked:
            return
        dbapi = conn.connection
        feed = self._feed(conn)
        try:
            if feed.dialect == "sqlite":
                # Begin SQLite's write transaction now, so old values read next cannot change
                # under us (pysqlite begins a transaction only at the first write).
                cur = dbapi.cursor()
                try:
                    cur.execute(f"UPDATE {feed.table} SET tid = tid WHERE 0 = 1")
                finally:
                    cur.close()
        except Exception as exc:
            if "no such table" not in str(exc).lower():
                raise  # the database's own error (another writer holds the lock): unchanged
            raise FeedError(
                f"cannot take the change feed lock on table {feed.table!r} before writing: {exc}; "
                "does the table exist? create it with sqla_cachedeps.create_feed_table(engine)"
            ) from exc
        cstate.locked = True

    def before_cursor_execute(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        """Collect the keys of a write outside a flush, taking the feed lock first."""
        compiled = getattr(context, "compiled", None)
        construct = getattr(compiled, "statement", None) if compiled is not None else None
        tables = written_tables(construct, statement, conn.dialect.name, compiled)
        if not tables:
            return
        feed_table = self.inst.feed.table
        tables = [t for t in tables if t != feed_table]
        if not tables:
            return
        cstate = conn_state(conn)
        if cstate.flushing:
            cstate.flush_tables.update(tables)
            return
        self._lock(conn, cstate)
        for table in tables:
            cstate.pending.update(dict.fromkeys(table_write_keys(table)))
        target = getattr(construct, "table", None) if isinstance(construct, UpdateBase) else None
        if target is not None and (context.isdelete or context.isupdate):
            for child, _ in cascaded_tables(target, delete=bool(context.isdelete)):
                cstate.pending.update(dict.fromkeys(table_write_keys(child)))
        elif target is None:
            # Known by name only (SQL text): rows the database changes through foreign keys.
            for table in tables:
                for child in referencing_tables(table):
                    cstate.pending.update(dict.fromkeys(table_write_keys(child)))

    def on_commit(self, conn: Connection) -> None:
        """Append the transaction's keys to the feed, just before it commits."""
        cstate = _existing_conn_state(conn)
        if cstate is None:
            return
        ks = self._keys_of(conn, cstate)
        if ks:
            if _autocommit(conn):
                self._publish_committed(conn, ks)
            else:
                feed = self._feed(conn)
                if self.inst.feed_keep is not None and self._prune_due():
                    feed.prune_in_savepoint(conn.connection, self.inst.feed_keep)
                tid = feed.append(conn.connection, ks)
                # Another database's tid belongs to its own sequence: its feed has the keys
                # (for whoever caches that database); this cache's delta maps must not.
                if self.inst.databases.serves(conn):
                    cstate.published.append((ks, tid))
                if self.inst.databases.serves(conn) and not cstate.sessions:
                    # No session's after_commit will tell the cache (Core outside a Session):
                    # SQLAlchemy has no event after COMMIT, so mark the keys now, without
                    # moving the context's stamp past a commit that may still fail.
                    self.inst.cache.committed(ks, tid, advance=False)
        cstate.reset()

    def _prune_due(self) -> bool:
        """Count a commit that writes to the feed; return whether this one prunes it."""
        global _commits
        with _commits_lock:
            _commits += 1
            return _commits % PRUNE_EVERY == 0

    def _keys_of(self, conn: Connection, cstate: ConnState) -> list[str]:
        """Return the keys the connection's transaction wrote (savepoints rolled back gone)."""
        out = dict(cstate.pending)
        for record in cstate.records:
            out.update(record.keys)
        if not out:
            return []
        # A write through a view changes its base tables (all of them when undeclared).
        views = self.inst.views_on(conn)
        return through_views(list(out), views, known_tables()) if views else list(out)

    def _publish_committed(self, conn: Connection, ks: list[str]) -> None:
        """Append the keys of statements that committed already (AUTOCOMMIT), tell the cache."""
        tid = self._append_alone(conn, ks)
        if self.inst.databases.serves(conn):
            self.inst.cache.committed(ks, tid)

    def _feed(self, conn: Connection) -> Any:
        """Return the feed of ``conn``'s database (another database's own, not the cache's)."""
        if self.inst.databases.serves(conn):
            return self.inst.feed
        return self.inst.databases.feed_for(conn)

    def _append_alone(self, conn: Connection, ks: list[str]) -> int:
        """Append on a connection in AUTOCOMMIT mode, in a transaction of its own.

        Each statement would otherwise commit by itself: the feed's lock would be gone
        before the rows commit, and a lower tid could commit after a higher one.
        """
        dbapi = conn.connection
        cur = dbapi.cursor()
        try:
            cur.execute("BEGIN")
            try:
                tid = self._feed(conn).append(dbapi, ks)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        finally:
            cur.close()
        return tid

    def on_rollback(self, conn: Connection) -> None:
        """Drop the keys of a transaction that rolled back.

        On a connection in AUTOCOMMIT mode there is nothing to roll back: each statement
        committed by itself, so its keys are appended all the same (a session or connection
        closed without ``commit()``).
        """
        cstate = _existing_conn_state(conn)
        if cstate is not None:
            if _autocommit(conn):
                ks = self._keys_of(conn, cstate)
                if ks:
                    self._publish_committed(conn, ks)
            cstate.reset()
            cstate.published.clear()

    def on_begin(self, conn: Connection) -> None:
        """Start a transaction with clean bookkeeping."""
        cstate = _existing_conn_state(conn)
        if cstate is not None:
            cstate.reset()
            cstate.published.clear()


def _for_update(query: Any, table: Any, dialect: str, skip_locked: bool = False) -> Any:
    """Lock the rows an old-values read returns until COMMIT (where the database can).

    PostgreSQL: ``FOR NO KEY UPDATE``, what an UPDATE takes (foreign key checks pass).
    MySQL/MariaDB: ``FOR UPDATE`` (``OF`` where the server has it); InnoDB's locking read
    sees the newest committed rows, as the UPDATE will. SQLite: none (its write lock).
    ``skip_locked``: rows another transaction has locked are left out instead of waited
    for (the caller treats a row not returned as unknown).
    """
    if dialect == "postgresql":
        return query.with_for_update(of=table, key_share=True, skip_locked=skip_locked)
    if dialect == "mysql":
        return query.with_for_update(of=table, skip_locked=skip_locked)
    return query


def _skips_locked_rows(dialect: Any) -> bool:
    """Return whether the database has ``SKIP LOCKED`` (PostgreSQL; MySQL 8, MariaDB 10.6)."""
    if dialect.name == "postgresql":
        return True
    if dialect.name in ("mysql", "mariadb"):
        version = tuple(v for v in (getattr(dialect, "server_version_info", None) or ()) if isinstance(v, int))
        return version >= ((10, 6) if getattr(dialect, "is_mariadb", False) else (8, 0, 1))
    return False
