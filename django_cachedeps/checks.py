"""System checks for the cachedeps configuration (``manage.py check``).

======================  =====================================================================
id                      fires when
======================  =====================================================================
``cachedeps.E001``      ``CACHEDEPS`` itself is malformed (unknown key, bad value, an unknown
                        option of a model in the dict form of ``MODELS``)
``cachedeps.E002``      ``CACHEDEPS["CACHE"]`` names an alias that is not in ``CACHES``
``cachedeps.E003``      that ``CACHES`` entry's BACKEND is not ``CachedepsCache``
``cachedeps.E004``      a ``CachedepsCache`` LOCATION is not a valid store URL
``cachedeps.E005``      ``CACHEDEPS["MODELS"]``/``["EXCLUDE"]`` names a model that does not exist
``cachedeps.E006``      a database ENGINE is not a cachedeps backend while caching is enabled
``cachedeps.W001``      ``CachedepsMiddleware`` is missing from ``MIDDLEWARE``
``cachedeps.W002``      an unmanaged model is left uncached: ``CACHEDEPS["VIEWS"]`` does not
                        declare its base tables
``cachedeps.E007``      ``CACHEDEPS["VIEWS"]`` names a model that does not exist or is managed
``cachedeps.E008``      ``"django_cachedeps"`` is not in ``INSTALLED_APPS`` while a cachedeps
                        cache backend or database ENGINE is configured
``cachedeps.E009``      the client library a store URL needs is not installed (``pymemcache``
                        for ``memcache://``) or a plugin store's module does not import
``cachedeps.E010``      a ``CachedepsCache`` entry has no LOCATION
``cachedeps.W003``      a ``memcache://`` server does not accept connections
``cachedeps.E011``      ``CACHEDEPS["METRICS"]`` names an exporter whose client library is not
                        installed (``prometheus_client``, ``opentelemetry-api``)
``cachedeps.E012``      (``check --database``) on MySQL/MariaDB, the change feed table or its
                        lock table is missing or not InnoDB (transactional row locks keep
                        the feed's tids in commit order)
``cachedeps.W004``      ``CACHEDEPS["CAPTURE"]`` is True and a cached table has no capture
                      triggers, or they drifted from the model (database checks:
                      ``manage.py check --database default``, ``migrate``)
======================  =====================================================================

The checks are registered when the app loads, and also when the cache backend or a database
wrapper is imported: a project that forgot the app in ``INSTALLED_APPS`` is told so (E008).

Every message says how to fix it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "check_settings",
    "check_cache",
    "check_models",
    "check_views",
    "check_databases",
    "check_middleware",
    "check_app_installed",
    "check_store_reachable",
    "check_metrics",
    "check_mysql_feed",
]

BACKEND_PATH = "django_cachedeps.backend.CachedepsCache"
MIDDLEWARE_PATH = "django_cachedeps.middleware.CachedepsMiddleware"
DB_BACKENDS = (
    "django_cachedeps.db.backends.sqlite3",
    "django_cachedeps.db.backends.postgresql",
    "django_cachedeps.db.backends.mysql",
)
_STOCK_TO_WRAPPER = {
    "django.db.backends.sqlite3": "django_cachedeps.db.backends.sqlite3",
    "django.db.backends.postgresql": "django_cachedeps.db.backends.postgresql",
    "django.db.backends.mysql": "django_cachedeps.db.backends.mysql",
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
        if not location:
            errors.append(Error(
                f"CACHES[{alias!r}] uses {BACKEND_PATH!r} but has no LOCATION.",
                hint=f"Set CACHES[{alias!r}]['LOCATION'] to a store URL: 'embedded://?max_memory=64MB' "
                     "(in-process) or 'memcache://127.0.0.1:11211' (shared by every process).",
                id="cachedeps.E010"))
            continue
        try:
            if not isinstance(location, str):
                raise ConfigurationError(f"LOCATION must be a string, got {location!r}")
            config = parse_url(location)
        except ConfigurationError as exc:
            errors.append(Error(
                f"CACHES[{alias!r}]['LOCATION'] is not a valid cachedeps store URL: {exc}",
                hint="Use 'embedded://?max_memory=64MB' or 'memcache://host:11211[,host2:11211]'.",
                id="cachedeps.E004"))
            continue
        missing = _missing_client(config)
        if missing:
            errors.append(Error(
                f"CACHES[{alias!r}]['LOCATION'] is {location!r}, but {missing}.",
                hint="Install the store's extra, e.g. pip install 'cachedeps[memcache]' for memcache://.",
                id="cachedeps.E009"))
    return errors


def _cachedeps_locations() -> list[tuple[str, str]]:
    caches = getattr(settings, "CACHES", {}) or {}
    return [(alias, entry.get("LOCATION")) for alias, entry in caches.items()
            if entry.get("BACKEND") == BACKEND_PATH and isinstance(entry.get("LOCATION"), str)
            and entry.get("LOCATION")]


def _missing_client(config: Any) -> str | None:
    """Return what is missing for a parsed store URL to open, or ``None``."""
    import importlib
    import importlib.util

    from cachedeps.config import MemcacheConfig, PluginConfig

    if isinstance(config, MemcacheConfig):
        if importlib.util.find_spec("pymemcache") is None:
            return "the pymemcache package, which memcache:// stores need, is not installed"
    elif isinstance(config, PluginConfig):
        from importlib.metadata import entry_points

        for ep in entry_points(group="cachedeps.stores"):
            if ep.name == config.scheme:
                try:
                    ep.load()
                except ImportError as exc:
                    return f"the {config.scheme}:// store does not import ({exc})"
    return None


@register(Tags.caches)
def check_app_installed(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check that ``django_cachedeps`` is installed when its backend or a wrapper is configured.

    Without the app there is no change-feed table and no receivers: nothing is cached and
    nothing says so. This check is registered by the backend and the wrappers too, so it
    runs when the app itself is missing.
    """
    from django.apps import apps

    if apps.is_installed("django_cachedeps"):
        return []
    caches = getattr(settings, "CACHES", {}) or {}
    users = [f"CACHES[{a!r}]" for a, e in caches.items() if e.get("BACKEND") == BACKEND_PATH]
    users += [f"DATABASES[{a!r}]" for a, d in (getattr(settings, "DATABASES", {}) or {}).items()
              if d.get("ENGINE") in DB_BACKENDS]
    if not users:
        return []
    return [Error(
        f"{', '.join(users)} use cachedeps, but 'django_cachedeps' is not in INSTALLED_APPS: "
        "there is no change-feed table, so nothing is cached and writes invalidate nothing.",
        hint="Add 'django_cachedeps' to INSTALLED_APPS, then run manage.py migrate.",
        id="cachedeps.E008")]


@register(Tags.caches)
def check_store_reachable(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Warn when a ``memcache://`` server does not accept a TCP connection (0.5 s each).

    A warning, not an error: the application runs on its database with the store down, but
    caches nothing, which is seldom what was meant.
    """
    import socket

    from cachedeps.config import MemcacheConfig, parse_url
    from cachedeps.errors import ConfigurationError

    found: list[Any] = []
    for alias, location in _cachedeps_locations():
        try:
            config = parse_url(location)
        except ConfigurationError:
            continue  # E004
        if not isinstance(config, MemcacheConfig):
            continue
        for host, port in config.servers:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
            except OSError as exc:
                found.append(Warning(
                    f"CACHES[{alias!r}]['LOCATION'] names memcached at {host}:{port}, which does not "
                    f"accept connections ({exc.strerror or exc}): every read goes to the database "
                    "and nothing is cached.",
                    hint=f"Start memcached on {host}:{port} (or `cachedeps serve --port {port}`), "
                         "or fix the host and port in LOCATION.",
                    id="cachedeps.W003"))
    return found


@register(Tags.caches)
def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check that the exporters ``CACHEDEPS["METRICS"]`` names can be imported."""
    import importlib.util

    conf = _parsed()
    if conf is None:
        return []
    needs = {"prometheus": ("prometheus_client", "prometheus"), "otel": ("opentelemetry.metrics", "otel")}
    errors: list[Any] = []
    for name in conf.metrics:
        module, extra = needs[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package is missing
            found = False
        if not found:
            errors.append(Error(
                f"CACHEDEPS['METRICS'] names {name!r}, but the {module.split('.')[0]} package is not installed.",
                hint=f"pip install 'cachedeps[{extra}]', or remove {name!r} from CACHEDEPS['METRICS'].",
                id="cachedeps.E011"))
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
        for label in value:  # a list, or the dict form of MODELS (its keys)
            if label == "*" and isinstance(value, dict):
                continue
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


@register(Tags.database)
def check_capture(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Warn when the project asked for capture and a cached table has none (or it drifted)."""
    conf = _parsed()
    if conf is None or not conf.enabled or not conf.capture or not databases:
        return []
    from django.db import connections

    from . import capture
    from .runtime import feed_ready

    warnings: list[Any] = []
    for alias in databases:
        if alias not in connections or connections[alias].vendor not in ("postgresql", "sqlite", "mysql"):
            continue
        try:
            if not feed_ready(alias):
                continue
            found = capture.status(alias)
        except Exception as exc:  # the database is unreachable: other checks say so
            warnings.append(Warning(f"cannot read the capture status of database {alias!r}: {exc}",
                                    id="cachedeps.W004"))
            continue
        for st in found:
            if st.ok:
                continue
            what = "has no capture triggers" if not st.installed else "capture drifted: " + "; ".join(st.drift)
            warnings.append(Warning(
                f"CACHEDEPS['CAPTURE'] is True but cached table {st.table!r} of database {alias!r} {what}.",
                hint="Run manage.py cachedeps_capture install (or add django_cachedeps.capture.InstallCapture() "
                     "to a migration).",
                id="cachedeps.W004"))
    return warnings


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


@register(Tags.database)
def check_mysql_feed(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Check, on MySQL/MariaDB databases, that the feed and its lock table are InnoDB tables.

    The feed's order rests on a row lock held until COMMIT: a MyISAM table (no transactions,
    table locks) or a missing lock table would let tids commit out of order. Runs only with
    ``manage.py check --database`` (or ``migrate``), since it reads the database.
    """
    from django.db import connections

    from cachedeps.feed import SqlFeed

    from .conf import FEED_TABLE

    errors: list[Any] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "mysql" or settings.DATABASES[alias].get("ENGINE") not in DB_BACKENDS:
            continue
        feed = SqlFeed(dialect="mysql", table=FEED_TABLE)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s)",
                [feed.table, feed.lock_table])
            engines = dict(cursor.fetchall())
        if feed.table not in engines:
            continue  # not migrated yet: migrate creates both
        for table in (feed.table, feed.lock_table):
            engine = engines.get(table)
            if engine is None or str(engine).lower() != "innodb":
                what = "is missing" if engine is None else f"uses the {engine} storage engine"
                errors.append(Error(
                    f"DATABASES[{alias!r}]: the change feed table {table!r} {what}; the feed needs "
                    "InnoDB tables (a row lock held until COMMIT keeps its tids in commit order).",
                    hint=(f"Run manage.py migrate django_cachedeps --database {alias}." if engine is None else
                          f"ALTER TABLE {table} ENGINE=InnoDB, and set default_storage_engine=InnoDB "
                          "in the server or OPTIONS['init_command']."),
                    id="cachedeps.E012"))
    return errors
