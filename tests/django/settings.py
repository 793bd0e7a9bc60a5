"""Django settings for the test suite. The database is chosen by CACHEDEPS_TEST_DB
(``sqlite``, the default, ``postgresql`` or ``mysql`` for MariaDB/MySQL), the store by CACHEDEPS_TEST_STORE (a store URL,
default the embedded store). CACHEDEPS_TEST_SQLITE_FILE puts the SQLite database in a file
(the consistency checker's child processes share it)."""

import os

SECRET_KEY = "tests-only-secret-key"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_cachedeps",
    "tests.django.testapp",
    "tests.django.checkapp",
]

try:  # the debug-toolbar panel's tests (django-debug-toolbar is a test dependency)
    import debug_toolbar  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append("debug_toolbar")
    STATIC_URL = "static/"  # the toolbar's staticfiles panel reads it at start-up

MIDDLEWARE = [
    "django_cachedeps.middleware.CachedepsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

if os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django_cachedeps.db.backends.postgresql",
            "NAME": os.environ.get("CACHEDEPS_TEST_PG_DB", "test"),
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "TEST": {"NAME": os.environ.get("CACHEDEPS_TEST_PG_NAME", "test_cachedeps_django")},
        }
    }
elif os.environ.get("CACHEDEPS_TEST_DB") == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django_cachedeps.db.backends.mysql",
            "NAME": os.environ.get("CACHEDEPS_TEST_MYSQL_DB", "test"),
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "OPTIONS": {"charset": "utf8mb4"},
            # The server's default collation (case-insensitive): what most projects run.
            "TEST": {"NAME": os.environ.get("CACHEDEPS_TEST_MYSQL_NAME", "test_cachedeps_django"),
                     "CHARSET": "utf8mb4"},
        }
    }
else:
    _file = os.environ.get("CACHEDEPS_TEST_SQLITE_FILE")
    DATABASES = {
        "default": {
            "ENGINE": "django_cachedeps.db.backends.sqlite3",
            "NAME": _file or ":memory:",
            "TEST": {"NAME": _file} if _file else {},
            # Writers in several processes: take the write lock at BEGIN, not on upgrade.
            # WAL: readers in other processes do not block the writers' commits; synchronous=NORMAL
            # (safe in WAL mode) keeps a commit from waiting on fsync, which starves writers here.
            "OPTIONS": (
                {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
                if _file
                else {}
            ),
        }
    }

CACHES = {
    "default": {
        "BACKEND": "django_cachedeps.backend.CachedepsCache",
        "LOCATION": os.environ.get("CACHEDEPS_TEST_STORE", "embedded://?max_memory=64MB"),
    }
}

# Verify mode: every cache hit is checked against the database; a difference raises StaleRead.
# CACHEDEPS_TEST_VERIFY=0 turns it off (the stale-read checker counts stale reads itself);
# CACHEDEPS_TEST_CAPTURE=1 sets CAPTURE (capture triggers installed by the test).
CACHEDEPS = {
    "CACHE": "default",
    "VERIFY": os.environ.get("CACHEDEPS_TEST_VERIFY", "1") == "1",
    "VIEWS": {"testapp.BookCard": ["book", "author"]},
    "CAPTURE": os.environ.get("CACHEDEPS_TEST_CAPTURE") == "1",
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
