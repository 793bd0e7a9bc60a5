"""Settings for Django's ``tests/runtests.py`` under cachedeps (read from the environment).

``ORM_SUITE_DB``: ``sqlite`` (in memory), ``postgresql`` (``ORM_SUITE_PG_DB``, test
databases ``<ORM_SUITE_PG_TEST_PREFIX>_default``/``_other``) or ``mysql`` (MariaDB or MySQL
on ``ORM_SUITE_MYSQL_HOST``:``ORM_SUITE_MYSQL_PORT`` as ``root``; test databases named
the same way). ``ORM_SUITE_BACKEND``:
``cachedeps`` (the ``django_cachedeps`` engines, every model cached, the embedded store,
``VERIFY`` when the code supports it) or ``plain`` (Django's stock backends, to compare).
``runtests.py`` replaces INSTALLED_APPS; ``django_boot`` adds ``django_cachedeps`` to it.
"""

import os

_db = os.environ.get("ORM_SUITE_DB", "sqlite")
_plain = os.environ.get("ORM_SUITE_BACKEND", "cachedeps") == "plain"
_vendor = _db if _db in ("postgresql", "mysql") else "sqlite3"
_engine = f"django.db.backends.{_vendor}" if _plain else f"django_cachedeps.db.backends.{_vendor}"

if _db == "postgresql":
    _prefix = os.environ.get("ORM_SUITE_PG_TEST_PREFIX", "test_orm_suite")
    DATABASES = {
        alias: {
            "ENGINE": _engine,
            "NAME": os.environ.get("ORM_SUITE_PG_DB", "test"),
            "USER": os.environ.get("ORM_SUITE_PG_USER", "postgres"),
            "HOST": os.environ.get("ORM_SUITE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ORM_SUITE_PG_PORT", "5432"),
            "TEST": {"NAME": f"{_prefix}_{alias}"},
            # no wait for the WAL flush at each commit (the autocommit mode commits every
            # write): what a commit makes visible, and when, is the same
            "OPTIONS": {"options": "-c synchronous_commit=off"},
        }
        for alias in ("default", "other")
    }
elif _db == "mysql":
    _prefix = os.environ.get("ORM_SUITE_PG_TEST_PREFIX", "test_orm_suite")
    DATABASES = {
        alias: {
            "ENGINE": _engine,
            "NAME": os.environ.get("ORM_SUITE_MYSQL_DB", "test"),
            "USER": os.environ.get("ORM_SUITE_MYSQL_USER", "root"),
            "HOST": os.environ.get("ORM_SUITE_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ORM_SUITE_MYSQL_PORT", "3306"),
            "TEST": {"NAME": f"{_prefix}_{alias}", "CHARSET": "utf8mb4"},
        }
        for alias in ("default", "other")
    }
else:
    DATABASES = {"default": {"ENGINE": _engine}, "other": {"ENGINE": _engine}}

SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
TEST_RUNNER = "django_runner.RecordingRunner"

if not _plain:
    CACHES = {
        "default": {
            "BACKEND": "django_cachedeps.backend.CachedepsCache",
            "LOCATION": "embedded://?max_memory=256MB",
        }
    }
    CACHEDEPS = {"CACHE": "default", "MODELS": "__all__"}
    if os.environ.get("ORM_SUITE_VERIFY", "1") == "1":
        CACHEDEPS["VERIFY"] = True  # dropped by django_boot when this code has no verify mode
