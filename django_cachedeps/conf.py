"""Read the ``CACHEDEPS`` setting once into a frozen :class:`CachedepsSettings`.

``settings.CACHEDEPS`` is a dict; every key is optional::

    CACHEDEPS = {
        "CACHE": "default",        # the CACHES alias whose LOCATION is the store URL
        "MODELS": "__all__",       # or ["app_label.Model", ...]: the models whose queries are cached
        "EXCLUDE": [],             # models never cached (added to the defaults below)
        "TIMEOUT": 3600,           # seconds a cached query result or row lives
        "MAX_DELTA": 10_000,       # delta-map size that moves the checkpoints
        "FEED_KEEP": 100_000,      # feed rows kept by pruning
        "ENABLED": True,
        "VERIFY": False,           # True: run every hit's query on the database too and raise
                                   # StaleRead on a difference; 0.01: 1% of hits, logged
        "VIEWS": {},               # {"app_label.Model": ["base_table", ...]}: an unmanaged model
                                   # (a view) is cached only with its base tables declared
        "CAPTURE": False,          # True: capture triggers (manage.py cachedeps_capture install)
                                   # write the keys of captured tables; the ORM writes leave
                                   # them out of the feed, and check W004 names cached tables
                                   # without capture
    }

Django's own bookkeeping models (sessions, admin log, content types, migrations) are never
cached. The parsed value is reset on ``setting_changed`` (connected in ``apps.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from cachedeps.errors import ConfigurationError
from cachedeps.verify import Verifier

__all__ = [
    "CachedepsSettings",
    "DEFAULT_EXCLUDE",
    "FEED_TABLE",
    "get_settings",
    "parse",
    "reset",
    "cached_tables",
    "table_is_cached",
    "view_tables",
    "view_base_keys",
    "uncached_unmanaged",
    "table_is_written_through",
    "written_through_tables",
    "unknown_rows_keys",
]

#: Models whose tables are never cached or invalidated.
DEFAULT_EXCLUDE = frozenset(
    {"sessions.session", "admin.logentry", "contenttypes.contenttype", "migrations.migration"}
)
#: The change feed's table; never cached, never a dependency.
FEED_TABLE = "cachedeps_change"
_NEVER_CACHED_TABLES = frozenset({FEED_TABLE, "django_migrations"})
_KNOWN = frozenset({"CACHE", "MODELS", "EXCLUDE", "TIMEOUT", "MAX_DELTA", "FEED_KEEP", "ENABLED", "VERIFY", "VIEWS", "CAPTURE"})


@dataclass(frozen=True)
class CachedepsSettings:
    """The parsed ``CACHEDEPS`` setting.

    ``models`` is ``None`` for every model, else the lowercased ``app_label.model`` labels.
    """

    cache: str = "default"
    models: frozenset[str] | None = None
    exclude: frozenset[str] = DEFAULT_EXCLUDE
    timeout: int = 3600
    max_delta: int = 10_000
    feed_keep: int = 100_000
    enabled: bool = True
    verifier: Verifier = field(default_factory=Verifier)
    views: dict[str, tuple[str, ...]] = field(default_factory=dict)
    capture: bool = False

    def model_is_cached(self, label_lower: str) -> bool:
        """Return whether queries on the model ``app_label.model`` (lowercase) are cached."""
        if not self.enabled or label_lower in self.exclude:
            return False
        return self.models is None or label_lower in self.models


def _labels(name: str, value: Any) -> frozenset[str]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ImproperlyConfigured(
            f"CACHEDEPS[{name!r}] must be a list of 'app_label.Model' strings, got {value!r}"
        )
    for label in value:
        if label.count(".") != 1:
            raise ImproperlyConfigured(
                f"CACHEDEPS[{name!r}] holds {label!r}, which is not 'app_label.Model'"
            )
    return frozenset(v.lower() for v in value)


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(f"CACHEDEPS[{name!r}] must be an integer >= {minimum}, got {value!r}")
    return value


def _parse_views(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            f"CACHEDEPS['VIEWS'] must be a dict mapping 'app_label.Model' to a list of base table names, got {value!r}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for label, tables in value.items():
        if not isinstance(label, str) or label.count(".") != 1:
            raise ImproperlyConfigured(f"CACHEDEPS['VIEWS'] holds {label!r}, which is not 'app_label.Model'")
        if isinstance(tables, str) or not tables or not all(isinstance(t, str) and t for t in tables):
            raise ImproperlyConfigured(
                f"CACHEDEPS['VIEWS'][{label!r}] must be a non-empty list of base table names, got {tables!r}"
            )
        out[label.lower()] = tuple(tables)
    return out


def parse(raw: Any) -> CachedepsSettings:
    """Parse a ``CACHEDEPS`` dict; reject unknown keys and bad values with a message naming them.

    Raises:
        ImproperlyConfigured: the value is not a dict, has an unknown key or a bad value.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"CACHEDEPS must be a dict, got {type(raw).__name__}: {raw!r}")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ImproperlyConfigured(
            f"CACHEDEPS has unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(sorted(_KNOWN))}"
        )
    cache = raw.get("CACHE", "default")
    if not isinstance(cache, str) or not cache:
        raise ImproperlyConfigured(f"CACHEDEPS['CACHE'] must be a CACHES alias (a string), got {cache!r}")
    models_raw = raw.get("MODELS", "__all__")
    models = None if models_raw == "__all__" else _labels("MODELS", models_raw)
    exclude = DEFAULT_EXCLUDE | _labels("EXCLUDE", raw.get("EXCLUDE", ()))
    enabled = raw.get("ENABLED", True)
    if not isinstance(enabled, bool):
        raise ImproperlyConfigured(f"CACHEDEPS['ENABLED'] must be True or False, got {enabled!r}")
    capture = raw.get("CAPTURE", False)
    if not isinstance(capture, bool):
        raise ImproperlyConfigured(f"CACHEDEPS['CAPTURE'] must be True or False, got {capture!r}")
    try:
        verifier = Verifier(raw.get("VERIFY", False), "CACHEDEPS['VERIFY']")
    except ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    return CachedepsSettings(
        verifier=verifier,
        views=_parse_views(raw.get("VIEWS", {})),
        cache=cache,
        models=models,
        exclude=exclude,
        timeout=_positive_int("TIMEOUT", raw.get("TIMEOUT", 3600), 0),
        max_delta=_positive_int("MAX_DELTA", raw.get("MAX_DELTA", 10_000), 1),
        feed_keep=_positive_int("FEED_KEEP", raw.get("FEED_KEEP", 100_000), 0),
        enabled=enabled,
        capture=capture,
    )


_lock = threading.Lock()
_settings: CachedepsSettings | None = None
_tables: frozenset[str] | None = None
_views: dict[str, tuple[str, ...]] = {}
_unmanaged: tuple[str, ...] = ()
_opaque: frozenset[str] = frozenset()


def get_settings() -> CachedepsSettings:
    """Return the parsed ``CACHEDEPS`` setting, parsing it on first use."""
    global _settings
    current = _settings
    if current is None:
        from django.conf import settings

        current = parse(getattr(settings, "CACHEDEPS", None))
        with _lock:
            _settings = current
    return current


def cached_tables() -> frozenset[str]:
    """Return the database tables of every cached model (auto-created m2m tables included).

    An auto-created through table is cached when both of its ends are. An unmanaged model
    (``Meta.managed = False``: often a database view, whose base tables' writes never emit
    its keys) is cached only when ``CACHEDEPS["VIEWS"]`` declares its base tables; its reads
    then also depend on their table keys (:func:`view_tables`).
    """
    global _tables, _views, _unmanaged, _opaque
    current = _tables
    if current is None:
        from django.apps import apps

        conf = get_settings()
        tables: set[str] = set()
        views: dict[str, tuple[str, ...]] = {}
        unmanaged: list[str] = []
        opaque: set[str] = set()
        for model in apps.get_models(include_auto_created=True):
            opts = model._meta
            if opts.db_table in _NEVER_CACHED_TABLES:
                continue  # cachedeps's own tables (the feed is unmanaged, but no view)
            if opts.auto_created:
                ends = [f.related_model._meta.label_lower for f in opts.fields if f.is_relation]
                ok = all(conf.model_is_cached(label) for label in ends)
            else:
                ok = conf.model_is_cached(opts.label_lower)
            if ok and not opts.managed and not opts.proxy:
                bases = conf.views.get(opts.label_lower)
                if bases is None:
                    unmanaged.append(opts.label)
                    opaque.add(opts.db_table)
                    ok = False
                else:
                    views[opts.db_table] = bases
            if ok and not opts.proxy:
                tables.add(opts.db_table)
        current = frozenset(tables - _NEVER_CACHED_TABLES)
        with _lock:
            _views = views
            _unmanaged = tuple(unmanaged)
            _opaque = frozenset(opaque)
            _tables = current
    return current


def view_tables() -> dict[str, tuple[str, ...]]:
    """Return the table of each cached unmanaged model and its declared base tables."""
    cached_tables()
    return _views


def view_base_keys(table: str) -> list[str]:
    """Return the table keys of a declared view's base tables (empty for other tables).

    Writes through such a model emit them too: they change the base tables' rows. A write
    through an undeclared unmanaged model may change any table: it emits every cached
    table's keys.
    """
    from cachedeps.views import base_keys

    tables = cached_tables()
    if table in _opaque:
        return base_keys(sorted(tables))
    return base_keys(view_tables().get(table, ()))


def table_is_written_through(table: str) -> bool:
    """Return whether writes to ``table`` must emit keys (a cached table or an unmanaged model's)."""
    return table in cached_tables() or table in _opaque


def written_through_tables() -> frozenset[str]:
    """Return every table whose writes must emit keys (cached tables and unmanaged models')."""
    return cached_tables() | _opaque


def unknown_rows_keys(table: str) -> list[str]:
    """Return the keys a write to unknown rows of ``table`` emits (a view's base tables' too)."""
    from cachedeps import keys as ck

    return list(dict.fromkeys([ck.table_key(table), ck.all_rows_key(table), *view_base_keys(table)]))


def uncached_unmanaged() -> tuple[str, ...]:
    """Return the labels of unmanaged models left uncached for want of declared base tables."""
    cached_tables()
    return _unmanaged


def table_is_cached(table: str) -> bool:
    """Return whether reads of ``table`` are cached and its writes invalidate."""
    return table in cached_tables()


def reset(**kwargs: Any) -> None:
    """Forget the parsed setting (a ``setting_changed`` receiver)."""
    global _settings, _tables
    setting = kwargs.get("setting")
    if setting not in (None, "CACHEDEPS", "INSTALLED_APPS"):
        return
    with _lock:
        _settings = None
        _tables = None
