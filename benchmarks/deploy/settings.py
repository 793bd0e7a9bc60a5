"""Settings of the demo site for one configuration of the deploy benchmark.

Environment: ``BENCH_CONFIG`` (one of :data:`CONFIGS`), ``BENCH_DB`` (a PostgreSQL database
on ``BENCH_PG_HOST``:``BENCH_PG_PORT``, default 127.0.0.1:5432), ``BENCH_MEMCACHED`` and ``BENCH_REDIS`` (``host:port``).
"""

from __future__ import annotations

import os

from testproject import settings as _demo

# The demo site's settings (its __all__ is empty: copied by name), changed below.
globals().update({k: v for k, v in vars(_demo).items() if k.isupper()})
INSTALLED_APPS = list(_demo.INSTALLED_APPS)
MIDDLEWARE = list(_demo.MIDDLEWARE)
TEMPLATES = list(_demo.TEMPLATES)

from benchmarks.deploy.configs import CONFIGS


CONFIG = os.environ.get("BENCH_CONFIG", "none")
if CONFIG not in CONFIGS:
    raise RuntimeError(f"BENCH_CONFIG={CONFIG!r} is not one of {', '.join(CONFIGS)}")
_MEMCACHED = os.environ.get("BENCH_MEMCACHED", "127.0.0.1:11211")
_REDIS = os.environ.get("BENCH_REDIS", "127.0.0.1:6379")
CACHEDEPS_ON = CONFIG.startswith("cachedeps")

DEBUG = False
# Seeding and the logins before each run hash passwords: a fast hasher keeps that setup short
# (no request of the measured load checks a password: edits carry their session cookie).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
DATABASES = {
    "default": {
        "ENGINE": "django_cachedeps.db.backends.postgresql" if CACHEDEPS_ON else "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "bench_deploy_run"),
        "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
        "USER": "postgres",
        "CONN_MAX_AGE": 600,  # as deployed: one connection per worker, kept
        # psycopg's prepared statements allowed (no pooler between the site and PostgreSQL):
        # cachedeps then prepares its feed poll. Django's cursors bind parameters on the client
        # and prepare nothing, so the other configurations run the same statements either way.
        # BENCH_PREPARE=0: Django's default (None), the poll planned at each execution.
        "OPTIONS": {"prepare_threshold": 5} if os.environ.get("BENCH_PREPARE", "1") == "1" else {},
    }
}
_LOCATION = {
    "cachedeps-orm": f"memcache://{_MEMCACHED}",
    "cachedeps-memcached": f"memcache://{_MEMCACHED}",
    "cachedeps-redis": f"redis://{_REDIS}/0",
    "cachedeps-embedded": "embedded://?max_memory=256MB",
}
CACHES = {
    "default": {
        "BACKEND": "django_cachedeps.backend.CachedepsCache",
        "LOCATION": _LOCATION.get(CONFIG, "embedded://?max_memory=8MB"),
    },
    "peer": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": _MEMCACHED,
        "TIMEOUT": 3600,
    },
}
# SHARED_POLLS: a request skips its feed poll when another worker polled after it began and
# saw the feed end where this worker stands (docs/engine.md, "Shared polls").
CACHEDEPS = {"CACHE": "default", "TIMEOUT": 3600, "ENABLED": CACHEDEPS_ON,
             "SHARED_POLLS": os.environ.get("BENCH_SHARED_POLLS", "1") == "1"}

# The counting middleware runs outermost: its headers are never stored by a page cache.
MIDDLEWARE = ["benchmarks.deploy.middleware.QueryHeaders",
              *(m for m in MIDDLEWARE if CACHEDEPS_ON or "cachedeps" not in m)]
TEMPLATES = [dict(TEMPLATES[0], OPTIONS=dict(TEMPLATES[0]["OPTIONS"]))]

if CONFIG == "cache_page":
    CACHE_MIDDLEWARE_ALIAS = "peer"
    CACHE_MIDDLEWARE_SECONDS = 60
    MIDDLEWARE = [MIDDLEWARE[0], "django.middleware.cache.UpdateCacheMiddleware", *MIDDLEWARE[1:],
                  "django.middleware.cache.FetchFromCacheMiddleware"]
elif CONFIG == "cachalot":
    INSTALLED_APPS.append("cachalot")
    CACHALOT_CACHE = "peer"
    CACHALOT_TIMEOUT = 3600
elif CONFIG == "cacheops":
    INSTALLED_APPS.append("cacheops")
    CACHEOPS_REDIS = f"redis://{_REDIS}/0"
    CACHEOPS_DEFAULTS = {"timeout": 3600}
    CACHEOPS = {"*.*": {"ops": "all"}}  # every model, every kind of query
    ROOT_URLCONF = "benchmarks.deploy.urls_cacheops"
elif CONFIG == "cachedeps-orm":
    ROOT_URLCONF = "benchmarks.deploy.urls_orm"
    TEMPLATES[0]["OPTIONS"]["libraries"] = {"cachedeps": "benchmarks.deploy.nofragments"}
