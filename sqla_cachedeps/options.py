"""Statement options that ask for cached results.

::

    from sqla_cachedeps import FromCache, RelationshipCache

    session.scalars(select(Book).where(Book.author_id == 7).options(FromCache())).all()
    session.scalars(select(Book).execution_options(cachedeps=True)).all()   # the same
    session.scalars(select(Author).options(RelationshipCache(Author.books))).all()
    session.execute(stmt, execution_options={"cachedeps": False})         # never cached

The options take part in no SQL compilation cache key; they only mark the statement for
the ``do_orm_execute`` listener installed by :func:`sqla_cachedeps.install`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm.interfaces import UserDefinedOption

from cachedeps.errors import ConfigurationError

__all__ = ["FromCache", "RelationshipCache", "EXECUTION_OPTION"]

#: ``execution_options(cachedeps=True)`` caches a select; ``False`` disables every cache
#: path (gets and lazy loads included) for that execution.
EXECUTION_OPTION = "cachedeps"


class FromCache(UserDefinedOption):
    """Serve this select from the cache, computing and storing it on a miss.

    Args:
        timeout: seconds the entry may live in the store (``None``: the store's default).
            Freshness never depends on it: a write invalidates the entry at once.
    """

    propagate_to_loaders = False

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is not None and timeout < 0:
            raise ConfigurationError(f"FromCache timeout must be >= 0 seconds, got {timeout!r}")
        super().__init__()
        self.timeout = timeout

    def _gen_cache_key(self, anon_map: Any, bindparams: Any) -> None:
        # Not part of the SQL compilation cache key: the option changes no SQL.
        return None

    def __repr__(self) -> str:
        return f"FromCache(timeout={self.timeout!r})"


class RelationshipCache(FromCache):
    """Serve lazy loads of the given relationships from the cache.

    Args:
        *attributes: relationship attributes such as ``Author.books``.
        timeout: as for :class:`FromCache`.

    Example::

        authors = session.scalars(
            select(Author).options(RelationshipCache(Author.books, Book.author))
        ).all()
        authors[0].books      # cached lazy load
    """

    propagate_to_loaders = True

    def __init__(self, *attributes: Any, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        if not attributes:
            raise ConfigurationError("RelationshipCache needs at least one relationship attribute, e.g. Author.books")
        self._targets: set[tuple[type, str]] = set()
        for attr in attributes:
            prop = getattr(attr, "property", None)
            if prop is None or not hasattr(prop, "mapper") or not hasattr(prop, "parent"):
                raise ConfigurationError(
                    f"RelationshipCache takes relationship attributes such as Author.books, got {attr!r}"
                )
            self._targets.add((prop.parent.class_, prop.key))

    def applies(self, state: ORMExecuteState) -> bool:
        """Return whether ``state`` is a lazy load of one of this option's relationships."""
        path = state.loader_strategy_path
        if not path or len(path) < 2:
            return False
        mapper, prop = path[-2], path[-1]
        key = getattr(prop, "key", None)
        cls = getattr(mapper, "class_", None)
        if cls is None or key is None:
            return False
        return any((base, key) in self._targets for base in cls.__mro__)

    def __repr__(self) -> str:
        names = ", ".join(sorted(f"{c.__name__}.{k}" for c, k in self._targets))
        return f"RelationshipCache({names})"
