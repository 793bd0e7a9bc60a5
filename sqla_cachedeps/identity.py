"""Cached results as plain data, merged back into a session as persistent objects.

A cached query result is stored as plain values the safe serializer can write:

``{"c": [column keys], "r": [[cell, ...], ...]}`` where a cell holding an ORM entity is
``{"$e": "<module>.<class>", "s": {attribute: value, ...}}`` (its loaded column attributes)
and any other cell is the value itself. Relationships are not stored: they load lazily on
access (and may be cached themselves, see :class:`~sqla_cachedeps.options.RelationshipCache`).

On a hit each entity is looked up in the session's identity map, as a database load would:
an instance already there is reused (its expired attributes filled from the cache), else a
new instance with the cached state joins the session as a persistent object
(:func:`~sqlalchemy.orm.make_transient_to_detached`, then ``Session.add``).
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.engine import FrozenResult, Result
from sqlalchemy.engine.result import ChunkedIteratorResult, IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.strategy_options import _AbstractLoad
from sqlalchemy.sql.selectable import SelectState

from .analysis import registry_mappers

__all__ = [
    "Unsupported",
    "encode_result",
    "freeze",
    "requires_unique",
    "decode_result",
    "encode_state",
    "attach",
    "load_context",
    "column_targets",
    "hit_columns",
    "state_cacheable",
    "options_reproducible",
    "make_result",
    "expired_states",
    "load_run",
    "keys_before",
    "not_from_rows",
    "database_values",
]

_ENTITY = "$e"
# class path -> mapper, for the classes this process has cached or looked up
_KNOWN: weakref.WeakValueDictionary[str, Mapper] = weakref.WeakValueDictionary()
# column names -> result metadata (immutable, shared by the results of cache hits)
_METADATA: dict[tuple, SimpleResultMetaData] = {}
# mapper -> attribute keys of its primary key columns
_PK_KEYS: weakref.WeakKeyDictionary[Mapper, list[str]] = weakref.WeakKeyDictionary()
# mapper -> whether its rows are cached by oid (computed once per mapper)
_STATE_OK: weakref.WeakKeyDictionary[Mapper, bool] = weakref.WeakKeyDictionary()


_EAGER = frozenset({"joined", "selectin", "subquery", "immediate"})
# the ORM result's attributes the legacy Query reads (sqlalchemy.orm.loading.instances)
_RESULT_FLAGS = ("filtered", "is_single_entity")
# strategy keys of loader options that only choose which columns load, and when
_COLUMN_STRATEGY_KEYS = frozenset({"deferred", "instrument", "query_expression"})


class Unsupported(Exception):
    """A result holds something that is not stored (the read then goes uncached)."""


def _path(mapper: Mapper) -> str:
    cls = mapper.class_
    return f"{cls.__module__}.{cls.__qualname__}"


def _mapper_for(path: str, registries: Callable[[], Iterable[Any]]) -> Mapper:
    mapper = _KNOWN.get(path)
    if mapper is not None:
        return mapper
    for registry in registries():
        for m in registry_mappers(registry):
            _KNOWN[_path(m)] = m
    try:
        return _KNOWN[path]
    except KeyError:
        raise Unsupported(f"no mapped class {path!r} in this process") from None


def state_cacheable(mapper: Mapper) -> bool:
    """Return whether a row of ``mapper`` can be cached under its oid.

    True for a mapper without inheritance whose column attributes are all plain columns of
    its own table (a ``column_property`` over other tables depends on those tables too),
    and without relationships its loads populate eagerly (``lazy="selectin"``, ``"joined"``,
    ``"subquery"``, ``"immediate"``): a state from the cache holds columns only, and the
    object would lack what a load from the database gives it.
    """
    cached = _STATE_OK.get(mapper)
    if cached is not None:
        return cached
    ok = (
        mapper.inherits is None
        and not mapper.polymorphic_map
        and len(mapper.tables) == 1
        and all(
            getattr(col, "table", None) is mapper.local_table
            for prop in mapper.column_attrs
            for col in prop.columns
        )
        and not _loads_eagerly(mapper)
    )
    _STATE_OK[mapper] = ok
    return ok


def _loads_eagerly(mapper: Mapper) -> bool:
    return any(rel.lazy in _EAGER for rel in mapper.relationships)


def options_reproducible(statement: Any) -> bool:
    """Return whether a hit can give ``statement``'s entities what a database load gives them.

    A hit rebuilds each entity from its cached column values, and nothing else runs: no
    loader strategy (``selectinload()``, ``joinedload()``, ``immediateload()``,
    ``subqueryload()``, ``contains_eager()``, their ``recursion_depth``), and the entities
    carry none of the statement's options into their later loads (``raiseload()``,
    ``lazyload(A.b).joinedload(B.c)``, ``defer(..., raiseload=True)``, ``with_loader_criteria()``
    filtering the relationships they load lazily). Such a statement is neither served from
    the cache nor stored. True when every option is user-defined (``FromCache``,
    ``RelationshipCache``: they load nothing) or a loader option that only picks the entity's
    own columns (``load_only()``, ``defer()``, ``undefer()``, ``with_expression()``).
    """
    for opt in getattr(statement, "_with_options", ()):
        if getattr(opt, "_is_user_defined", False):
            continue
        context = getattr(opt, "context", None)
        if not isinstance(opt, _AbstractLoad) or context is None:
            return False
        if not all(_column_only(element) for element in context):
            return False
    return True


def _column_only(element: Any) -> bool:
    """Return whether a loader option element only picks columns of the loaded entity."""
    strategy = element.strategy or ()
    if any(key not in _COLUMN_STRATEGY_KEYS for key, _value in strategy):
        return False  # a relationship strategy (("lazy", ...)), a polymorphic load, raiseload
    for token in getattr(element.path, "path", ()):
        if getattr(token, "_is_relationship", False):
            return False  # options for what a relationship loads
        if isinstance(token, str) and token.startswith("relationship:"):
            return False  # a wildcard over relationships
    return True


def encode_state(obj: Any) -> dict[str, Any]:
    """Return the loaded column attribute values of an ORM instance."""
    state = instance_state(obj)
    if state.modified:
        raise Unsupported("an instance with unflushed changes is not cached")
    d = state.dict
    return {p.key: d[p.key] for p in state.mapper.column_attrs if p.key in d}


def attach(session: Session, mapper: Mapper, values: dict[str, Any], load: tuple[Any, tuple] | None = None) -> Any:
    """Return the session's instance of a cached row, as a database load would.

    An instance already in the identity map wins (its unflushed changes and its loaded
    attributes are kept); its unloaded attributes (expired, or never loaded: a
    ``with_expression()`` attribute expired alone leaves ``__dict__`` without being marked
    expired) are filled from ``values`` and its ``refresh`` event fires. Otherwise a new
    instance holding ``values`` as loaded state joins the session's identity map as a
    persistent object, the way the ORM's own loader puts it there: it takes the load path
    and the propagating options of the statement (``load``, from :func:`load_context`),
    which its later lazy loads and refreshes replay; its ``load`` event (``@reconstructor``
    included) and the session's ``loaded_as_persistent`` event fire, and no attach events
    (``before_attach``, ``detached_to_persistent``), which a load does not fire either. The
    events get ``None`` as their query context, as after ``Session.merge()``.

    Raises:
        Unsupported: ``values`` lacks the primary key.
    """
    try:
        pk = [values[k] for k in _pk_keys(mapper)]
    except KeyError:
        raise Unsupported(f"cached state of {mapper} lacks its primary key") from None
    key = mapper.identity_key_from_primary_key(pk)
    existing = session.identity_map.get(key)
    if existing is not None:
        state = instance_state(existing)
        # As the ORM's loader fills an instance already in the identity map: every attribute
        # it holds no value for (expired, or never loaded: a deferred column, an expired
        # with_expression()), none it holds.
        held = state.dict
        filled = [name for name in values if name not in held]
        for name in filled:
            set_committed_value(existing, name, values[name])
        if filled and state.manager.dispatch.refresh:
            state.manager.dispatch.refresh(state, None, set(filled))
        return existing
    obj = mapper.class_manager.new_instance()
    # Written as the ORM's own loader writes loaded state: straight into the instance dict.
    instance_dict(obj).update(values)
    make_transient_to_detached(obj)  # the identity key; attributes not cached load on access
    state = instance_state(obj)
    current, options = load if load is not None else (None, ())
    path = mapper._path_registry
    state.load_path = current + path if current is not None and current.path else path
    state.load_options = options
    state.session_id = session.hash_key
    session.identity_map._add_unpresent(state, state.key)
    if state.manager.dispatch.load:
        state.manager.dispatch.load(state, None)
    if session.dispatch.loaded_as_persistent:
        session.dispatch.loaded_as_persistent(session, state)
    return obj


def load_context(statement: Any) -> tuple[Any, tuple]:
    """Return the load path prefix and the propagating options ``statement`` gives the
    instances it loads (``state.load_path``, ``state.load_options``), as the ORM's loader
    computes them: a lazy load's path continues its parent's."""
    compile_options = getattr(statement, "_compile_options", None)
    current = getattr(compile_options, "_current_path", None)
    options = tuple(o for o in getattr(statement, "_with_options", ()) if getattr(o, "propagate_to_loaders", False))
    return current, options


def _pk_keys(mapper: Mapper) -> list[str]:
    found = _PK_KEYS.get(mapper)
    if found is None:
        found = [mapper.get_property_by_column(col).key for col in mapper.primary_key]
        _PK_KEYS[mapper] = found
    return found


def expired_states(session: Session, keys: Iterable[Any] | None = None) -> frozenset[Any]:
    """Return the states in ``session``'s identity map that are fully expired (of the
    identity ``keys`` only, when given).

    Taken before a load: a row that matches one of them fills all its columns, as a new
    instance's would (:func:`not_from_rows`).
    """
    identity_map = session.identity_map
    if not len(identity_map):
        return frozenset()
    if keys is not None:
        found = (identity_map.fast_get_state(key) for key in keys)
        return frozenset(state for state in found if state is not None and state.expired)
    return frozenset(state for state in identity_map.all_states() if state.expired)


def load_run(result: Result) -> Any:
    """Return the run id of the ORM load behind ``result`` (None if it is not one)."""
    return getattr(getattr(result, "context", None), "runid", None)


#: whether the ORM's results carry their load's context (SQLAlchemy 2.1), whose run id marks
#: the instances the load filled (:func:`load_run`); SQLAlchemy 2.0's do not
RESULTS_CARRY_LOAD = "context" in inspect.signature(ChunkedIteratorResult.__init__).parameters


def keys_before(session: Session) -> frozenset[Any] | None:
    """Return the identity keys in ``session`` before a load where results do not tell which
    instances the load filled (SQLAlchemy 2.0, see :func:`not_from_rows`); None where they do:
    nothing to take."""
    if RESULTS_CARRY_LOAD:
        return None
    return frozenset(session.identity_map.keys())


def not_from_rows(frozen: FrozenResult, runid: Any, expired: frozenset[Any],
                  before: frozenset[Any] | None = None) -> list[Any] | None:
    """Return the entity states of a loaded result whose columns were not all filled by it,
    None when that cannot be told.

    The ORM's loader fills an instance from its row when the load created it (or
    ``populate_existing`` asked for it), marking it with the load's run id, and fills only
    the unloaded attributes of an instance that was already in the identity map: the others
    keep what they held, perhaps values of an earlier transaction (``expire_on_commit=False``)
    or the caller's own (``merge(load=False)``), which must not be stored as the database's.
    An instance fully expired before the load (``expired``) had every column filled.
    Without the load's run id (SQLAlchemy 2.0's results do not carry their context), an
    instance counts as filled when its identity was not in the identity map before the load
    (``before``, :func:`keys_before`: created by it) or it was fully expired; without either,
    a result holding instances gives None.
    """
    out: dict[Any, None] = {}
    for row in frozen():
        for cell in row:
            try:
                state = instance_state(cell)
            except Exception:  # noqa: BLE001 - not an entity
                continue
            if runid is None:
                if before is None:
                    return None
                if state.key in before and state not in expired:
                    out[state] = None
            elif state.runid != runid and state not in expired:
                out[state] = None
    return list(out)


#: at most this many instances are read again for one stored result (else it is not stored)
MAX_REREAD = 500


def database_values(session: Session, states: Sequence[Any], bind: Any = None) -> dict[Any, dict[str, Any]] | None:
    """Read the loaded columns of ``states`` from the database (by primary key).

    For a result to store whose instances were already in the identity map
    (:func:`not_from_rows`): what a load of these rows gives, on the session's connection to
    ``bind`` (the statement's; default: each mapper's), hence in its transaction. None when they cannot all be read so (a mapper whose rows are
    not cached by oid, a row gone): the result is then not stored.
    """
    if len(states) > MAX_REREAD:
        return None
    groups: dict[Mapper, list[Any]] = {}
    for state in states:
        groups.setdefault(state.mapper, []).append(state)
    out: dict[Any, dict[str, Any]] = {}
    for mapper, group in groups.items():
        if not state_cacheable(mapper) or any(s.identity is None for s in group):
            return None
        props = [p for p in mapper.column_attrs if any(p.key in s.dict for s in group)]
        pk_cols = list(mapper.primary_key)
        stmt = select(*pk_cols, *[p.columns[0] for p in props]).where(
            or_(*[and_(*[col == value for col, value in zip(pk_cols, s.identity)]) for s in group]))
        conn = session.connection(bind_arguments={"bind": bind} if bind is not None else {"mapper": mapper})
        width = len(pk_cols)
        rows = {tuple(row[:width]): dict(zip((p.key for p in props), row[width:])) for row in conn.execute(stmt)}
        for state in group:
            row = rows.get(tuple(state.identity))
            if row is None:
                return None
            out[state] = {key: row[key] for key in row if key in state.dict}
    return out


def requires_unique(result: Result) -> bool:
    """Return whether an ORM result holds joined eager loads of collections.

    SQLAlchemy raises unless ``unique()`` is called on it, and its callers (the user, a
    ``selectinload`` whose statement joins a collection) unique it themselves, reading the
    loading context a frozen copy would not carry: such a result is served as the ORM made
    it, never frozen or cached.
    """
    context = getattr(result, "context", None)
    return context is not None and bool(getattr(context, "requires_uniquing", False))


def freeze(result: Result) -> FrozenResult:
    """Freeze a result to compare it (verify mode), uniqued when SQLAlchemy requires it."""
    if requires_unique(result):
        result = result.unique()
    return result.freeze()


def encode_result(frozen: FrozenResult, stored: dict[Any, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a frozen ORM result as plain data.

    ``stored`` maps entity states to the database's values of their loaded columns, stored
    in place of the values the instances hold.

    Raises:
        Unsupported: a cell holds something other than an entity or a plain value.
    """
    result = frozen()
    # Every column's key, None for an unnamed one (an anonymous aliased entity), which
    # keys() leaves out: a hit's rows have one cell per column.
    columns = list(getattr(result._metadata, "_keys", None) or result.keys())
    out_rows = [[_encode_cell(cell, stored) for cell in row] for row in result]
    # How the legacy Query reads the result: single entities as scalars, deduplicated.
    flags = {k: bool(result._attributes.get(k, False)) for k in _RESULT_FLAGS}
    return {"c": columns, "r": out_rows, "a": flags}


def _encode_cell(cell: Any, stored: dict[Any, dict[str, Any]] | None = None) -> Any:
    try:
        state = instance_state(cell)
    except Exception:
        return cell
    mapper = state.mapper
    if mapper.inherits is not None or mapper.polymorphic_map:
        raise Unsupported("polymorphic entities are not cached by value")
    if _loads_eagerly(mapper):
        # A hit holds columns only; a load populates these relationships (state_cacheable).
        raise Unsupported(f"{mapper} loads relationships eagerly")
    path = _path(mapper)
    _KNOWN[path] = mapper
    values = encode_state(cell)
    if stored is not None and state in stored:
        values = stored[state]
    return {_ENTITY: path, "s": values}


def column_targets(statement: Any) -> list[tuple] | None:
    """Return, per column of ``statement``'s result, the expressions that name it besides its
    key (``row._mapping[User.name]``, ``row._mapping[some_case]``), as an ORM result's rows
    are targeted: the statement's own objects, so computed for each execution."""
    try:
        descriptions = getattr(statement, "_resolved", statement).column_descriptions
    except Exception:  # not a select of columns
        return None
    out = []
    for d in descriptions:
        expr = d.get("expr")
        try:
            hash(expr)
        except TypeError:
            expr = None
        out.append(() if expr is None else (expr,))
    return out


class _NotHashable:
    """How the ORM uniques a column whose type says its values are not hashable (``hashable =
    False``) or may not be (``NullType``): SQLAlchemy's ``loading.instances`` builds the same
    function per ``unique()`` call (a closure of its own, so rebuilt here)."""

    __slots__ = ("datatype", "legacy", "uncertain")

    def __init__(self, datatype: Any, legacy: bool, uncertain: bool) -> None:
        self.datatype = datatype
        self.legacy = legacy
        self.uncertain = uncertain

    def make(self) -> Callable[[Any], Any]:
        datatype, uncertain = self.datatype, self.uncertain
        if not self.legacy:
            def go(obj: Any) -> Any:
                if uncertain:
                    try:
                        return hash(obj)
                    except Exception:  # noqa: BLE001 - as SQLAlchemy's bare except
                        pass
                raise InvalidRequestError(
                    "Can't apply uniqueness to row tuple containing value of "
                    f"type {datatype!r}; "
                    f"{'the values returned appear to be' if uncertain else 'this datatype produces'} "
                    "non-hashable values"
                )
            return go
        if not uncertain:
            return id
        use_id = False

        def legacy_go(obj: Any) -> Any:
            # the legacy Query uniques every result: hash while values hash, then identity
            nonlocal use_id
            if not use_id:
                try:
                    return hash(obj)
                except Exception:  # noqa: BLE001 - as SQLAlchemy's bare except
                    pass
                use_id = True
            return id(obj)
        return legacy_go


def hit_columns(statement: Any, legacy: bool) -> tuple[tuple, list[tuple] | None] | None:
    """Return how a result of ``statement`` rebuilt from the cache must treat its columns, as
    the result SQLAlchemy itself builds for it does: ``(filters, targets)``.

    ``filters``: how ``Result.unique()`` tells apart each column's values, ``None`` (by hash),
    ``id`` (ORM instances, by identity) or a :class:`_NotHashable` (a type of unhashable
    values: SQLAlchemy's ``InvalidRequestError``, by identity for the legacy ``Query``);
    ``targets``: as :func:`column_targets`. Both come from SQLAlchemy's own query entities of
    the statement (those its loading builds the result from, made once); ``legacy`` is the
    load's ``_legacy_uniquing``. A statement of the Core plugin (no ORM entities) gets a Core
    result: ``()``, every column by hash. None: the entities could not be made.
    """
    resolved = getattr(statement, "_resolved", statement)
    try:
        plugin = SelectState.get_plugin_class(resolved)
    except Exception:  # noqa: BLE001 - not a select
        return None
    create = getattr(plugin, "_create_entities_collection", None)
    if create is None:
        return (), column_targets(statement)  # Core's select state: a Core result, by hash
    try:
        entities = create(resolved, legacy=legacy)._entities
    except Exception:  # noqa: BLE001 - NotImplementedError for the ORM's other statements
        return None
    filters: list[Any] = []
    targets: list[tuple] = []
    for ent in entities:
        if ent.use_id_for_hash:
            filters.append(id)
        elif ent._non_hashable_value or ent._null_column_type:
            filters.append(_NotHashable(ent.column.type, legacy, bool(ent._null_column_type)))
        else:
            filters.append(None)
        expr = ent.expr  # what column_descriptions names the column by
        try:
            hash(expr)
        except TypeError:
            expr = None
        targets.append(() if expr is None else (expr,))
    return tuple(filters), targets


def decode_result(session: Session, data: Any, registries: Callable[[], Iterable[Any]],
                  load: tuple[Any, tuple] | None = None, targets: list[tuple] | None = None,
                  filters: tuple | None = None) -> Result:
    """Rebuild a cached result; its entities join ``session`` (see :func:`attach`).

    ``registries`` returns the mapper registries to search for a class this process has
    not cached yet; ``load`` is the statement's :func:`load_context`, ``targets`` its
    :func:`column_targets`, ``filters`` its :func:`hit_columns` filters (None: by the cells,
    instances by identity, any other value by hash).

    Raises:
        Unsupported: the data does not match the current mappings.
    """
    if not isinstance(data, dict) or "c" not in data or "r" not in data or not isinstance(data.get("a"), dict):
        raise Unsupported("not a cached result")
    rows = []
    entity_columns: set[int] = set()
    for row in data["r"]:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, dict) and _ENTITY in cell:
                cell = attach(session, _mapper_for(cell[_ENTITY], registries), cell["s"], load)
                entity_columns.add(i)
            cells.append(cell)
        rows.append(tuple(cells))
    if filters is not None and filters and len(filters) != len(data["c"]):
        raise Unsupported("the statement's columns do not match the cached result's")
    result = make_result(data["c"], rows, entity_columns, targets, filters)
    result._attributes = result._attributes.union(
        {k: bool(data["a"].get(k, False)) for k in _RESULT_FLAGS})
    return result


def make_result(columns: Sequence[str], rows: list[tuple], entity_columns: Iterable[int] = (),
                targets: Sequence[tuple] | None = None, filters: tuple | None = None) -> Result:
    """Return a result of ``rows`` named by ``columns``.

    ``entity_columns`` are the positions holding ORM instances: ``Result.unique()`` tells
    them apart by identity, as the ORM's own results do (the lazy loader calls ``unique()``
    on every collection load; by ``==`` instances of a class defining ``__eq__`` over some
    attributes would merge, and a collection would lose members). ``filters`` (from
    :func:`hit_columns`), when given, says instead how every column is uniqued.
    """
    names = tuple(columns)
    entities = tuple(sorted(entity_columns))
    if filters is not None:
        filters = filters or (None,) * len(names)
        if any(isinstance(f, _NotHashable) for f in filters):
            return IteratorResult(_metadata(names, filters, targets), iter(rows))
        entities = tuple(i for i, f in enumerate(filters) if f is id)
    if targets and len(targets) == len(names) and any(targets):
        return IteratorResult(_metadata(names, _by_identity(names, entities), targets), iter(rows))
    metadata = _METADATA.get((names, entities))
    if metadata is None:
        if len(_METADATA) > 1000:
            _METADATA.clear()
        metadata = _METADATA[(names, entities)] = _metadata(names, _by_identity(names, entities))
    return IteratorResult(metadata, iter(rows))


def _by_identity(names: tuple[str, ...], entities: tuple[int, ...]) -> tuple:
    return tuple(id if i in entities else None for i in range(len(names)))


def _metadata(names: tuple[str, ...], filters: tuple, targets: Sequence[tuple] | None = None
              ) -> SimpleResultMetaData:
    extra = list(targets) if targets and len(targets) == len(names) and any(targets) else None
    if not any(f is not None for f in filters):
        return SimpleResultMetaData(list(names), extra)

    def create(result: Any = None) -> list[Any]:
        # made again for each unique() call, as SQLAlchemy's: a legacy filter keeps state
        return [f.make() if isinstance(f, _NotHashable) else f for f in filters]

    try:  # SQLAlchemy 2.1
        return SimpleResultMetaData(list(names), extra, _create_unique_filters=create)
    except TypeError:  # SQLAlchemy 2.0: one list per result
        return SimpleResultMetaData(list(names), extra, _unique_filters=create())
