"""The PostgreSQL backend with cachedeps (``ENGINE = "django_cachedeps.db.backends.postgresql"``)."""

from __future__ import annotations

__all__: list[str] = []
