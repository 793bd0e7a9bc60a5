"""The SQLite backend with cachedeps (``ENGINE = "django_cachedeps.db.backends.sqlite3"``)."""

from __future__ import annotations

__all__: list[str] = []
