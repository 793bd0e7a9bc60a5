"""Django integration: cached ORM reads, write-time invalidation, a CACHES backend, views.

Use ``django_cachedeps.db.backends.sqlite3``, ``.postgresql`` or ``.mysql`` (MySQL and
MariaDB) as the database ENGINE, add
``django_cachedeps`` to INSTALLED_APPS and
``django_cachedeps.middleware.CachedepsMiddleware`` to MIDDLEWARE. Queries are then cached
and invalidated without code changes; :func:`nocache` and :func:`uncached` opt out.
:func:`unit_of_work` polls the change feed once for a block outside a request (a script);
management commands and Celery tasks get one each (:mod:`django_cachedeps.units`).
"""

from __future__ import annotations

from typing import Any

from cachedeps.work import unit_of_work as unit_of_work

from .db.hints import cached as cached
from .db.hints import nocache as nocache
from .db.hints import uncached as uncached

__all__ = ["nocache", "uncached", "cached", "unit_of_work", "invalidate_model", "invalidate_object"]


def __getattr__(name: str) -> Any:
    # The helpers import the ORM's write machinery: loaded on first use.
    if name in ("invalidate_model", "invalidate_object"):
        from . import invalidation

        return getattr(invalidation, name)
    raise AttributeError(f"module 'django_cachedeps' has no attribute {name!r}")
