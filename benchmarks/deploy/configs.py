"""The configurations the deploy benchmark compares."""

from __future__ import annotations

__all__ = ["CONFIGS", "PEERS"]

#: configuration -> what it is (and the store it uses)
CONFIGS = {
    "none": "no cache",
    "cache_page": "Django cache_page (memcached, 60 s)",
    "cachalot": "django-cachalot (memcached)",
    "cacheops": "django-cacheops (Redis, cached_view_as)",
    "cachedeps-orm": "cachedeps ORM only (memcached)",
    "cachedeps-memcached": "cachedeps pages+fragments (memcached)",
    "cachedeps-redis": "cachedeps pages+fragments (Redis)",
    "cachedeps-embedded": "cachedeps pages+fragments (embedded, per worker)",
}

#: the caches a team would pick instead of cachedeps
PEERS = ("cachalot", "cacheops")
