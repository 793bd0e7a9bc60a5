"""The Redis/Valkey store: the memcache command set, native dependency trees and leases on redis-py.

Example::

    from cachedeps.config import open_store

    store = open_store("redis://127.0.0.1:6379/0?timeout=500ms")
    cluster = open_store("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")

redis-py (not valkey-py): it speaks to Redis and Valkey alike (Valkey keeps the Redis
protocol and commands), it is what Django's own ``RedisCache`` uses, so it is already
installed where users are, and its cluster client routes by slot and follows ``MOVED``.

How the contract maps onto Redis (the item layout, the Lua scripts and the slot arithmetic
live in :mod:`cachedeps.store._redis_wire`):

- An item is one string: a 12-byte header (flags as a big-endian u32, then the CAS id as a
  u64) followed by the value. A hit is one ``GET`` (one round trip); ``get_many`` is one
  ``MGET`` per node.
- CAS ids are random 63-bit numbers drawn by the writer (a collision is a 2**-63 event), so
  no shared counter is needed and a CAS script touches exactly one key (cluster-safe).
  ``cas``, ``append``, ``prepend`` are Lua scripts on that one key, atomic in the server.
  ``incr``/``decr`` are a ``gets``/``cas`` loop (Lua numbers are doubles: no exact u64).
- Expiry as memcached defines it: ``0`` never, up to 30 days relative seconds (sent in
  milliseconds), beyond that an absolute unix time (``PXAT``), negative or in the past: the
  item is gone.
- Dependency trees: the dependents of a key ``K`` are a set under a key in ``K``'s own slot
  (``\\x01K`` on one server; ``{tag}\\x01K`` on a cluster, ``tag`` a string hashing to
  ``K``'s slot). :meth:`RedisStore.invalidate` is one Lua script that deletes the keys and,
  recursively, their dependents, atomically, popping at most ``purge_batch`` dependents per
  call (``SPOP``); what is left is handed to the next call. On a cluster the script runs
  once per slot per level, each atomic for its slot (the trees are an optimisation: every
  read is validated against the change feed, so a purge split in steps never serves stale).
- Leases: the engine's ``add``-based leases are ``SET NX PX`` here; a purge deletes the
  lease keys linked under what it purges, which voids their fills.
- Faults: a restart, ``FLUSHALL`` and ``allkeys-lru`` evictions lose items and sets (misses,
  lost early purges); an unreachable server raises
  :class:`~cachedeps.errors.BackendUnavailable` naming its address, which the engine turns
  into a miss.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NoReturn

from ..api import Item
from ..errors import (
    BackendError,
    BackendUnavailable,
    CachedepsError,
    ConfigurationError,
    NonNumericValue,
    ValueTooLarge,
)
from ..keys import check_key
from ._prefix import PrefixTable
from ._redis_wire import (
    CAS,
    CONCAT,
    HEADER,
    LINK,
    PURGE,
    PURGE_SLOT,
    check_flags,
    expiry,
    new_cas,
    pack,
    slot,
    slot_tags,
    unpack,
)

if TYPE_CHECKING:
    from ..config import RedisConfig

__all__ = ["RedisStore", "REDIS_MAX_VALUE"]

logger = logging.getLogger("cachedeps.store")

#: Redis' largest string (proto-max-bulk-len), less the item header
REDIS_MAX_VALUE = 512 * 2**20 - 12
_MAX_U64 = 2**64 - 1
_MAX_ARGS = 1000  # children per link call: Lua's unpack has a stack limit

_BOUND = frozenset(("_client", "_cas_script", "_concat_script", "_link_script", "_purge_script"))


class RedisStore:
    """The :class:`~cachedeps.api.Store` and :class:`~cachedeps.api.DependencyStore` contracts on Redis.

    Open it with :func:`cachedeps.config.open_store` (``redis://``, ``rediss://``,
    ``unix://``, ``redis+cluster://``) or :meth:`from_config`.

    Args:
        client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` (bytes replies).
        name: the URL shown in logs and errors (without a password).
        address: where the server is, for error messages.
        item_max: the largest value accepted, in bytes (memcached's default: 1 MiB).
        purge_batch: dependents popped per purge script call (the bounded fan-out).
        max_dependents: the most dependents one key's set keeps (0: no bound); past it,
            links are dropped at random, as the embedded store drops its oldest: a purge
            then misses those entries and readers' validation refuses them instead.
    """

    def __init__(self, client: Any, name: str, address: str, *, item_max: int = 2**20,
                 purge_batch: int = 10_000, max_dependents: int = 1000, connect: Any = None) -> None:
        import redis.exceptions

        self._errors = redis.exceptions
        self.name = name
        self.address = address
        self.item_max = item_max
        self.purge_batch = purge_batch
        self.max_dependents = max_dependents
        self._prefixes = PrefixTable()
        self._connect_lock = threading.Lock()
        if client is None:
            # A cluster unreachable when opened: connect on first use (its calls raise
            # BackendUnavailable until then, which the engine serves as misses).
            self.cluster = True
            self._connect = connect
        else:
            self._bind(client)

    def _bind(self, client: Any) -> None:
        self.cluster = type(client).__name__ == "RedisCluster"
        self._cas_script = client.register_script(CAS)
        self._concat_script = client.register_script(CONCAT)
        self._link_script = client.register_script(LINK)
        self._purge_script = client.register_script(PURGE_SLOT if self.cluster else PURGE)
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name in _BOUND and "_connect" in self.__dict__:
            with self.__dict__["_connect_lock"]:
                if "_client" not in self.__dict__:
                    self._bind(self.__dict__["_connect"]())
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_config(cls, config: RedisConfig) -> RedisStore:
        """Open a store from a :class:`~cachedeps.config.RedisConfig`.

        Raises:
            ConfigurationError: redis-py is missing, or a cluster URL names a server that
                is not in cluster mode.
            BackendUnavailable: a cluster URL whose seed nodes cannot be reached.
        """
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ConfigurationError(
                "redis:// stores need redis-py; install it with pip install 'cachedeps[redis]'"
            ) from exc
        common: dict[str, Any] = dict(
            socket_timeout=config.timeout, socket_connect_timeout=config.connect_timeout,
            retry=Retry(NoBackoff(), 0), username=config.username, password=config.password,
        )
        if config.tls:
            common.update(ssl=True, **{k: v for k, v in config.ssl_options})
        if config.cluster:
            from redis.cluster import ClusterNode, RedisCluster

            address = ",".join(_address(h, p) for h, p in config.servers)

            def connect() -> Any:
                try:
                    return RedisCluster(
                        startup_nodes=[ClusterNode(h, p) for h, p in config.servers],
                        max_connections=config.pool_size, **common,
                    )
                except redis.exceptions.RedisClusterException as exc:
                    if "not enabled" in str(exc).lower() or "cluster mode" in str(exc).lower():
                        raise ConfigurationError(
                            f"{config.url_for_errors} names a server that is not in cluster mode ({exc}); "
                            "use redis://host:port for a single server"
                        ) from exc
                    raise BackendUnavailable(f"Cannot form a Redis Cluster from {address}: {exc}",
                                             address) from exc
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    raise BackendUnavailable(f"Cannot reach Redis Cluster at {address}: {exc}", address) from exc

            try:
                client = connect()
            except BackendUnavailable:
                client = None
            return cls(client, config.url_for_errors, address, item_max=config.item_max,
                       purge_batch=config.purge_batch, max_dependents=config.max_dependents,
                       connect=connect)
        if config.unix_path:
            pool_kwargs: dict[str, Any] = dict(connection_class=redis.UnixDomainSocketConnection,
                                               path=config.unix_path)
            common.pop("socket_connect_timeout")
            address = config.unix_path
        else:
            host, port = config.servers[0]
            pool_kwargs = dict(host=host, port=port)
            if config.tls:
                pool_kwargs["connection_class"] = redis.SSLConnection
                common.pop("ssl")
            address = _address(host, port)
        pool = redis.BlockingConnectionPool(max_connections=config.pool_size, timeout=config.timeout,
                                            db=config.db, **pool_kwargs, **common)
        single = redis.Redis(connection_pool=pool)
        return cls(single, config.url_for_errors, address, item_max=config.item_max,
                   purge_batch=config.purge_batch, max_dependents=config.max_dependents)

    def __repr__(self) -> str:
        return f"<RedisStore {self.name}>"

    # -- the boundary --------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> NoReturn:
        errors = self._errors
        where = self.address
        if isinstance(exc, CachedepsError):
            raise exc
        if isinstance(exc, errors.ConnectionError) and "No connection available" in str(exc):
            raise BackendUnavailable(
                f"No free connection to Redis at {where}: {exc}; raise pool_size in the store URL "
                "or lower the number of threads using it at once", where) from exc
        if isinstance(exc, (errors.ConnectionError, errors.TimeoutError, errors.ClusterDownError,
                            errors.SlotNotCoveredError, errors.MaxConnectionsError)):
            raise BackendUnavailable(f"Cannot reach Redis at {where}: {exc or type(exc).__name__}", where) from exc
        if isinstance(exc, errors.NoScriptError):
            raise BackendError(f"Redis at {where} refused a cachedeps Lua script (NOSCRIPT): {exc}; "
                               "scripting must be enabled for the cachedeps store") from exc
        if isinstance(exc, errors.ReadOnlyError) or "READONLY" in str(exc):
            raise BackendError(f"Redis at {where} is a read-only replica ({exc}); point the store URL "
                               "at the primary") from exc
        if isinstance(exc, OSError):
            raise BackendUnavailable(f"Cannot reach Redis at {where}: {exc}", where) from exc
        if isinstance(exc, errors.ResponseError):
            text = str(exc)
            if isinstance(exc, (errors.AskError, errors.TryAgainError)) or "CROSSSLOT" in text:
                raise ConfigurationError(f"Redis at {where} is a cluster node ({text}); "
                                         "open it with redis+cluster://host:port,...") from exc
            if text.startswith("OOM"):
                raise BackendError(f"Redis at {where} is out of memory and evicts nothing ({text}); "
                                   "set maxmemory-policy allkeys-lru for a cache") from exc
            if "script" in text.lower() or "NOSCRIPT" in text:
                raise BackendError(f"Redis at {where} refused a cachedeps Lua script: {text}") from exc
            raise BackendError(f"Redis at {where} failed: {text}") from exc
        if isinstance(exc, errors.RedisError):
            raise BackendError(f"Redis at {where} failed: {exc}") from exc
        raise exc

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self._translate(exc)

    def _check_size(self, key: str, size: int) -> None:
        if size > self.item_max:
            raise ValueTooLarge(
                f"Value for {key!r} is {size} bytes, over this store's item_max of {self.item_max} "
                f"({self.name}); raise item_max in the store URL (at most {REDIS_MAX_VALUE}) or store less"
            )

    # -- reads ---------------------------------------------------------------------------

    def get_item(self, key: str) -> Item | None:
        """Return the item under ``key`` (value, flags, CAS id), or ``None``: one ``GET``."""
        return self._fetch(key)

    def _fetch(self, key: str) -> Item | None:
        check_key(key)
        raw = self._call(self._client.get, key)
        rec = self._prefixes.record(key)
        if raw is None:
            rec[1] += 1
            return None
        rec[0] += 1
        return unpack(raw, key)

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None``."""
        item = self._fetch(key)
        return None if item is None else item.value

    def gets(self, key: str) -> tuple[bytes, int] | None:
        """Return ``(value, cas_id)`` or ``None``."""
        item = self._fetch(key)
        return None if item is None else (item.value, item.cas)

    def get_items(self, keys: Iterable[str]) -> dict[str, Item]:
        """Return ``{key: Item}`` for the keys that are present: one ``MGET`` (per node)."""
        return self._fetch_many(keys)

    def _fetch_many(self, keys: Iterable[str]) -> dict[str, Item]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        for key in keys:
            check_key(key)
        fn = self._client.mget_nonatomic if self.cluster else self._client.mget
        raws = self._call(fn, keys)
        out = {}
        for key, raw in zip(keys, raws):
            rec = self._prefixes.record(key)
            if raw is None:
                rec[1] += 1
            else:
                rec[0] += 1
                out[key] = unpack(raw, key)
        return out

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys that are present."""
        return {k: item.value for k, item in self._fetch_many(keys).items()}

    def gets_many(self, keys: Iterable[str]) -> dict[str, tuple[bytes, int]]:
        """Return ``{key: (value, cas_id)}`` for the keys that are present."""
        return {k: (item.value, item.cas) for k, item in self._fetch_many(keys).items()}

    # -- writes --------------------------------------------------------------------------

    def _store(self, key: str, value: bytes, expire: float, flags: int, condition: str) -> bool:
        check_key(key)
        value = bytes(value)
        self._check_size(key, len(value))
        mode, ms = expiry(expire)
        blob = pack(value, check_flags(flags), new_cas())
        client = self._client
        if mode == "del":  # stored already expired: the key holds nothing afterwards
            if condition == "nx":
                return not self._call(client.exists, key)
            existed = bool(self._call(client.delete, key))
            return existed if condition == "xx" else True
        kwargs: dict[str, Any] = {}
        if mode == "px":
            kwargs["px"] = ms
        elif mode == "pxat":
            kwargs["pxat"] = ms
        if condition:
            kwargs[condition] = True
        return bool(self._call(client.set, key, blob, **kwargs))

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        """Store ``value`` under ``key``.

        Raises:
            ValueTooLarge: the value is over ``item_max``; nothing is stored (never truncated).
        """
        self._store(key, value, expire, flags, "")

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        """Store every pair in one pipeline; return the keys that were not stored."""
        values = {k: bytes(v) for k, v in mapping.items()}
        if not values:
            return []
        for key, value in values.items():
            check_key(key)
            self._check_size(key, len(value))
        mode, ms = expiry(expire)
        check_flags(flags)
        if mode == "del":
            self.delete_many(values)
            return []
        kwargs = {"px": ms} if mode == "px" else {"pxat": ms} if mode == "pxat" else {}
        pipe = self._client.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(key, pack(value, flags, new_cas()), **kwargs)
        results = self._call(pipe.execute)
        return [k for k, ok in zip(values, results) if not ok]

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds nothing (``SET NX``); return whether it was stored."""
        return self._store(key, value, expire, flags, "nx")

    def replace(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds something (``SET XX``); return whether it was stored."""
        return self._store(key, value, expire, flags, "xx")

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        """Store only if the CAS id is still ``cas``: True stored, False changed, None missing."""
        check_key(key)
        value = bytes(value)
        self._check_size(key, len(value))
        if not isinstance(cas, int) or not 0 <= cas <= _MAX_U64:
            return False if self._call(self._client.exists, key) else None
        mode, ms = expiry(expire)
        return self._cas_raw(key, cas, pack(value, check_flags(flags), new_cas()), mode, ms)

    def _cas_raw(self, key: str, cas: int, blob: bytes, mode: str, ms: int) -> bool | None:
        answer = self._call(self._cas_script, keys=[key], args=[cas.to_bytes(8, "big"), blob, mode, ms])
        return None if answer == -1 else bool(answer)

    def _concat(self, key: str, value: bytes, where: str) -> bool:
        check_key(key)
        value = bytes(value)
        answer = self._call(self._concat_script, keys=[key],
                            args=[value, new_cas().to_bytes(8, "big"), where, self.item_max + HEADER])
        if answer == -1:
            raise ValueTooLarge(f"{'Appending' if where == 'a' else 'Prepending'} {len(value)} bytes to "
                                f"{key!r} would pass this store's item_max of {self.item_max} ({self.name})")
        return bool(answer)

    def append(self, key: str, value: bytes) -> bool:
        """Add bytes after an existing value (flags and expiry kept); False if missing."""
        return self._concat(key, value, "a")

    def prepend(self, key: str, value: bytes) -> bool:
        """Add bytes before an existing value (flags and expiry kept); False if missing."""
        return self._concat(key, value, "p")

    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        check_key(key)
        return bool(self._call(self._client.delete, key))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key in ``keys`` (one ``DEL``, one per slot on a cluster)."""
        keys = list(dict.fromkeys(keys))
        for key in keys:
            check_key(key)
        if keys:
            self._call(self._client.delete, *keys)

    def incr(self, key: str, delta: int = 1) -> int | None:
        """Add to a decimal counter (64-bit unsigned, wrapping); ``None`` if missing."""
        return self._delta("incr", key, delta)

    def decr(self, key: str, delta: int = 1) -> int | None:
        """Subtract from a decimal counter, stopping at 0; ``None`` if missing."""
        return self._delta("decr", key, delta)

    def _delta(self, name: str, key: str, delta: int) -> int | None:
        if not isinstance(delta, int) or not 0 <= delta <= _MAX_U64:
            raise NonNumericValue(f"{name} delta must be an int from 0 to 2**64-1, got {delta!r}")
        while True:
            item = self._fetch(key)
            if item is None:
                return None
            text = item.value.strip()
            if not text.isdigit() or int(text) > _MAX_U64:
                raise NonNumericValue(
                    f"Redis store {self.name}: cannot {name} {key!r}, its value is not a decimal "
                    "counter (incr/decr need a decimal counter)"
                )
            number = int(text)
            number = (number + delta) & _MAX_U64 if name == "incr" else max(number - delta, 0)
            blob = pack(b"%d" % number, item.flags, new_cas())
            stored = self._cas_raw(key, item.cas, blob, "keep", 0)
            if stored is None:
                return None
            if stored:
                return number

    def touch(self, key: str, expire: float = 0) -> bool:
        """Change an item's expiry; return whether it exists."""
        check_key(key)
        mode, ms = expiry(expire)
        client = self._client
        if mode == "del":
            return bool(self._call(client.delete, key))
        if mode == "px":
            return bool(self._call(client.pexpire, key, ms))
        if mode == "pxat":
            return bool(self._call(client.pexpireat, key, ms))
        pipe = client.pipeline(transaction=False)
        pipe.exists(key)
        pipe.persist(key)
        return bool(self._call(pipe.execute)[0])

    def flush_all(self, delay: float = 0) -> None:
        """Drop every item of this database (on a cluster: of every primary).

        With ``delay``, every key now present expires within ``delay`` seconds (``PEXPIRE
        LT``); unlike memcached, keys written after the call are kept.
        """
        if delay <= 0:
            self._call(self._client.flushdb)
            return
        ms = max(1, int(delay * 1000))
        for node_client in self._node_clients():
            cursor = 0
            while True:
                cursor, keys = self._call(node_client.scan, cursor, count=1000)
                if keys:
                    pipe = node_client.pipeline(transaction=False)
                    for key in keys:
                        pipe.pexpire(key, ms, lt=True)
                    self._call(pipe.execute)
                if not cursor:
                    break

    def _node_clients(self) -> list[Any]:
        if not self.cluster:
            return [self._client]
        return [self._client.get_redis_connection(n) for n in self._client.get_primaries()]

    # -- dependency trees ----------------------------------------------------------------

    def _set_key(self, key: str) -> str:
        if not self.cluster:
            return "\x01" + key
        return "{" + slot_tags()[slot(key.encode("utf-8"))] + "}\x01" + key

    def link(self, parent: str, children: Iterable[str], expire: float = 0) -> None:
        """Record that each of ``children`` depends on ``parent``; the link lives as long as
        its longest-lived dependent (``expire`` as memcached defines it)."""
        check_key(parent)
        children = list(children)
        for child in children:
            check_key(child)
        mode, ms = expiry(expire)
        if mode == "del" or not children:
            return
        if mode == "pxat":
            ms = max(1, ms - int(time.time() * 1000))
        set_key = self._set_key(parent)
        for i in range(0, len(children), _MAX_ARGS):
            self._call(self._link_script, keys=[set_key],
                       args=[ms, self.max_dependents, *children[i : i + _MAX_ARGS]])

    def link_many(self, parents: Iterable[str], children: Iterable[str], expire: float = 0) -> None:
        """Link ``children`` under every one of ``parents``: one pipelined round trip on one
        server (one call per parent on a cluster)."""
        parents = list(dict.fromkeys(parents))
        children = list(children)
        if self.cluster or len(children) > _MAX_ARGS:
            for parent in parents:
                self.link(parent, children, expire)
            return
        for key in (*parents, *children):
            check_key(key)
        mode, ms = expiry(expire)
        if mode == "del" or not children or not parents:
            return
        if mode == "pxat":
            ms = max(1, ms - int(time.time() * 1000))
        sha = self._link_script.sha
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for parent in parents:
                pipe.evalsha(sha, 1, self._set_key(parent), ms, self.max_dependents, *children)
            try:
                pipe.execute()
                return
            except self._errors.NoScriptError as exc:  # a restarted server: load it, once
                if attempt == 2:
                    self._translate(exc)
                self._call(self._client.script_load, LINK)
            except Exception as exc:
                self._translate(exc)

    def invalidate(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` and, recursively, their dependents; return how many items went.

        One server: one Lua script, atomic, popping at most ``purge_batch`` dependents;
        larger trees take further calls. A cluster: one script per slot and level.
        """
        frontier = list(dict.fromkeys(keys))
        for key in frontier:
            check_key(key)
        deleted = 0
        if not self.cluster:
            while frontier:
                count, frontier = self._call(self._purge_script, keys=frontier, args=[self.purge_batch])
                deleted += int(count)
                frontier = [k.decode("utf-8") if isinstance(k, bytes) else k for k in frontier]
            return deleted
        seen: set[str] = set()
        while frontier:
            by_slot: dict[int, list[str]] = {}
            for key in frontier:
                by_slot.setdefault(slot(key.encode("utf-8")), []).append(key)
            frontier = []
            for slot_keys in by_slot.values():
                pairs: list[str] = []
                for key in slot_keys:
                    pairs += [key, self._set_key(key)]
                count, kids, left = self._call(self._purge_script, keys=pairs, args=[self.purge_batch])
                deleted += int(count)
                for raw in kids:
                    kid = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                    if kid not in seen:
                        seen.add(kid)
                        frontier.append(kid)
                frontier.extend(k.decode("utf-8") if isinstance(k, bytes) else k for k in left)
        return deleted

    def dependents(self, parent: str) -> list[str]:
        """Return the keys currently recorded as depending on ``parent``."""
        check_key(parent)
        members = self._call(self._client.smembers, self._set_key(parent))
        return sorted(m.decode("utf-8") for m in members)

    # -- introspection -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return memcached-named figures from ``INFO`` (summed over a cluster's primaries);
        ``servers`` holds each server's, ``redis`` the first server's raw ``INFO``."""
        per_server: dict[str, dict[str, Any]] = {}
        raw_first: dict[str, Any] = {}
        for node_client in self._node_clients():
            info = self._call(node_client.info, "all")
            if not raw_first:
                raw_first = info
            kwargs = node_client.connection_pool.connection_kwargs
            where = kwargs.get("path") or _address(kwargs.get("host", "?"), kwargs.get("port", 0))
            db = kwargs.get("db", 0)
            keyspace = info.get(f"db{db}", {})

            def calls(*names: str, info: dict = info) -> int:
                return sum(int(info.get(f"cmdstat_{n}", {}).get("calls", 0)) for n in names)

            per_server[where] = {
                "pid": info.get("process_id"),
                "uptime": info.get("uptime_in_seconds"),
                "version": info.get("redis_version"),
                "curr_items": int(keyspace.get("keys", 0)) if isinstance(keyspace, dict) else 0,
                "total_items": calls("set", "evalsha", "eval"),
                "bytes": int(info.get("used_memory", 0)),
                "limit_maxbytes": int(info.get("maxmemory", 0)),
                "get_hits": int(info.get("keyspace_hits", 0)),
                "get_misses": int(info.get("keyspace_misses", 0)),
                "evictions": int(info.get("evicted_keys", 0)),
                "expired_unfetched": int(info.get("expired_keys", 0)),
                "cmd_get": calls("get", "mget"),
                "cmd_set": calls("set"),
                "curr_connections": int(info.get("connected_clients", 0)),
                "maxmemory_policy": info.get("maxmemory_policy"),
            }
        total: dict[str, Any] = {}
        for figures in per_server.values():
            for name, value in figures.items():
                if isinstance(value, int) and name not in ("pid", "uptime"):
                    total[name] = total.get(name, 0) + value
                else:
                    total.setdefault(name, value)
        total["servers"] = per_server
        total["redis"] = raw_first
        return total

    def prefix_stats(self, max_keys: int = 100_000) -> dict[str, dict[str, int]]:
        """Return ``{prefix: {items, bytes, hits, misses, evictions}}``.

        Hits and misses are this process's reads; items and bytes come from a ``SCAN``
        with ``MEMORY USAGE`` of at most ``max_keys`` keys; Redis does not say which
        prefix its evictions hit, so ``evictions`` is 0.
        """
        usage: dict[str, list[int]] = {}
        seen = 0
        for node_client in self._node_clients():
            cursor = 0
            while seen < max_keys:
                cursor, keys = self._call(node_client.scan, cursor, count=1000)
                if keys:
                    pipe = node_client.pipeline(transaction=False)
                    for key in keys:
                        pipe.memory_usage(key)
                    sizes = self._call(pipe.execute)
                    for raw, size in zip(keys, sizes):
                        key = raw.decode("utf-8", "replace")
                        prefix = "(dependencies)" if "\x01" in key else self._prefixes.name_of(key)
                        rec = usage.setdefault(prefix, [0, 0])
                        rec[0] += 1
                        rec[1] += int(size or 0)
                    seen += len(keys)
                if not cursor:
                    break
        return self._prefixes.snapshot(usage)

    def close(self) -> None:
        """Close every connection."""
        if "_client" not in self.__dict__:
            return
        try:
            self._client.close()
        except Exception as exc:  # closing a broken pool must not fail the caller
            logger.debug("closing %s: %s", self.name, exc)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
