"""Settings of the demo site: SQLite in this directory, the embedded store, cachedeps on."""

from __future__ import annotations

import os
from pathlib import Path

__all__: list[str] = []

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_cachedeps",
    "bookmarks",
]

MIDDLEWARE = [
    "django_cachedeps.middleware.CachedepsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django_cachedeps.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

CACHES = {
    "default": {
        "BACKEND": "django_cachedeps.backend.CachedepsCache",
        "LOCATION": os.environ.get("DEMO_CACHE", "embedded://?max_memory=64MB"),
    }
}

CACHEDEPS = {"CACHE": "default", "TIMEOUT": 3600}

# DEMO_CACHE_MODE compares configurations (benchmarks/bench_django.py): "cachedeps" (the
# default), "none" (no caching at all), "cache_page" (Django's time-based page cache).
DEMO_CACHE_MODE = os.environ.get("DEMO_CACHE_MODE", "cachedeps")
if DEMO_CACHE_MODE != "cachedeps":
    CACHEDEPS["ENABLED"] = False
if DEMO_CACHE_MODE == "cache_page":
    CACHES["pages"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    CACHE_MIDDLEWARE_ALIAS = "pages"
    CACHE_MIDDLEWARE_SECONDS = 60
    MIDDLEWARE = ["django.middleware.cache.UpdateCacheMiddleware", *MIDDLEWARE,
                  "django.middleware.cache.FetchFromCacheMiddleware"]

SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "cachedeps": {"handlers": ["console"], "level": "WARNING"},
        "django_cachedeps": {"handlers": ["console"], "level": "WARNING"},
    },
}
