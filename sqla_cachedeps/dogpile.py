"""A dogpile.cache backend over any cachedeps store.

Registered under the name ``cachedeps`` (entry point group ``dogpile.cache``)::

    from dogpile.cache import make_region

    region = make_region().configure(
        "cachedeps",
        expiration_time=300,
        arguments={"url": "memcache://127.0.0.1:11211"},     # or {"store": a_store}
    )

Arguments:
    url: a store URL for :func:`cachedeps.open_store` (``embedded://``, ``memcache://...``).
    store: a store object instead of ``url``.
    prefix: prepended to every key (default ``"dogpile:"``).
    expiration_time: seconds after which the store itself drops entries (default 0: never;
        dogpile's own ``expiration_time`` on the region is separate and still applies).
    distributed_lock: use a lock held in the store (``add``/``delete``) so that one process
        of many regenerates a value; default ``False`` (a lock per process).
    lock_timeout: seconds a distributed lock lives if its holder dies (default 30).
    serializer: an object with ``dumps``/``loads``; default the cachedeps serializer
        (msgpack: no pickle). Values must then be msgpack-serializable.

Keys that memcache cannot hold (spaces, over 250 bytes) are replaced by a digest.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Sequence

from dogpile.cache.api import NO_VALUE, BytesBackend, CantDeserializeException

from cachedeps import keys
from cachedeps.errors import BackendError, ConfigurationError

__all__ = ["CachedepsBackend"]


class CachedepsBackend(BytesBackend):
    """dogpile.cache backend storing bytes in a cachedeps store (see the module docstring)."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        url = arguments.get("url")
        store = arguments.get("store")
        if (url is None) == (store is None):
            raise ConfigurationError(
                "the cachedeps dogpile backend needs exactly one of arguments 'url' (e.g. 'embedded://') "
                "or 'store' (a cachedeps store)"
            )
        if store is None:
            import cachedeps

            store = cachedeps.open_store(url)
        self.store = store
        self.prefix = str(arguments.get("prefix", "dogpile:"))
        self.expire = float(arguments.get("expiration_time", 0) or 0)
        self.distributed_lock = bool(arguments.get("distributed_lock", False))
        self.lock_timeout = float(arguments.get("lock_timeout", 30))
        codec = arguments.get("serializer")
        if codec is None:
            from cachedeps.cache import default_serializer

            codec = default_serializer()
        self._codec = codec
        self.serializer = codec.dumps
        self.deserializer = self._loads

    def _loads(self, raw: bytes) -> Any:
        try:
            return self._codec.loads(raw)
        except Exception as exc:
            raise CantDeserializeException() from exc

    def _key(self, key: Any) -> str:
        return keys.safe_key(self.prefix, str(key))

    def get_serialized(self, key: Any) -> Any:
        """Return the bytes stored under ``key`` or ``NO_VALUE``."""
        try:
            raw = self.store.get(self._key(key))
        except BackendError:
            return NO_VALUE
        return NO_VALUE if raw is None else raw

    def get_serialized_multi(self, keys_: Sequence[Any]) -> list[Any]:
        """Return the bytes of each key (``NO_VALUE`` for missing), in one round trip."""
        if not keys_:
            return []
        mapped = [self._key(k) for k in keys_]
        try:
            found = self.store.get_many(mapped)
        except BackendError:
            found = {}
        return [found.get(k, NO_VALUE) for k in mapped]

    def set_serialized(self, key: Any, value: bytes) -> None:
        """Store ``value`` under ``key``."""
        try:
            self.store.set(self._key(key), value, self.expire)
        except BackendError:
            pass  # a cache that is down costs a regeneration, never an error

    def set_serialized_multi(self, mapping: Mapping[Any, bytes]) -> None:
        """Store every pair."""
        if not mapping:
            return
        try:
            self.store.set_many({self._key(k): v for k, v in mapping.items()}, self.expire)
        except BackendError:
            pass

    def delete(self, key: Any) -> None:
        """Delete ``key``."""
        try:
            self.store.delete(self._key(key))
        except BackendError:
            pass

    def delete_multi(self, keys_: Sequence[Any]) -> None:
        """Delete every key."""
        if not keys_:
            return
        try:
            self.store.delete_many([self._key(k) for k in keys_])
        except BackendError:
            pass

    def get_mutex(self, key: Any) -> Any:
        """Return a store-held lock when ``distributed_lock`` is set, else ``None``."""
        if not self.distributed_lock:
            return None
        return _StoreLock(self.store, keys.safe_key(self.prefix + "lock:", str(key)), self.lock_timeout)


class _StoreLock:
    """A lock held in the store with ``add`` (one holder), released with ``delete``."""

    def __init__(self, store: Any, key: str, timeout: float) -> None:
        self.store = store
        self.key = key
        self.timeout = timeout
        self._local = threading.local()

    def acquire(self, wait: bool = True) -> bool:
        delay = 0.001
        while True:
            try:
                if self.store.add(self.key, b"1", self.timeout):
                    return True
            except BackendError:
                return True  # store down: nothing to protect, let the caller compute
            if not wait:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def release(self) -> None:
        try:
            self.store.delete(self.key)
        except BackendError:
            pass

    def locked(self) -> bool:
        try:
            return self.store.get(self.key) is not None
        except BackendError:
            return False
