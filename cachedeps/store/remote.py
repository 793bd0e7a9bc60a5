"""The remote store: pymemcache to memcached, a pool of them, or ``cachedeps serve``.

Example::

    from cachedeps.config import open_store

    store = open_store("memcache://10.0.0.1:11211,10.0.0.2:11211?timeout=500ms")
    store.set("book:42", b"...", expire=300)

One server gets a pooled client; several get pymemcache's consistent-hashing client, which
takes a failing server out of the ring after ``retry_attempts`` and back after
``dead_timeout``. Every command waits for the server's answer (no ``noreply``), and every
pymemcache or socket error is translated here, once, into a :mod:`cachedeps.errors` error.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NoReturn

from ..api import Item
from ..errors import (
    BackendError,
    BackendUnavailable,
    CachedepsError,
    ConfigurationError,
    InvalidKey,
    NonNumericValue,
    ProtocolError,
    ValueTooLarge,
)
from ..keys import check_key

if TYPE_CHECKING:
    from ..config import MemcacheConfig

__all__ = ["RemoteStore"]

logger = logging.getLogger("cachedeps.store")

_MAX_U64 = 2**64 - 1
_WARN_INTERVAL = 30.0
#: the most deletes :meth:`RemoteStore.delete_many` pipelines in one write (answers stay well
#: inside the socket buffers, so the server never waits for the client to read)
_PIPELINE = 1000


class _PassThrough:
    """pymemcache serde: values are bytes already; reads return ``(value, flags)``."""

    def serialize(self, key: Any, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> tuple[bytes, int]:
        return value, flags


def _expire(expire: float) -> int:
    # memcached takes whole seconds; round a positive fraction up so it does not mean "never".
    if expire <= 0:
        return -1 if expire < 0 else 0
    return int(math.ceil(expire))


def _flags(flags: int) -> int:
    if not (isinstance(flags, int) and 0 <= flags <= 2**32 - 1):
        raise ValueError(f"flags must be an int from 0 to 2**32-1, got {flags!r}")
    return flags


class RemoteStore:
    """The :class:`~cachedeps.api.Store` contract over pymemcache.

    Args:
        servers: ``(host, port)`` pairs.
        timeout: seconds to wait for an answer.
        connect_timeout: seconds to wait for a connection.
        pool_size: connections kept per server.
        retry_attempts, retry_timeout, dead_timeout: how a pool treats a failing server.

    Raises:
        ConfigurationError: pymemcache is not installed (``pip install cachedeps[memcache]``).
    """

    def __init__(
        self,
        servers: Iterable[tuple[str, int]],
        *,
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
        pool_size: int = 16,
        retry_attempts: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 30.0,
    ) -> None:
        try:
            import pymemcache.exceptions
            from pymemcache.client.base import PooledClient

            from ._pool import PoolExhausted, WaitingHashClient, install_waiting_pool
        except ImportError as exc:
            raise ConfigurationError(
                "memcache:// stores need pymemcache; install it with pip install 'cachedeps[memcache]'"
            ) from exc
        self._exc = pymemcache.exceptions
        self._exhausted = PoolExhausted
        self.servers = tuple((str(host), int(port)) for host, port in servers)
        if not self.servers:
            raise ConfigurationError("RemoteStore needs at least one (host, port) server")
        self.addresses = tuple(_address(s) for s in self.servers)
        self.name = "memcache://" + ",".join(self.addresses)
        self._last_warning = 0.0
        self.pool_size = pool_size
        common = dict(
            serde=_PassThrough(), connect_timeout=connect_timeout, timeout=timeout, no_delay=True,
            allow_unicode_keys=True, default_noreply=False,
        )
        if len(self.servers) == 1:
            self._hash: Any = None
            self._client: Any = PooledClient(self.servers[0], max_pool_size=pool_size, **common)
            install_waiting_pool(self._client, timeout)
        else:
            self._hash = self._client = WaitingHashClient(
                list(self.servers), use_pooling=True, max_pool_size=pool_size, ignore_exc=False,
                retry_attempts=retry_attempts, retry_timeout=retry_timeout, dead_timeout=dead_timeout,
                pool_wait=timeout, **common,
            )

    @classmethod
    def from_config(cls, config: MemcacheConfig) -> RemoteStore:
        """Open a store from a :class:`~cachedeps.config.MemcacheConfig`."""
        return cls(config.servers, timeout=config.timeout, connect_timeout=config.connect_timeout,
                   pool_size=config.pool_size, retry_attempts=config.retry_attempts,
                   retry_timeout=config.retry_timeout, dead_timeout=config.dead_timeout)

    def __repr__(self) -> str:
        return f"<RemoteStore {self.name}>"

    # -- the boundary --------------------------------------------------------------------

    def _address_of(self, key: str | None) -> str:
        if self._hash is None:
            return self.addresses[0]
        if key is not None:
            node = self._hash.hasher.get_node(key)
            if node is not None:
                return _address(self._hash.clients[node].server)
        return ",".join(self.addresses)

    def _translate(self, exc: BaseException, address: str) -> NoReturn:
        errors = self._exc
        if isinstance(exc, self._exhausted):
            where = _address(exc.server)
            raise BackendUnavailable(
                f"No free connection to memcached at {where}: {exc}; raise pool_size in the store URL "
                f"(now pool_size={exc.size}) or lower the number of threads using it at once",
                where,
            ) from exc
        if isinstance(exc, CachedepsError):
            raise exc
        if isinstance(exc, (OSError, errors.MemcacheUnexpectedCloseError)):
            raise BackendUnavailable(f"Cannot reach memcached at {address}: {exc or type(exc).__name__}",
                                     address) from exc
        if isinstance(exc, errors.MemcacheServerError):
            if "too large" in str(exc):
                raise ValueTooLarge(f"memcached at {address} refused the value as too large: {exc}") from exc
            raise BackendError(f"memcached at {address} failed: {exc}") from exc
        if isinstance(exc, errors.MemcacheIllegalInputError):
            raise InvalidKey(f"memcached client refused the input: {exc}") from exc
        if isinstance(exc, errors.MemcacheClientError):
            if "non-numeric" in str(exc):
                raise NonNumericValue(f"memcached at {address}: {exc}; incr/decr need a decimal counter") from exc
            raise ProtocolError(f"memcached at {address} rejected the command: {exc}") from exc
        if isinstance(exc, errors.MemcacheError):
            if "down" in str(exc):
                raise BackendUnavailable(f"Every memcached server is down ({address}): {exc}", address) from exc
            raise ProtocolError(f"Unexpected answer from memcached at {address}: {exc}") from exc
        raise exc

    def _failing(self, address: str) -> bool:
        # HashClient answers a default value, silently, for a server it is waiting to retry.
        hc = self._hash
        return hc is not None and any(_address(s) == address for s in hc._failed_clients)

    def _run(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        check_key(key)
        try:
            result = getattr(self._client, method)(key, *args, **kwargs)
        except Exception as exc:
            self._translate(exc, self._address_of(key))
        if self._hash is not None:
            address = self._address_of(key)
            if self._failing(address):
                raise BackendUnavailable(f"memcached at {address} is failing; retrying it later", address)
        return result

    def _run_all(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:
            self._translate(exc, self._address_of(None))

    def _check_partial(self, keys: list[str]) -> None:
        if self._hash is None:
            return
        down = sorted({a for a in map(self._address_of, keys) if self._failing(a)})
        if down and len(down) == len(self.addresses):
            raise BackendUnavailable(f"Every memcached server is failing: {', '.join(down)}", ",".join(down))
        now = time.monotonic()
        if down and now - self._last_warning > _WARN_INTERVAL:
            self._last_warning = now
            logger.warning("memcached %s failing: its keys read as misses", ", ".join(down))

    def _raw(self, server_key: str, command: bytes, end_tokens: bytes = b"\r\n") -> bytes:
        """Send a raw command to the server that holds ``server_key``; return the answer.

        The extension point for commands pymemcache does not know (``cachedeps serve``'s
        dependency commands, meta commands): the answer is returned up to ``end_tokens``.
        """
        check_key(server_key)
        address = self._address_of(server_key)
        try:
            client = self._hash._get_client(server_key) if self._hash is not None else self._client
            return client.raw_command(command, end_tokens)
        except Exception as exc:
            self._translate(exc, address)

    def server_version(self, key: str | None = None) -> str:
        """Return the version string of the server holding ``key`` (the first server if None)."""
        if self._hash is None:
            client, address = self._client, self.addresses[0]
        else:
            address = self._address_of(key) if key else self.addresses[0]
            client = next(c for c in self._hash.clients.values() if _address(c.server) == address)
        try:
            version = client.version()
        except Exception as exc:
            self._translate(exc, address)
        return version.decode() if isinstance(version, bytes) else str(version)

    def meta_leases(self) -> Any:
        """Return native fill leases (:class:`~cachedeps.store.meta.MetaLeases`) or ``None``.

        ``None`` when a server does not speak memcached's meta protocol (older than 1.6).
        Probed once, on first use; an unreachable server raises and is probed again later.

        Raises:
            BackendUnavailable: a server cannot be reached.
        """
        found = self.__dict__.get("_meta")
        if found is None:
            from .meta import MetaLeases, speaks_meta

            found = MetaLeases(self) if speaks_meta(self) else False
            self.__dict__["_meta"] = found
        return found or None

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None``."""
        found = self._run(key, "get")
        return None if found is None else found[0]

    def get_item(self, key: str) -> Item | None:
        """Return the value with its flags and CAS id, or ``None``."""
        found, cas = self._run(key, "gets")
        return None if found is None else Item(found[0], found[1], int(cas))

    def gets(self, key: str) -> tuple[bytes, int] | None:
        """Return ``(value, cas_id)`` or ``None``."""
        item = self.get_item(key)
        return None if item is None else (item.value, item.cas)

    def get_items(self, keys: Iterable[str]) -> dict[str, Item]:
        """Return ``{key: Item}`` for the keys that are present (one round trip per server)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        for key in keys:
            check_key(key)
        found = self._run_all("gets_many", keys)
        self._check_partial(keys)
        return {k: Item(v[0], v[1], int(cas)) for k, (v, cas) in found.items()}

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys that are present (one round trip per server)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        for key in keys:
            check_key(key)
        found = self._run_all("get_many", keys)
        self._check_partial(keys)
        return {k: v[0] for k, v in found.items()}

    def gets_many(self, keys: Iterable[str]) -> dict[str, tuple[bytes, int]]:
        """Return ``{key: (value, cas_id)}`` for the keys that are present."""
        return {k: (item.value, item.cas) for k, item in self.get_items(keys).items()}

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        """Store ``value`` under ``key``."""
        if not self._run(key, "set", bytes(value), expire=_expire(expire), noreply=False, flags=_flags(flags)):
            raise BackendError(f"memcached at {self._address_of(key)} did not store {key!r}")

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        """Store every pair; return the keys that were not stored."""
        values = {k: bytes(v) for k, v in mapping.items()}
        if not values:
            return []
        for key in values:
            check_key(key)
        failed = self._run_all("set_many", values, expire=_expire(expire), noreply=False, flags=_flags(flags))
        return list(failed)

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds nothing; return whether it was stored."""
        return bool(self._run(key, "add", bytes(value), expire=_expire(expire), noreply=False, flags=_flags(flags)))

    def replace(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        """Store only if ``key`` holds something; return whether it was stored."""
        return bool(self._run(key, "replace", bytes(value), expire=_expire(expire), noreply=False,
                              flags=_flags(flags)))

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        """Store only if the CAS id is still ``cas``: True stored, False changed, None missing."""
        return self._run(key, "cas", bytes(value), int(cas), expire=_expire(expire), noreply=False,
                         flags=_flags(flags))

    def append(self, key: str, value: bytes) -> bool:
        """Add bytes after an existing value; False if missing."""
        return bool(self._run(key, "append", bytes(value), noreply=False))

    def prepend(self, key: str, value: bytes) -> bool:
        """Add bytes before an existing value; False if missing."""
        return bool(self._run(key, "prepend", bytes(value), noreply=False))

    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        return bool(self._run(key, "delete", noreply=False))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key in ``keys`` and wait for the answers.

        The deletes are pipelined, :data:`_PIPELINE` to a write, one round trip per server and
        batch (a purge deletes up to thousands of keys: one round trip each made a writer wait
        for about 150 ms per 1,000 dependents). Raises as :meth:`delete` would when a server
        fails or is being retried; some keys may then be deleted and others not.
        """
        keys = list(dict.fromkeys(keys))
        for key in keys:
            check_key(key)
        if not keys:
            return
        if self._hash is None:
            for i in range(0, len(keys), _PIPELINE):
                try:
                    self._client.delete_many(keys[i : i + _PIPELINE], noreply=False)
                except Exception as exc:
                    self._translate(exc, self.addresses[0])
            return
        groups: dict[Any, list[str]] = {}
        for key in keys:
            try:
                client = self._hash._get_client(key)
            except Exception as exc:
                self._translate(exc, self._address_of(key))
            groups.setdefault(client, []).append(key)
        for client, group in groups.items():
            address = _address(client.server)
            for i in range(0, len(group), _PIPELINE):
                try:
                    self._hash._safely_run_func(client, client.delete_many, False, group[i : i + _PIPELINE],
                                                noreply=False)
                except Exception as exc:
                    self._translate(exc, address)
                if self._failing(address):
                    raise BackendUnavailable(f"memcached at {address} is failing; retrying it later", address)

    def append_many(self, mapping: Mapping[str, bytes]) -> list[str]:
        """Append each value to its key's item; return the keys that hold no item (nothing appended).

        Pipelined: one round trip per server (:meth:`_store_many`).
        """
        return self._store_many(b"append", mapping, 0)

    def add_many(self, mapping: Mapping[str, bytes], expire: float = 0) -> list[str]:
        """Store each pair where its key holds nothing; return the keys not stored (taken).

        Pipelined: one round trip per server (:meth:`_store_many`).
        """
        return self._store_many(b"add", mapping, expire)

    def _store_many(self, name: bytes, mapping: Mapping[str, bytes], expire: float) -> list[str]:
        """Send one storage command per pair, pipelined to each server; return the keys answered
        ``NOT_STORED``.

        Through pymemcache's pipelined storage path (the one its ``set_many`` takes), which
        reads the answers line by line and closes the connection when one is an error.
        """
        values = {k: bytes(v) for k, v in mapping.items()}
        if not values:
            return []
        groups: dict[str, list[str]] = {}
        for key in values:
            check_key(key)
            groups.setdefault(self._address_of(key), []).append(key)
        refused: list[str] = []
        for address, keys in groups.items():
            pooled = self._hash._get_client(keys[0]) if self._hash is not None else self._client
            try:
                with pooled.client_pool.get_and_release(destroy_on_fail=True) as client:
                    stored = client._store_cmd(name, {k: values[k] for k in keys}, _expire(expire), False, flags=0)
            except Exception as exc:
                self._translate(exc, address)
            refused.extend(k for k in keys if not stored.get(k))
        return refused

    def incr(self, key: str, delta: int = 1) -> int | None:
        """Add to a decimal counter (64-bit unsigned, wrapping); ``None`` if missing."""
        return self._delta("incr", key, delta)

    def decr(self, key: str, delta: int = 1) -> int | None:
        """Subtract from a decimal counter, stopping at 0; ``None`` if missing."""
        return self._delta("decr", key, delta)

    def _delta(self, name: str, key: str, delta: int) -> int | None:
        if not isinstance(delta, int) or not 0 <= delta <= _MAX_U64:
            raise NonNumericValue(f"{name} delta must be an int from 0 to 2**64-1, got {delta!r}")
        result = self._run(key, name, delta, noreply=False)
        return None if result is None else int(result)

    def touch(self, key: str, expire: float = 0) -> bool:
        """Change an item's expiry; return whether it exists."""
        return bool(self._run(key, "touch", _expire(expire), noreply=False))

    def flush_all(self, delay: float = 0) -> None:
        """Invalidate every item on every server (after ``delay`` seconds)."""
        self._run_all("flush_all", _expire(delay), noreply=False)

    # -- introspection -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return memcached's ``stats``, summed over servers; ``servers`` holds each one's."""
        clients = [self._client] if self._hash is None else list(self._hash.clients.values())
        per_server: dict[str, dict[str, Any]] = {}
        for client in clients:
            address = _address(client.server)
            try:
                raw = client.stats()
            except Exception as exc:
                self._translate(exc, address)
            per_server[address] = {_text(k): _number(v) for k, v in raw.items()}
        total: dict[str, Any] = {}
        for figures in per_server.values():
            for name, value in figures.items():
                if name in ("pid", "uptime", "time", "version", "pointer_size", "threads"):
                    total.setdefault(name, value)
                elif isinstance(value, (int, float)):
                    total[name] = total.get(name, 0) + value
                else:
                    total.setdefault(name, value)
        total["servers"] = per_server
        return total

    def __getattr__(self, name: str) -> Any:
        # ``link``/``invalidate``/``dependents`` exist only when the one server is
        # ``cachedeps serve``, so that isinstance(store, DependencyStore) tells the engine to
        # use native trees; asked once, on first use (an unreachable server counts as not).
        if name in ("link", "invalidate") and "_client" in self.__dict__:
            served = self.__dict__.get("_served")
            if served is None:
                from .served import ServedDependencies, detect_native_deps

                served = ServedDependencies(self) if detect_native_deps(self) else False
                self.__dict__["_served"] = served
            if served:
                return getattr(served, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def close(self) -> None:
        """Close every connection."""
        try:
            self._client.close()
        except Exception as exc:  # closing a broken pool must not fail the caller
            logger.debug("closing %s: %s", self.name, exc)


def _address(server: Any) -> str:
    if isinstance(server, tuple):
        host, port = server
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(server)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value
