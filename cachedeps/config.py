"""Store configuration: one URL parsed once into frozen values, and stores opened by URL.

URLs::

    embedded://                          the store named "default", 64 MiB
    embedded://sessions?max_memory=16MB&item_max=2MiB&low_water=0.7&high_water=0.9
    memcache://127.0.0.1:11211           memcached or `cachedeps serve`
    memcache://h1:11211,h2:11211?timeout=500ms&connect_timeout=1s&pool_size=8
    redis://[user:password@]127.0.0.1:6379/0?timeout=500ms&pool_size=32
    rediss://cache.example.com:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required
    unix:///run/redis/redis.sock?db=0
    redis+cluster://10.0.0.1:7000,10.0.0.2:7001?timeout=1s

Sizes are a number with an optional unit: ``B``, ``k``/``K``/``KB``/``KiB`` (1024),
``M``/``MB``/``MiB``, ``G``/``GB``/``GiB`` — every unit is binary, as in memcached's ``-m``.
Durations are seconds (``0.5``) or a number with ``ms``, ``s``, ``m`` (minutes) or ``h``.

Opening the same ``embedded://NAME`` twice in one process gives the same store object;
opening an existing name with other settings raises :class:`ConfigurationError`.
Third-party stores register a class under the entry-point group ``cachedeps.stores``; the
class is given the URL: ``Class.from_url(url)``.
"""

from __future__ import annotations

import importlib
import re
import threading
import weakref
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from .api import Store
from .errors import ConfigurationError

__all__ = [
    "EmbeddedConfig",
    "MemcacheConfig",
    "RedisConfig",
    "PluginConfig",
    "StoreConfig",
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "parse_url",
    "parse_size",
    "parse_duration",
    "open_store",
    "unreachable_servers",
]

ENTRY_POINT_GROUP = "cachedeps.stores"

#: scheme -> "module:Class" of the built-in stores, loaded on first use
BACKENDS = {
    "embedded": "cachedeps.store.embedded:EmbeddedStore",
    "memcache": "cachedeps.store.remote:RemoteStore",
    "memcached": "cachedeps.store.remote:RemoteStore",
    "redis": "cachedeps.store.redis_store:RedisStore",
    "rediss": "cachedeps.store.redis_store:RedisStore",
    "unix": "cachedeps.store.redis_store:RedisStore",
    "redis+cluster": "cachedeps.store.redis_store:RedisStore",
    "rediss+cluster": "cachedeps.store.redis_store:RedisStore",
}

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kb": 2**10, "kib": 2**10,
    "m": 2**20, "mb": 2**20, "mib": 2**20,
    "g": 2**30, "gb": 2**30, "gib": 2**30,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class EmbeddedConfig:
    """Settings of an :class:`~cachedeps.store.embedded.EmbeddedStore`."""

    name: str = "default"
    max_memory: int = 64 * 2**20
    item_max: int = 2**20
    low_water: float = 0.80
    high_water: float = 0.90
    sweep_interval: float = 1.0
    max_dependents: int = 1000
    max_dependency_keys: int = 100_000

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigurationError(f"Embedded store name {self.name!r} must be non-empty without '/'")
        if not 0 < self.low_water <= self.high_water <= 1:
            raise ConfigurationError(
                f"Water marks must satisfy 0 < low_water <= high_water <= 1 (fractions of "
                f"max_memory), got low_water={self.low_water!r}, high_water={self.high_water!r}"
            )
        for name in ("max_memory", "item_max", "max_dependents", "max_dependency_keys"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.sweep_interval <= 0:
            raise ConfigurationError(f"sweep_interval must be positive, got {self.sweep_interval!r}")


@dataclass(frozen=True)
class MemcacheConfig:
    """Settings of a :class:`~cachedeps.store.remote.RemoteStore`.

    ``servers`` holds ``(host, port)`` pairs; one server uses a pooled client, several a
    consistent-hashing client. A server that fails is retried ``retry_attempts`` times
    ``retry_timeout`` seconds apart, then left out for ``dead_timeout`` seconds.
    """

    servers: tuple[tuple[str, int], ...]
    timeout: float = 1.0
    connect_timeout: float = 1.0
    pool_size: int = 16
    retry_attempts: int = 2
    retry_timeout: float = 1.0
    dead_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConfigurationError("A memcache URL needs at least one host:port, e.g. memcache://127.0.0.1:11211")
        for name in ("timeout", "connect_timeout", "retry_timeout", "dead_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.pool_size <= 0 or self.retry_attempts < 0:
            raise ConfigurationError(
                f"pool_size must be positive and retry_attempts not negative, got "
                f"pool_size={self.pool_size!r}, retry_attempts={self.retry_attempts!r}"
            )


@dataclass(frozen=True)
class RedisConfig:
    """Settings of a :class:`~cachedeps.store.redis_store.RedisStore` (Redis or Valkey).

    ``servers`` holds one ``(host, port)`` pair, or a cluster's seed nodes when ``cluster``;
    ``unix_path`` replaces them for ``unix://``. ``item_max`` is the largest value accepted
    (memcached's default, 1 MiB; Redis allows up to 512 MiB); ``purge_batch`` bounds the
    dependents one purge script call pops; ``max_dependents`` the dependents one key's set
    keeps (0: no bound). ``ssl_options`` are redis-py's ``ssl_*``
    arguments, for ``rediss://``.
    """

    servers: tuple[tuple[str, int], ...] = ()
    unix_path: str = ""
    cluster: bool = False
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 1.0
    connect_timeout: float = 1.0
    pool_size: int = 16
    item_max: int = 2**20
    purge_batch: int = 10_000
    max_dependents: int = 1000
    ssl_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.servers and not self.unix_path:
            raise ConfigurationError("A redis URL needs host:port, e.g. redis://127.0.0.1:6379/0")
        for name in ("timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("pool_size", "item_max", "purge_batch"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_dependents < 0:
            raise ConfigurationError(f"max_dependents must be 0 (no bound) or more, got {self.max_dependents!r}")
        if self.item_max > 512 * 2**20 - 12:
            raise ConfigurationError(f"item_max {self.item_max} is over Redis' 512 MiB string limit")
        if self.cluster and self.db:
            raise ConfigurationError(f"Redis Cluster has only database 0, got db={self.db}")

    @property
    def url_for_errors(self) -> str:
        """The URL without its password, for logs and errors."""
        if self.unix_path:
            return f"unix://{self.unix_path}?db={self.db}"
        scheme = ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.servers)
        return f"{scheme}://{hosts}" + ("" if self.cluster else f"/{self.db}")


@dataclass(frozen=True)
class PluginConfig:
    """A URL for a store registered under the ``cachedeps.stores`` entry-point group."""

    scheme: str
    url: str


StoreConfig = Union[EmbeddedConfig, MemcacheConfig, RedisConfig, PluginConfig]


def parse_size(text: str, option: str = "size") -> int:
    """Parse ``64MB``, ``1MiB``, ``512k`` or ``1000`` into bytes.

    Raises:
        ConfigurationError: the text is not a size.
    """
    match = _NUMBER.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigurationError(
            f"Bad {option} {text!r}: expected a number with an optional unit "
            "B, k/KB/KiB, M/MB/MiB or G/GB/GiB (binary), e.g. 64MB or 512k"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str, option: str = "duration") -> float:
    """Parse ``0.5``, ``500ms``, ``2s``, ``1m`` or ``1h`` into seconds.

    Raises:
        ConfigurationError: the text is not a duration.
    """
    match = _NUMBER.match(str(text))
    unit = match.group(2) if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ConfigurationError(
            f"Bad {option} {text!r}: expected seconds (0.5) or a number with ms, s, m or h, e.g. 500ms"
        )
    return float(match.group(1)) * _DURATION_UNITS[unit]


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ConfigurationError(f"Bad {option} {text!r}: expected a fraction of max_memory in (0, 1], e.g. 0.8")
    return value


def _count(text: str, option: str) -> int:
    if not str(text).isdigit():
        raise ConfigurationError(f"Bad {option} {text!r}: expected a whole number, e.g. 8")
    return int(text)


_EMBEDDED_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "max_memory": parse_size,
    "item_max": parse_size,
    "low_water": _fraction,
    "high_water": _fraction,
    "sweep_interval": parse_duration,
    "max_dependents": _count,
    "max_dependency_keys": _count,
}
_MEMCACHE_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "timeout": parse_duration,
    "connect_timeout": parse_duration,
    "pool_size": _count,
    "retry_attempts": _count,
    "retry_timeout": parse_duration,
    "dead_timeout": parse_duration,
}


def _options(query: str, accepted: dict[str, Callable[[str, str], Any]], url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, text in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        parse = accepted.get(name)
        if parse is None:
            raise ConfigurationError(
                f"Unknown option {name!r} in {url!r}; accepted: {', '.join(sorted(accepted))}"
            )
        out[name] = parse(text, name)
    return out


def _bool(text: str, option: str) -> bool:
    value = str(text).lower()
    if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigurationError(f"Bad {option} {text!r}: expected true or false")
    return value in ("1", "true", "yes", "on")


def _cert_reqs(text: str, option: str) -> str:
    if text not in ("none", "optional", "required"):
        raise ConfigurationError(f"Bad {option} {text!r}: expected none, optional or required")
    return text


def _path(text: str, option: str) -> str:
    if not text:
        raise ConfigurationError(f"Bad {option}: expected a file path")
    return text


_REDIS_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "timeout": parse_duration,
    "connect_timeout": parse_duration,
    "pool_size": _count,
    "item_max": parse_size,
    "purge_batch": _count,
    "max_dependents": _count,
    "db": _count,
}
_REDIS_TLS_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "ssl_cert_reqs": _cert_reqs,
    "ssl_ca_certs": _path,
    "ssl_certfile": _path,
    "ssl_keyfile": _path,
    "ssl_check_hostname": _bool,
}


def _parse_redis(url: str, scheme: str) -> RedisConfig:
    parts = urlsplit(url)
    tls = scheme.startswith("rediss")
    accepted = dict(_REDIS_OPTIONS, **(_REDIS_TLS_OPTIONS if tls else {}))
    options = _options(parts.query, accepted, url)
    ssl_options = tuple((k, options.pop(k)) for k in list(options) if k.startswith("ssl_"))
    common: dict[str, Any] = dict(tls=tls, ssl_options=ssl_options, **options)
    if scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"Bad redis URL {url!r}: expected unix:///path/to/redis.sock?db=0")
        return RedisConfig(unix_path=unquote(parts.path), **common)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        common["username"] = unquote(user) or None
        common["password"] = unquote(password) or None
    servers = []
    for part in filter(None, hosts.split(",")):
        host, sep, port = part.rpartition(":")
        if not sep or (part.startswith("[") and not host.endswith("]")):
            host, port = part, "6379"
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(
                f"Bad server {part!r} in {url!r}: the port must be a number from 1 to 65535; "
                "expected host[:port] (port 6379 when left out; IPv6 as [addr]:port)"
                + (", several separated by commas" if "cluster" in scheme else "")
            )
        servers.append((host, int(port)))
    if not servers:
        raise ConfigurationError(f"Bad redis URL {url!r}: expected {scheme}://host:port")
    cluster = scheme.endswith("+cluster")
    if not cluster and len(servers) > 1:
        raise ConfigurationError(
            f"Bad redis URL {url!r}: several servers need redis+cluster://h1:7000,h2:7001 (Redis Cluster)"
        )
    path = parts.path.strip("/")
    if path:
        if cluster or not path.isdigit() or "db" in options:
            raise ConfigurationError(
                f"Bad redis URL {url!r}: the path must be a database number (redis://host:6379/0)"
                + ("; a cluster has only database 0" if cluster else "")
            )
        common["db"] = int(path)
    return RedisConfig(servers=tuple(servers), cluster=cluster, **common)


def _servers(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    servers = []
    for part in filter(None, netloc.split(",")):
        host, sep, port = part.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(
                f"Bad server {part!r} in {url!r}: expected host:port (IPv6 as [addr]:port), "
                "several separated by commas"
            )
        servers.append((host, int(port)))
    return tuple(servers)


def _known_schemes() -> list[str]:
    return sorted(set(BACKENDS) | {ep.name for ep in _entry_points()})


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def parse_url(url: str) -> StoreConfig:
    """Parse a store URL into its frozen configuration.

    Raises:
        ConfigurationError: the scheme, a server, an option or a value is wrong; the
            message names it and lists what is accepted.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"Bad store URL {url!r}: expected SCHEME://..., e.g. embedded:// or memcache://127.0.0.1:11211"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "embedded":
        name = unquote(parts.netloc or parts.path.strip("/")) or "default"
        return EmbeddedConfig(name=name, **_options(parts.query, _EMBEDDED_OPTIONS, url))
    if scheme in ("memcache", "memcached"):
        if parts.path not in ("", "/"):
            raise ConfigurationError(f"Bad memcache URL {url!r}: unexpected path {parts.path!r}")
        return MemcacheConfig(servers=_servers(parts.netloc, url),
                              **_options(parts.query, _MEMCACHE_OPTIONS, url))
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        return _parse_redis(url, scheme)
    if scheme in {ep.name for ep in _entry_points()}:
        return PluginConfig(scheme=scheme, url=url)
    raise ConfigurationError(
        f"Unknown store scheme {parts.scheme!r} in {url!r}; known schemes: {', '.join(_known_schemes())}"
    )


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


_registry_lock = threading.Lock()
_embedded: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _open_embedded(config: EmbeddedConfig) -> Store:
    with _registry_lock:
        store = _embedded.get(config.name)
        if store is not None and not store._closed:
            if store.config != config:
                raise ConfigurationError(
                    f"Embedded store {config.name!r} is already open with {store.config}; "
                    f"cannot reopen it with {config}. Use another name (embedded://OTHER) or "
                    "the same options"
                )
            return store
        cls = _load(BACKENDS["embedded"])
        store = cls.from_config(config)
        _embedded[config.name] = store
        return store


def open_store(url_or_config: str | StoreConfig, **overrides: Any) -> Store:
    """Open a store from a URL or a configuration.

    ``overrides`` replace fields of the parsed configuration (``max_memory=2**20``).

    Example::

        store = open_store("embedded://?max_memory=64MB")
        remote = open_store("memcache://127.0.0.1:11211", timeout=0.5)

    Raises:
        ConfigurationError: the URL or an override is wrong.
    """
    config = parse_url(url_or_config) if isinstance(url_or_config, str) else url_or_config
    if overrides:
        if isinstance(config, PluginConfig):
            raise ConfigurationError(f"Options for {config.scheme!r} stores go in the URL, not as overrides")
        known = {f.name for f in fields(config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(f"Unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
        config = replace(config, **overrides)
    if isinstance(config, EmbeddedConfig):
        return _open_embedded(config)
    if isinstance(config, MemcacheConfig):
        return _load(BACKENDS["memcache"]).from_config(config)
    if isinstance(config, RedisConfig):
        return _load(BACKENDS["redis"]).from_config(config)
    if isinstance(config, PluginConfig):
        for ep in _entry_points():
            if ep.name == config.scheme:
                return ep.load().from_url(config.url)
        raise ConfigurationError(f"No store registered for scheme {config.scheme!r}")
    raise ConfigurationError(
        f"Expected a store URL or an EmbeddedConfig/MemcacheConfig/RedisConfig, got {type(config).__name__}"
    )


def unreachable_servers(target: Any, timeout: float = 0.5) -> list[str]:
    """Return a message for each ``memcache://`` server that does not accept a TCP connection.

    ``target`` is a store URL, a parsed config, or an open store with ``servers`` (a
    :class:`~cachedeps.store.remote.RemoteStore`); other stores give an empty list. With
    such a server down, every read goes to the database and nothing is cached, which is
    seldom what was meant: adapters log these messages when they are set up.
    """
    import socket

    servers: Any = ()
    if isinstance(target, str):
        try:
            target = parse_url(target)
        except ConfigurationError:
            return []  # reported by whoever opens the store
    if isinstance(target, MemcacheConfig):
        servers = target.servers
    elif type(target).__name__ == "RemoteStore":
        servers = getattr(target, "servers", ())
    found = []
    for host, port in servers:
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as exc:
            found.append(
                f"memcached at {host}:{port} does not accept connections ({exc.strerror or exc}): every "
                f"read goes to the database and nothing is cached; start memcached on {host}:{port} "
                f"(or `cachedeps serve --port {port}`), or fix the host and port in the store URL"
            )
    return found
