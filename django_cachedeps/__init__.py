"""Django integration: cached ORM reads, write-time invalidation, a CACHES backend, views.

Use ``django_cachedeps.db.backends.sqlite3``, ``.postgresql`` or ``.mysql`` (MySQL and
MariaDB) as the database ENGINE, add
``django_cachedeps`` to INSTALLED_APPS and
``django_cachedeps.middleware.CachedepsMiddleware`` to MIDDLEWARE. Queries are then cached
and invalidated without code changes; :func:`nocache` and :func:`uncached` opt out.
"""

from __future__ import annotations

from .db.hints import nocache as nocache
from .db.hints import uncached as uncached

__all__ = ["nocache", "uncached"]
