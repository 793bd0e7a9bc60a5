"""Verify mode for the SQLAlchemy adapter (``install(..., verify=True)``).

A hit is checked against the database in the session's own connection, hence in its
transaction, with statements marked by the execution option ``cachedeps_verify=True``:

- an object state (``session.get``, refreshes, many-to-one lazy loads): a Core select of the
  mapper's columns by primary key, compared attribute by attribute with the cached state;
- a cached query: the same statement with the same parameters, run in a private session
  bound to that connection (the caller's identity map is left alone), its result encoded
  as a cached result is, then compared row by row (as a multiset without ORDER BY).

The comparison and the report are :class:`cachedeps.verify.Verifier`'s.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from cachedeps.keys import implied

from . import identity
from .databases import statement_connection
from .options import EXECUTION_OPTION

__all__ = ["VERIFY_OPTION", "load_privately", "verify_state", "verify_query"]

#: execution option set on every statement verify mode runs
VERIFY_OPTION = "cachedeps_verify"


def _concurrent(inst: Any, conn: Any, position: int, deps: Any) -> Any:
    return lambda: inst.cache.changed_after(conn.connection, position, deps)


def verify_state(inst: Any, session: Session, mapper: Any, pk: Any, cached: Any, oid: str,
                 stamp: int | None, position: int, bind: Any = None) -> None:
    """Compare a cached object state with its row in the database (see the module docstring).

    ``bind``: the bind the load's statement runs on (default: the mapper's).
    """
    props = [p for p in mapper.column_attrs if cached is None or p.key in cached]
    pk = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
    stmt = select(*[p.columns[0] for p in props]).where(
        and_(*[col == value for col, value in zip(mapper.primary_key, pk)])
    ).execution_options(**{VERIFY_OPTION: True, EXECUTION_OPTION: False})
    conn = session.connection(bind_arguments={"bind": bind} if bind is not None else {"mapper": mapper})
    fresh = [tuple(row) for row in conn.execute(stmt)]
    rows = [] if cached is None else [tuple(cached[p.key] for p in props)]
    query = f"{mapper.class_.__name__} state {oid} ({', '.join(p.key for p in props)})"
    deps = implied(oid)
    inst.verifier.check(query, rows, fresh, deps=deps, stamp=stamp, position=position,
                        concurrent=_concurrent(inst, conn, position, deps))


def load_privately(orm_state: Any, bind: Any = None, **options: Any) -> Any:
    """Run ``orm_state``'s statement again on its connection (hence in the session's
    transaction) in a private session, so the caller's identity map is left alone; return
    the result encoded as a cached result is, or None when it cannot be.

    ``bind``: the statement's bind (:func:`~sqla_cachedeps.databases.statement_bind`), when the
    caller has it. ``options`` are execution options added to the uncached statement's.
    """
    conn = statement_connection(orm_state, bind)
    with Session(bind=conn, autoflush=False, expire_on_commit=False) as private:
        result = private.execute(
            orm_state.statement,
            orm_state.parameters or {},
            execution_options={EXECUTION_OPTION: False, **options},
        )
        try:
            return identity.encode_result(identity.freeze(result))
        except identity.Unsupported:
            return None


def verify_query(inst: Any, orm_state: Any, cached: Any, deps: Any, stamp: int | None, position: int,
                 bind: Any = None) -> None:
    """Run a cached query's statement again in the same connection; compare the results.

    ``bind``: the statement's bind (:func:`~sqla_cachedeps.databases.statement_bind`).
    """
    statement = orm_state.statement
    conn = statement_connection(orm_state, bind)
    fresh = load_privately(orm_state, bind, **{VERIFY_OPTION: True})
    if fresh is None:
        return
    resolved = getattr(statement, "_resolved", statement)
    ordered = bool(getattr(resolved, "_order_by_clauses", ()))
    limited = None
    if getattr(resolved, "_offset_clause", None) is not None:
        limited = -1
    elif getattr(resolved, "_limit_clause", None) is not None:
        value = getattr(resolved, "_limit", None)
        limited = value if isinstance(value, int) else -1
    if not isinstance(cached, dict) or cached.get("c") != fresh["c"]:
        inst.verifier.report(str(statement), f"columns {cached.get('c') if isinstance(cached, dict) else cached!r} "
                             f"cached, {fresh['c']!r} in the database", deps=deps, stamp=stamp,
                             position=position)
        return
    query = f"{statement} -- params {orm_state.parameters!r}"
    inst.verifier.check(query, cached["r"], fresh["r"], ordered=ordered, limited=limited, deps=deps,
                        stamp=stamp, position=position, concurrent=_concurrent(inst, conn, position, deps))
