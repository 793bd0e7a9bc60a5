"""Database backends that cache ORM reads and invalidate on writes.

Set ``DATABASES[alias]["ENGINE"]`` to ``django_cachedeps.db.backends.sqlite3``,
``django_cachedeps.db.backends.postgresql`` or ``django_cachedeps.db.backends.mysql`` (MySQL
and MariaDB). Each subclasses Django's own backend: the
compilers come from :mod:`django_cachedeps.db.compiler` and raw SQL writes are tracked.
"""

from __future__ import annotations

__all__: list[str] = []
