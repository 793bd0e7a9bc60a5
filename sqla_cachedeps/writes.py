"""Write detection: flushes, Core and bulk statements, and their path to the change feed.

Every write becomes dependency keys written to the change feed inside the writer's
transaction, then handed to :meth:`cachedeps.Cache.committed` after the commit:

- **ORM flush** (precise). The feed lock is taken before the flush writes anything; the old
  values of rows about to be updated or deleted are read from the database (one ``SELECT``
  per table), the new values of inserted and updated rows after the flush; each row emits
  :func:`cachedeps.keys.row_keys`. Tables the flush writes without mapped rows
  (many-to-many association tables) emit their table and all-rows keys. The keys go to the
  feed in ``after_flush``, recorded against the innermost session transaction.
- **ORM-enabled ``update()``/``delete()``** of one table matching up to
  :data:`MAX_PRECISE_ROWS` rows (precise): the matched rows are read before the statement
  under the feed lock, their new values after; keys go to the feed right after it.
- **Other statements** (Core ``Connection.execute``, larger ORM statements, bulk inserts
  and updates, raw SQL): ``before_cursor_execute`` on the engine takes the feed lock before
  the first write of the transaction and collects the table and all-rows keys of the table
  written (and of tables changed by cascading foreign keys); they go to the feed in the
  connection's ``commit`` event.
- **Savepoints.** Keys of a ``begin_nested()`` block that rolls back are dropped (its feed
  rows roll back with it in the database); a released savepoint hands its keys to its parent.

SQLite serializes writers only once a write transaction has begun, so before reading old
values the adapter begins it with a no-op ``UPDATE`` of the feed table.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from sqlalchemy import event, select, tuple_
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, SessionTransaction, object_mapper, object_session
from sqlalchemy.orm.base import instance_state
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter

from cachedeps import keys
from cachedeps.errors import FeedError

from .analysis import cascaded_tables, referencing_tables, table_write_keys, written_tables

if TYPE_CHECKING:
    from .events import Installation

__all__ = ["Writes", "SessionState", "ConnState", "session_state", "MAX_PRECISE_ROWS"]

log = logging.getLogger("sqla_cachedeps")

_SESSION_KEY = "cachedeps"
_CONN_KEY = "cachedeps"
_SELECT_CHUNK = 500
#: ORM update()/delete() statements matching more rows than this emit table keys instead
MAX_PRECISE_ROWS = 1000


class ConnState:
    """Per-connection write bookkeeping (``Connection.info``)."""

    __slots__ = ("pending", "locked", "flushing", "flush_tables", "published")

    def __init__(self) -> None:
        self.pending: dict[str, None] = {}
        self.locked = False
        self.flushing = False
        self.flush_tables: set[str] = set()
        self.published: list[tuple[list[str], int]] = []

    def reset(self) -> None:
        """Forget the transaction's state (it committed, rolled back or a new one began)."""
        self.pending.clear()
        self.locked = False
        self.flushing = False
        self.flush_tables.clear()


class _TxRecord:
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

    def end_root(self) -> None:
        """Forget the root transaction that ended."""
        self.tid = None
        self.wrote = False
        self.records.clear()
        self.connections.clear()
        self.old_rows.clear()
        self.written.clear()

    def has_writes(self) -> bool:
        """Return whether this transaction has written (reads then bypass the cache)."""
        if self.wrote:
            return True
        for conn in self.connections:
            state = conn.info.get(_CONN_KEY)
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


def conn_state(conn: Connection) -> ConnState:
    """Return the connection's write bookkeeping (created on first use)."""
    state = conn.info.get(_CONN_KEY)
    if state is None:
        state = conn.info[_CONN_KEY] = ConnState()
    return state


def _flush_connection(session: Session) -> Connection:
    """Return the connection a flush of ``session`` writes on (its bind for the first object)."""
    for group in (session.new, session.dirty, session.deleted):
        for obj in group:
            return session.connection(bind_arguments={"mapper": object_mapper(obj)})
    return session.connection()


def _row_change(out: dict[str, None], table: Any, pk: Any, old: dict | None, new: dict | None) -> None:
    """Add the keys of one row write to ``out``, with tables changed by cascading keys."""
    out.update(dict.fromkeys(keys.row_keys(table.name, pk, old, new)))
    if old is not None:
        # Rows the database changes itself (ON DELETE/UPDATE CASCADE, SET NULL).
        for child, columns in cascaded_tables(table, delete=new is None):
            if new is None or any(old.get(c) != new.get(c) for c in columns):
                out.update(dict.fromkeys(table_write_keys(child)))


def _binds_given(where: Any, params: dict) -> bool:
    """Return whether every bind parameter of ``where`` has a value (given or its own)."""
    for element in visitors.iterate(where):
        if isinstance(element, BindParameter) and element.key not in params:
            if element.required and element.callable is None:
                return False
    return True


def _pk_value(values: tuple) -> Any:
    return values[0] if len(values) == 1 else values


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
        self.inst.ensure_feed(engine.dialect)
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
            cstate = conn.info.get(_CONN_KEY)
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
        if record is not None and record.released and record.keys:
            parent = transaction.parent
            while parent is not None and parent not in state.records:
                parent = parent.parent
            if parent is not None:
                target = state.records[parent]
                target.keys.update(record.keys)
                target.tid = max(target.tid, record.tid)

    # -- flush ------------------------------------------------------------------------------

    def before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Take the feed lock and read the old values of rows the flush will change."""
        state = session_state(session, self.inst)
        if state is None or not (session.new or session.dirty or session.deleted):
            return
        conn = _flush_connection(session)
        cstate = conn_state(conn)
        cstate.flushing = True
        cstate.flush_tables.clear()
        self._lock(conn, cstate)
        state.old_rows.clear()
        state.written.clear()
        targets = [o for o in session.dirty if session.is_modified(o, include_collections=False)]
        targets.extend(session.deleted)
        self._fetch_old(conn, state, targets)

    def before_row_write(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Read the old values of a row the flush changes that ``before_flush`` did not see."""
        session = object_session(target)
        state = session_state(session) if session is not None else None
        if state is None or state.installation is not self.inst:
            return
        ident = instance_state(target).identity
        if ident is None:
            return
        missing = [t for t in mapper.tables if (t.name, _pk_value(ident)) not in state.old_rows]
        if missing:
            self._fetch_old(connection, state, [target])

    def after_insert(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note an inserted row."""
        self._note(mapper, target, "insert")

    def after_update(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note an updated row."""
        self._note(mapper, target, "update")

    def after_delete(self, mapper: Mapper, connection: Connection, target: Any) -> None:
        """Note a deleted row."""
        self._note(mapper, target, "delete")

    def _note(self, mapper: Mapper, target: Any, op: str) -> None:
        session = object_session(target)
        state = session_state(session) if session is not None else None
        if state is None or state.installation is not self.inst:
            return
        istate = instance_state(target)
        old = istate.identity
        new = tuple(mapper.primary_key_from_instance(target))
        for table in mapper.tables:
            if old is not None:
                state.written.setdefault((table.name, _pk_value(tuple(old))), (table, op))
            if op != "delete" and (old is None or tuple(old) != new):
                state.written[(table.name, _pk_value(new))] = (table, op)

    def after_flush(self, session: Session, flush_context: Any) -> None:
        """Read back the new values, turn every written row into keys, append them to the feed."""
        state = session_state(session)
        if state is None or state.installation is not self.inst:
            return
        conn = _flush_connection(session)
        cstate = conn_state(conn)
        cstate.flushing = False
        out: dict[str, None] = {}
        # New values, read back: server defaults, triggers and onupdate included.
        by_table: dict[str, tuple[Any, list]] = {}
        for (name, pk), (table, op) in state.written.items():
            if op != "delete":
                by_table.setdefault(name, (table, []))[1].append(pk)
        new_rows: dict[tuple[str, Any], dict[str, Any]] = {}
        for name, (table, pks) in by_table.items():
            new_rows.update(self._select_rows(conn, table, pks))
        rows_tables: set[str] = set()
        for (name, pk), (table, op) in state.written.items():
            rows_tables.add(name)
            _row_change(out, table, pk, state.old_rows.get((name, pk)), new_rows.get((name, pk)))
        for name in cstate.flush_tables - rows_tables:
            out.update(dict.fromkeys(table_write_keys(name)))
        cstate.flush_tables.clear()
        state.old_rows.clear()
        state.written.clear()
        self._publish(session, state, conn, out)

    def _publish(self, session: Session, state: SessionState, conn: Connection, out: dict[str, None]) -> None:
        """Append ``out`` to the feed in the open transaction; keep it for the commit."""
        if not out:
            return
        tid = self.inst.feed.append(conn.connection, list(out))
        transaction = session.get_nested_transaction() or session.get_transaction()
        record = state.records.get(transaction) if transaction is not None else None
        if record is None and transaction is not None:
            record = state.records[transaction] = _TxRecord()
        if record is not None:
            record.keys.update(out)
            record.tid = max(record.tid, tid)
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
        conn = session.connection(bind_arguments={"mapper": mapper})
        cstate = conn_state(conn)
        self._lock(conn, cstate)
        cols = list(table.primary_key.columns)
        query = select(table).where(where).limit(MAX_PRECISE_ROWS + 1)
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
            m = row._mapping
            old_rows[_pk_value(tuple(m[c] for c in cols))] = {c.name: m[c] for c in table.columns}
        cstate.flushing = True  # the statement's own write is accounted for here, precisely
        cstate.flush_tables.clear()
        try:
            result = orm_state.invoke_statement()
        finally:
            cstate.flushing = False
        written = cstate.flush_tables - {table.name}
        cstate.flush_tables.clear()
        new_rows = {} if orm_state.is_delete else self._select_rows(conn, table, list(old_rows))
        out: dict[str, None] = {}
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

        Every record names its row's primary key: those rows are read before (under the
        feed lock) and after the statement. A record whose row is found neither before nor
        after (absent, or a key value the database spells differently) adds the table keys.
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
        conn = session.connection(bind_arguments={"mapper": mapper})
        cstate = conn_state(conn)
        self._lock(conn, cstate)
        try:
            old_rows = self._select_rows(conn, table, list(dict.fromkeys(pks)))
        except StatementError as exc:
            if isinstance(exc, DBAPIError):
                raise
            return None
        cstate.flushing = True
        cstate.flush_tables.clear()
        try:
            result = orm_state.invoke_statement()
        finally:
            cstate.flushing = False
        written = cstate.flush_tables - {table.name}
        cstate.flush_tables.clear()
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
        by_table: dict[str, tuple[Any, list]] = {}
        for obj in objects:
            istate = instance_state(obj)
            if istate.identity is None:
                continue
            pk = _pk_value(tuple(istate.identity))
            for table in istate.mapper.tables:
                if (table.name, pk) not in state.old_rows:
                    by_table.setdefault(table.name, (table, []))[1].append(pk)
        for name, (table, pks) in by_table.items():
            found = self._select_rows(conn, table, pks)
            for pk in pks:
                state.old_rows[(name, pk)] = found.get((name, pk))

    @staticmethod
    def _select_rows(conn: Connection, table: Any, pks: list) -> dict[tuple[str, Any], dict[str, Any]]:
        cols = list(table.primary_key.columns)
        out: dict[tuple[str, Any], dict[str, Any]] = {}
        for i in range(0, len(pks), _SELECT_CHUNK):
            chunk = pks[i : i + _SELECT_CHUNK]
            if len(cols) == 1:
                where = cols[0].in_(chunk)
            else:
                where = tuple_(*cols).in_(chunk)
            for row in conn.execute(select(table).where(where)):
                m = row._mapping
                values = {c.name: m[c] for c in table.columns}
                pk = _pk_value(tuple(m[c] for c in cols))
                out[(table.name, pk)] = values
        return out

    # -- Core statements ----------------------------------------------------------------------

    def _lock(self, conn: Connection, cstate: ConnState) -> None:
        if cstate.locked:
            return
        dbapi = conn.connection
        feed = self.inst.feed
        try:
            if feed.dialect == "sqlite":
                # Begin SQLite's write transaction now, so old values read next cannot change
                # under us (pysqlite begins a transaction only at the first write).
                cur = dbapi.cursor()
                try:
                    cur.execute(f"UPDATE {feed.table} SET tid = tid WHERE 0 = 1")
                finally:
                    cur.close()
            else:
                feed.lock(dbapi)
        except Exception as exc:
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
        """Append the keys of the transaction's statements to the feed before it commits."""
        cstate = conn.info.get(_CONN_KEY)
        if cstate is None:
            return
        if cstate.pending:
            ks = list(cstate.pending)
            tid = self.inst.feed.append(conn.connection, ks)
            cstate.published.append((ks, tid))
        cstate.reset()

    def on_rollback(self, conn: Connection) -> None:
        """Drop the keys of a transaction that rolled back."""
        cstate = conn.info.get(_CONN_KEY)
        if cstate is not None:
            cstate.reset()
            cstate.published.clear()

    def on_begin(self, conn: Connection) -> None:
        """Start a transaction with clean bookkeeping."""
        cstate = conn.info.get(_CONN_KEY)
        if cstate is not None:
            cstate.reset()
            cstate.published.clear()
