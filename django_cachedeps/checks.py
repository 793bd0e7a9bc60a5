"""System checks for the cachedeps configuration (``manage.py check``).

======================  =====================================================================
id                      fires when
======================  =====================================================================
``cachedeps.E001``      ``CACHEDEPS`` itself is malformed (unknown key, bad value)
``cachedeps.E002``      ``CACHEDEPS["CACHE"]`` names an alias that is not in ``CACHES``
``cachedeps.E003``      that ``CACHES`` entry's BACKEND is not ``CachedepsCache``
``cachedeps.E004``      a ``CachedepsCache`` LOCATION is not a valid store URL
``cachedeps.E005``      ``CACHEDEPS["MODELS"]``/``["EXCLUDE"]`` names a model that does not exist
``cachedeps.E006``      a database ENGINE is not a cachedeps backend while caching is enabled
``cachedeps.W001``      ``CachedepsMiddleware`` is missing from ``MIDDLEWARE``
``cachedeps.W002``      an unmanaged model is left uncached: ``CACHEDEPS["VIEWS"]`` does not
                        declare its base tables
``cachedeps.E007``      ``CACHEDEPS["VIEWS"]`` names a model that does not exist or is managed
======================  =====================================================================

Every message says how to fix it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

__all__ = ["check_settings", "check_cache", "check_models", "check_views", "check_databases", "check_middleware"]

BACKEND_PATH = "django_cachedeps.backend.CachedepsCache"
MIDDLEWARE_PATH = "django_cachedeps.middleware.CachedepsMiddleware"
DB_BACKENDS = ("django_cachedeps.db.backends.sqlite3", "django_cachedeps.db.backends.postgresql")
_STOCK_TO_WRAPPER = {
    "django.db.backends.sqlite3": "django_cachedeps.db.backends.sqlite3",
    "django.db.backends.postgresql": "django_cachedeps.db.backends.postgresql",
}


def _parsed() -> Any:
    from .conf import parse

    try:
        return parse(getattr(settings, "CACHEDEPS", None))
    except ImproperlyConfigured:
        return None


@register(Tags.caches)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check that ``CACHEDEPS`` parses."""
    from .conf import parse

    try:
        parse(getattr(settings, "CACHEDEPS", None))
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="Fix the CACHEDEPS setting; see docs/django.md for its keys.",
                      id="cachedeps.E001")]
    return []


@register(Tags.caches)
def check_cache(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check the CACHES alias cachedeps uses and every ``CachedepsCache`` LOCATION."""
    errors: list[Any] = []
    conf = _parsed()
    caches = getattr(settings, "CACHES", {}) or {}
    if conf is not None:
        entry = caches.get(conf.cache)
        if entry is None:
            errors.append(Error(
                f"CACHEDEPS['CACHE'] is {conf.cache!r}, which is not an alias in CACHES "
                f"({', '.join(map(repr, caches)) or 'none'}).",
                hint=f"Add CACHES[{conf.cache!r}] = {{'BACKEND': {BACKEND_PATH!r}, "
                     "'LOCATION': 'embedded://?max_memory=64MB'}, or point CACHEDEPS['CACHE'] at one.",
                id="cachedeps.E002"))
        elif entry.get("BACKEND") != BACKEND_PATH:
            errors.append(Error(
                f"CACHES[{conf.cache!r}] uses BACKEND {entry.get('BACKEND')!r}; cachedeps needs "
                f"{BACKEND_PATH!r} there.",
                hint=f"Set CACHES[{conf.cache!r}]['BACKEND'] = {BACKEND_PATH!r} (LOCATION a store URL).",
                id="cachedeps.E003"))
    from cachedeps.config import parse_url
    from cachedeps.errors import ConfigurationError

    for alias, entry in caches.items():
        if entry.get("BACKEND") != BACKEND_PATH:
            continue
        location = entry.get("LOCATION", "")
        try:
            if not isinstance(location, str) or not location:
                raise ConfigurationError(f"LOCATION must be a non-empty string, got {location!r}")
            parse_url(location)
        except ConfigurationError as exc:
            errors.append(Error(
                f"CACHES[{alias!r}]['LOCATION'] is not a valid cachedeps store URL: {exc}",
                hint="Use 'embedded://?max_memory=64MB' or 'memcache://host:11211[,host2:11211]'.",
                id="cachedeps.E004"))
    return errors


@register(Tags.models)
def check_models(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check that ``CACHEDEPS["MODELS"]`` and ``["EXCLUDE"]`` name installed models."""
    from django.apps import apps

    raw = getattr(settings, "CACHEDEPS", None) or {}
    if _parsed() is None:
        return []
    known = {m._meta.label_lower for m in apps.get_models(include_auto_created=True)}
    errors: list[Any] = []
    for name in ("MODELS", "EXCLUDE"):
        value = raw.get(name)
        if value is None or value == "__all__":
            continue
        for label in value:
            if label.lower() not in known:
                errors.append(Error(
                    f"CACHEDEPS[{name!r}] names {label!r}, which is not an installed model.",
                    hint="Use 'app_label.ModelName' of a model in INSTALLED_APPS, or remove it.",
                    id="cachedeps.E005"))
    return errors


@register(Tags.models)
def check_views(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Warn about unmanaged models left uncached; check ``CACHEDEPS["VIEWS"]``'s labels."""
    from django.apps import apps

    from .conf import uncached_unmanaged

    conf = _parsed()
    if conf is None or not conf.enabled:
        return []
    models = {m._meta.label_lower: m for m in apps.get_models()}
    errors: list[Any] = []
    for label in conf.views:
        model = models.get(label)
        if model is None or model._meta.managed:
            what = "is not an installed model" if model is None else "is a managed model (a table Django creates)"
            errors.append(Error(
                f"CACHEDEPS['VIEWS'] names {label!r}, which {what}.",
                hint="List unmanaged models (Meta.managed = False) only, as 'app_label.ModelName'.",
                id="cachedeps.E007"))
    for label in uncached_unmanaged():
        errors.append(Warning(
            f"{label} is an unmanaged model: its queries are not cached, since writes to the tables "
            "behind it (a view's base tables) never emit its keys; a write through it drops every "
            "cached table's entries.",
            hint=f"Declare its base tables to cache it: CACHEDEPS['VIEWS'] = {{{label!r}: ['base_table', ...]}} "
                 "(its reads then depend on those tables' keys), or exclude it to silence this warning.",
            id="cachedeps.W002"))
    return errors


@register(Tags.database)
def check_databases(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check that every database uses a cachedeps ENGINE while caching is enabled."""
    conf = _parsed()
    if conf is None or not conf.enabled:
        return []
    errors: list[Any] = []
    for alias, db in settings.DATABASES.items():
        engine = db.get("ENGINE", "")
        if engine in DB_BACKENDS:
            continue
        wrapper = _STOCK_TO_WRAPPER.get(engine)
        hint = (f"Set DATABASES[{alias!r}]['ENGINE'] = {wrapper!r}." if wrapper else
                f"Use one of {', '.join(DB_BACKENDS)}, or set CACHEDEPS['ENABLED'] = False.")
        errors.append(Error(
            f"DATABASES[{alias!r}] uses ENGINE {engine!r}: its writes would not invalidate cached "
            "data and its reads would not be cached.",
            hint=hint, id="cachedeps.E006"))
    return errors


@register(Tags.caches)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Warn when ``CachedepsMiddleware`` is missing (every cached read would poll the feed)."""
    conf = _parsed()
    if conf is None or not conf.enabled:
        return []
    if MIDDLEWARE_PATH in (getattr(settings, "MIDDLEWARE", None) or []):
        return []
    return [Warning(
        "CachedepsMiddleware is not in MIDDLEWARE: every cached read polls the change feed "
        "instead of once per request.",
        hint=f"Add {MIDDLEWARE_PATH!r} near the top of MIDDLEWARE.",
        id="cachedeps.W001")]
