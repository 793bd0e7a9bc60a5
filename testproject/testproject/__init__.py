"""The cachedeps demo site: a bookmarks site on the embedded store and SQLite."""

from __future__ import annotations

__all__: list[str] = []
