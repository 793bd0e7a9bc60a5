"""``CachingSession``: a ``Session`` whose ``get()`` answers cache hits directly.

``install()`` already serves ``session.get()`` from the cache through ``do_orm_execute``;
SQLAlchemy builds and dispatches a statement first, which costs more than the cache lookup
itself. A factory made with ``sessionmaker(engine, class_=CachingSession)`` (and installed)
answers a hit before any statement exists: one identity-map lookup, one store round trip.
Anything else (a miss, options, a session with pending changes or writes in its
transaction) takes the ordinary path. Cache hits then skip other ``do_orm_execute``
listeners, as identity-map hits always do: do not use it with listeners that filter gets
(``with_loader_criteria`` set up in ``do_orm_execute``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from cachedeps import NO_VALUE

from . import identity
from .spelling import pk_oid
from .verify import verify_state
from .writes import session_state

__all__ = ["CachingSession"]


class CachingSession(Session):
    """A ``Session`` answering ``get()`` cache hits without building a statement.

    Example::

        Session = sessionmaker(engine, class_=CachingSession)
        sqla_cachedeps.install(Session, "embedded://")
    """

    def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        """Return the instance with primary key ``ident`` (see ``Session.get``)."""
        if not kw:
            found = _cached_get(self, entity, ident)
            if found is not NO_VALUE:
                return found
        return super().get(entity, ident, **kw)


def _cached_get(session: Session, entity: Any, ident: Any) -> Any:
    try:
        mapper = sa_inspect(entity).mapper
    except Exception:
        return NO_VALUE
    pk = tuple(ident) if isinstance(ident, (tuple, list)) else (ident,)
    if len(pk) != len(mapper.primary_key) or None in pk:
        return NO_VALUE
    if mapper.identity_key_from_primary_key(pk) in session.identity_map:
        return NO_VALUE  # the ordinary path answers from the identity map (and knows deletes)
    state = session_state(session)
    if state is not None and not state.installation.databases.serves(session.get_bind(mapper=mapper)):
        return NO_VALUE  # another database than the cache's
    if state is None or state.tid is None:
        session.connection(bind_arguments={"mapper": mapper})  # begins: an installed session polls
        state = session_state(session)
        if state is None or state.tid is None:
            return NO_VALUE  # not installed
    inst = state.installation
    if not inst.gets or not inst.installed or not identity.state_cacheable(mapper):
        return NO_VALUE
    if session.new or session.deleted or session.dirty:
        return NO_VALUE  # a get would autoflush first
    if state.has_writes():
        return NO_VALUE
    oid = pk_oid(mapper.local_table, pk, session.get_bind(mapper=mapper).dialect)
    if oid is None:
        return NO_VALUE
    verifier = inst.verifier
    if verifier.rate and verifier.sample():
        position = inst.cache.current_tid
        cached, stamp = inst.cache.get_state_meta(oid)
        if cached is not NO_VALUE:
            verify_state(inst, session, mapper, pk, cached, oid, stamp, position)
    else:
        cached = inst.cache.get_state(oid)
    if cached is NO_VALUE:
        return NO_VALUE
    if cached is None:
        return None
    try:
        return identity.attach(session, mapper, cached)
    except (identity.Unsupported, TypeError, KeyError, AttributeError):
        return NO_VALUE
