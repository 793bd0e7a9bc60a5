"""The MySQL/MariaDB backend with cachedeps (``ENGINE = "django_cachedeps.db.backends.mysql"``)."""

from __future__ import annotations

__all__: list[str] = []
