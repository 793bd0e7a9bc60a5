"""SQLAlchemy adapter: cached gets, queries and lazy loads that are never stale.

::

    import sqla_cachedeps
    from sqla_cachedeps import FromCache

    engine = create_engine("postgresql+psycopg://app@db/app")
    sqla_cachedeps.create_feed_table(engine)
    Session = sessionmaker(engine)
    handle = sqla_cachedeps.install(Session, "memcache://127.0.0.1:11211")

    with Session() as session:
        session.get(Book, 42)                                              # cached by oid
        session.scalars(select(Book).where(Book.author_id == 7).options(FromCache())).all()

Everything goes through SQLAlchemy's public event hooks; ``handle.uninstall()`` removes them.
``sessionmaker(engine, class_=CachingSession)`` answers ``get()`` hits before SQLAlchemy
builds a statement. See ``docs/sqlalchemy.md``.
"""

from __future__ import annotations

from .capture import capture as capture
from .capture import capture_ddl as capture_ddl
from .capture import capture_status as capture_status
from .capture import remove_capture as remove_capture
from .events import Installation as Installation
from .events import install as install
from .feed import create_feed_table as create_feed_table
from .options import EXECUTION_OPTION as EXECUTION_OPTION
from .options import FromCache as FromCache
from .options import RelationshipCache as RelationshipCache
from .session import CachingSession as CachingSession

__all__ = [
    "install",
    "Installation",
    "create_feed_table",
    "FromCache",
    "RelationshipCache",
    "EXECUTION_OPTION",
    "CachingSession",
    "capture",
    "capture_ddl",
    "capture_status",
    "remove_capture",
]
