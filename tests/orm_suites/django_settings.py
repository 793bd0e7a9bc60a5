"""Settings for Django's ``tests/runtests.py`` under cachedeps (read from the environment).

``ORM_SUITE_DB``: ``sqlite`` (in memory), ``postgresql`` (``ORM_SUITE_PG_DB``, ``_USER``,
``_HOST``, ``_PORT``) or ``mysql`` (MariaDB or MySQL: ``ORM_SUITE_MYSQL_DB`` and the rest);
on both, test databases ``<ORM_SUITE_TEST_PREFIX>_default``/``_other``. ``ORM_SUITE_BACKEND``:
``cachedeps`` (the ``django_cachedeps`` engines, every model cached, the embedded store,
``VERIFY`` when the code supports it) or ``plain`` (Django's stock backends, to compare).
``runtests.py`` replaces INSTALLED_APPS; ``django_boot`` adds ``django_cachedeps`` to it.
"""

import os

_db = os.environ.get("ORM_SUITE_DB", "sqlite")
_plain = os.environ.get("ORM_SUITE_BACKEND", "cachedeps") == "plain"
_vendor = _db if _db in ("postgresql", "mysql") else "sqlite3"
_engine = f"django.db.backends.{_vendor}" if _plain else f"django_cachedeps.db.backends.{_vendor}"

if _db in ("postgresql", "mysql"):
    _pg = _db == "postgresql"
    _env = "ORM_SUITE_PG_" if _pg else "ORM_SUITE_MYSQL_"
    _prefix = os.environ.get("ORM_SUITE_TEST_PREFIX", "test_orm_suite")
    DATABASES = {
        alias: {
            "ENGINE": _engine,
            "NAME": os.environ.get(_env + "DB", "test"),
            "USER": os.environ.get(_env + "USER", "postgres" if _pg else "root"),
            "HOST": os.environ.get(_env + "HOST", "127.0.0.1"),
            "PORT": os.environ.get(_env + "PORT", "5432" if _pg else "3306"),
            "TEST": {"NAME": f"{_prefix}_{alias}", **({} if _pg else {"CHARSET": "utf8mb4"})},
            # PostgreSQL: no wait for the WAL flush at each commit (the autocommit mode
            # commits every write): what a commit makes visible, and when, is the same
            **({"OPTIONS": {"options": "-c synchronous_commit=off"}} if _pg else {}),
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
