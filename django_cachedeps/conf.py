"""Read the ``CACHEDEPS`` setting once into a frozen :class:`CachedepsSettings`.

``settings.CACHEDEPS`` is a dict; every key is optional::

    CACHEDEPS = {
        "CACHE": "default",        # the CACHES alias whose LOCATION is the store URL
        "MODELS": "__all__",       # or ["app_label.Model", ...]: the models whose queries are cached,
                                   # or {"app_label.Model": {"timeout": 60}, "shop.Log": {"cache": False},
                                   #     "*": {...}}: every model, with per-model options
        "EXCLUDE": [],             # models never cached (added to the defaults below)
        "TIMEOUT": 3600,           # seconds a cached query result or row lives
        "MAX_DELTA": 10_000,       # delta-map size that moves the checkpoints
        "FEED_KEEP": 100_000,      # feed rows kept by pruning
        "ENABLED": True,
        "VERIFY": False,           # True: run every hit's query on the database too and raise
                                   # StaleRead on a difference; 0.01: 1% of hits, logged
        "VIEWS": {},               # {"app_label.Model": ["base_table", ...]}: an unmanaged model
                                   # (a view) is cached only with its base tables declared
        "METRICS": [],             # exporters of the engine's events: "prometheus", "otel"
        "UNIT_FREE_COMMANDS": [],  # management commands run without a unit of work (long-running
                                   # ones: servers, queue consumers); ["*"]: every command
        "CAPTURE": False,          # True: capture triggers (manage.py cachedeps_capture install)
                                   # write the keys of captured tables; the ORM writes leave
                                   # them out of the feed, and check W004 names cached tables
                                   # without capture
        "SHARED_POLLS": False,     # True (PostgreSQL, Linux): a request skips its feed poll when
                                   # another worker process of this host polled after it began
                                   # and saw the feed end where this process stands
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
    "MODEL_OPTIONS",
    "METRICS_EXPORTERS",
    "read_timeout",
    "capped_timeout",
]

#: Models whose tables are never cached or invalidated.
DEFAULT_EXCLUDE = frozenset(
    {"sessions.session", "admin.logentry", "contenttypes.contenttype", "migrations.migration"}
)
#: The change feed's table; never cached, never a dependency.
FEED_TABLE = "cachedeps_change"
_NEVER_CACHED_TABLES = frozenset({FEED_TABLE, "django_migrations"})
_KNOWN = frozenset({"CACHE", "MODELS", "EXCLUDE", "TIMEOUT", "MAX_DELTA", "FEED_KEEP", "ENABLED", "VERIFY", "VIEWS",
                    "METRICS", "UNIT_FREE_COMMANDS", "CAPTURE", "SHARED_POLLS"})
#: the exporters ``CACHEDEPS["METRICS"]`` may name (:mod:`cachedeps.metrics`)
METRICS_EXPORTERS = ("prometheus", "otel")
#: the keys of one model's entry in the dict form of ``CACHEDEPS["MODELS"]``
MODEL_OPTIONS = frozenset({"timeout", "cache"})
#: the dict form's entry for every model it does not name
_EVERY_MODEL = "*"


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
    #: per-model timeouts (lowercased labels) from the dict form of ``MODELS``; 0: no limit
    model_timeouts: dict[str, int] = field(default_factory=dict)
    #: the metrics exporters to install (``CACHEDEPS["METRICS"]``)
    metrics: tuple[str, ...] = ()
    unit_free_commands: frozenset[str] = frozenset()
    capture: bool = False
    shared_polls: bool = False

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


def _parse_model_options(value: dict[Any, Any]) -> tuple[frozenset[str] | None, frozenset[str], dict[str, int], int | None]:
    """Parse the dict form of ``MODELS``: ``(models, excluded, timeouts, default timeout)``.

    A model named in it is cached unless its entry says ``"cache": False``; a model it does
    not name follows the ``"*"`` entry (cached by default). ``models`` is ``None`` when every
    model not excluded is cached.
    """
    timeouts: dict[str, int] = {}
    cached: set[str] = set()
    off: set[str] = set()
    every: dict[str, Any] = {}
    for label, options in value.items():
        where = f"CACHEDEPS['MODELS'][{label!r}]"
        if not isinstance(label, str) or (label != _EVERY_MODEL and label.count(".") != 1):
            raise ImproperlyConfigured(
                f"CACHEDEPS['MODELS'] holds {label!r}, which is not 'app_label.Model' (or '*' for every other model)"
            )
        if not isinstance(options, dict):
            raise ImproperlyConfigured(
                f"{where} must be a dict of options ({', '.join(sorted(MODEL_OPTIONS))}), got {options!r}"
            )
        unknown = sorted(map(str, set(options) - MODEL_OPTIONS))
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; known options: "
                f"{', '.join(sorted(MODEL_OPTIONS))}"
            )
        cache = options.get("cache", True)
        if not isinstance(cache, bool):
            raise ImproperlyConfigured(f"{where}['cache'] must be True or False, got {cache!r}")
        timeout = options.get("timeout", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise ImproperlyConfigured(
                f"{where}['timeout'] must be an integer >= 0 (seconds; 0: no limit), got {timeout!r}"
            )
        if label == _EVERY_MODEL:
            every = options
            continue
        key = label.lower()
        (cached if cache else off).add(key)
        if "timeout" in options:
            timeouts[key] = timeout
    default_timeout = every.get("timeout")
    models = None if every.get("cache", True) else frozenset(cached)
    return models, frozenset(off), timeouts, default_timeout


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


def _command_names(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(v, str) and v for v in value
    ):
        raise ImproperlyConfigured(
            "CACHEDEPS['UNIT_FREE_COMMANDS'] must be a list of management command names "
            f"(such as ['rqworker']) or ['*'] for every command, got {value!r}"
        )
    return frozenset(value)


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
    timeouts: dict[str, int] = {}
    off: frozenset[str] = frozenset()
    default_timeout = None
    if isinstance(models_raw, dict):
        models, off, timeouts, default_timeout = _parse_model_options(models_raw)
    else:
        models = None if models_raw == "__all__" else _labels("MODELS", models_raw)
    exclude = DEFAULT_EXCLUDE | off | _labels("EXCLUDE", raw.get("EXCLUDE", ()))
    timeout = _positive_int("TIMEOUT", raw.get("TIMEOUT", 3600), 0)
    if default_timeout is not None:
        if "TIMEOUT" in raw and raw["TIMEOUT"] != default_timeout:
            raise ImproperlyConfigured(
                f"CACHEDEPS['TIMEOUT'] is {raw['TIMEOUT']!r} but CACHEDEPS['MODELS']['*']['timeout'] is "
                f"{default_timeout!r}; give the default timeout in one place"
            )
        timeout = default_timeout
    enabled = raw.get("ENABLED", True)
    if not isinstance(enabled, bool):
        raise ImproperlyConfigured(f"CACHEDEPS['ENABLED'] must be True or False, got {enabled!r}")
    capture = raw.get("CAPTURE", False)
    if not isinstance(capture, bool):
        raise ImproperlyConfigured(f"CACHEDEPS['CAPTURE'] must be True or False, got {capture!r}")
    shared_polls = raw.get("SHARED_POLLS", False)
    if not isinstance(shared_polls, bool):
        raise ImproperlyConfigured(f"CACHEDEPS['SHARED_POLLS'] must be True or False, got {shared_polls!r}")
    try:
        verifier = Verifier(raw.get("VERIFY", False), "CACHEDEPS['VERIFY']")
    except ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    metrics = raw.get("METRICS", [])
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)) or not all(
        m in METRICS_EXPORTERS for m in metrics
    ):
        raise ImproperlyConfigured(
            f"CACHEDEPS['METRICS'] must be a list of exporters among {', '.join(map(repr, METRICS_EXPORTERS))}, "
            f"got {metrics!r}"
        )
    return CachedepsSettings(
        metrics=tuple(dict.fromkeys(metrics)),
        verifier=verifier,
        views=_parse_views(raw.get("VIEWS", {})),
        cache=cache,
        models=models,
        exclude=exclude,
        timeout=timeout,
        model_timeouts=timeouts,
        max_delta=_positive_int("MAX_DELTA", raw.get("MAX_DELTA", 10_000), 1),
        feed_keep=_positive_int("FEED_KEEP", raw.get("FEED_KEEP", 100_000), 0),
        enabled=enabled,
        unit_free_commands=_command_names(raw.get("UNIT_FREE_COMMANDS", [])),
        capture=capture,
        shared_polls=shared_polls,
    )


_lock = threading.Lock()
_settings: CachedepsSettings | None = None
_tables: frozenset[str] | None = None
_views: dict[str, tuple[str, ...]] = {}
_unmanaged: tuple[str, ...] = ()
_opaque: frozenset[str] = frozenset()
_table_timeouts: dict[str, int] = {}


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
    global _tables, _views, _unmanaged, _opaque, _table_timeouts
    current = _tables
    if current is None:
        from django.apps import apps

        conf = get_settings()
        tables: set[str] = set()
        views: dict[str, tuple[str, ...]] = {}
        unmanaged: list[str] = []
        opaque: set[str] = set()
        timeouts: dict[str, int] = {}
        for model in apps.get_models(include_auto_created=True):
            opts = model._meta
            if opts.db_table in _NEVER_CACHED_TABLES:
                continue  # cachedeps's own tables (the feed is unmanaged, but no view)
            if opts.auto_created:
                ends = [f.related_model._meta.label_lower for f in opts.fields if f.is_relation]
                ok = all(conf.model_is_cached(label) for label in ends)
                labels = ends
            else:
                ok = conf.model_is_cached(opts.label_lower)
                # a proxy's or a child's options also bound the tables it reads through
                labels = [opts.label_lower]
            for label in labels:
                limit = conf.model_timeouts.get(label)
                if limit is not None:
                    known = timeouts.get(opts.db_table)
                    timeouts[opts.db_table] = limit if known is None else _shorter(known, limit)
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
            _table_timeouts = timeouts
            _tables = current
    return current


def _shorter(a: int, b: int) -> int:
    """Return the shorter of two timeouts (0: no limit)."""
    if not a or not b:
        return a or b
    return min(a, b)


def _tables_of(keys: Any) -> set[str]:
    from cachedeps.keys import table_of

    return {table_of(k) for k in keys if k and not k.startswith("@")}


def read_timeout(keys: Any) -> float | None:
    """Return the timeout of an ORM read that depends on ``keys`` (``None``: no limit).

    The shortest of its tables' models' timeouts (``CACHEDEPS["MODELS"]`` dict form), a
    table without one counting as ``CACHEDEPS["TIMEOUT"]``; 0 means no limit.
    """
    conf = get_settings()
    cached_tables()
    limits = _table_timeouts
    if not limits:
        return conf.timeout or None
    out: int | None = None
    for table in _tables_of(keys):
        t = limits.get(table, conf.timeout)
        out = t if out is None else _shorter(out, t)
    if out is None:
        out = conf.timeout
    return out or None


def capped_timeout(timeout: float | None, keys: Any) -> float | None:
    """Return ``timeout`` of a page or fragment (``None``: ``CACHEDEPS["TIMEOUT"]``), shortened
    to the per-model timeouts of the tables its ``keys`` name (``None``: no limit)."""
    conf = get_settings()
    base: float = conf.timeout if timeout is None else timeout
    cached_tables()
    if _table_timeouts:
        for table in _tables_of(keys):
            limit = _table_timeouts.get(table)
            if limit:
                base = limit if not base else min(base, limit)
    return base or None


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
    global _settings, _tables, _table_timeouts
    setting = kwargs.get("setting")
    if setting not in (None, "CACHEDEPS", "INSTALLED_APPS"):
        return
    with _lock:
        _settings = None
        _tables = None
        _table_timeouts = {}
