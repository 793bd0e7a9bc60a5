"""A Django ``CACHES`` backend on a cachedeps store, with dependency-tracked entries.

Configure it like any other backend; ``LOCATION`` is a cachedeps store URL::

    CACHES = {
        "default": {
            "BACKEND": "django_cachedeps.backend.CachedepsCache",
            "LOCATION": "embedded://?max_memory=64MB",      # or memcache://h1:11211,h2:11211
        }
    }

Every ``BaseCache`` method works as Django's memcached backends do (versions,
``KEY_PREFIX``, ``KEY_FUNCTION``, ``touch``, ``incr``/``decr``, the ``*_many`` methods and
their async variants; keys memcache cannot hold raise ``InvalidCacheKey``). Two additions:

- ``cache.set(key, value, depends_on=["book:42", "book.author_id=7"])`` stores a value that
  is dropped as soon as a committed write touches one of those dependency keys
  (:mod:`cachedeps.keys` spells them);
- ``cache.invalidate(*dependency_keys)`` announces such a write from application code; it
  goes to the change feed in the current database transaction and takes effect on commit.

Plain values are stored directly in the store, one round trip each: non-negative integers
as decimal text (so ``incr``/``decr`` are atomic in the store, as memcached does them),
anything else pickled and signed with a key derived from ``SECRET_KEY``. An entry that does
not verify (written by something else, altered, or signed with another secret) is a miss and
a log line; it is never unpickled. With the store unreachable, reads are misses and writes
are dropped, with one warning per interval: the application keeps running on its database.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    InvalidCacheKey,
    memcache_key_warnings,
)
from django.core.exceptions import ImproperlyConfigured

from cachedeps.api import NO_VALUE, RELATIVE_EXPIRY_LIMIT
from cachedeps.entries import ENTRY_TAG
from cachedeps.errors import BackendError, CorruptValue, ValueTooLarge

__all__ = ["CachedepsCache"]

logger = logging.getLogger("django_cachedeps.backend")

# The first byte of a stored value says how to read it. Decimal digits are integers
# (memcached's incr/decr need bare decimal text); the other tags cannot start a number.
_TAG_PICKLE = b"P"
# A dependent value is an engine entry kept under the cache key itself (first byte
# ENTRY_TAG): one round trip, validated locally against the engine's delta maps.
_TAG_DEPENDENT = bytes([ENTRY_TAG])
_MAX_COUNTER = 2**64 - 1
_SIGNING_SALT = "django_cachedeps.backend.CachedepsCache.signing"


class CachedepsCache(BaseCache):
    """Django cache backend storing values in a cachedeps store.

    Example::

        from django.core.cache import cache
        cache.set("greeting", "hello", 60)
        cache.set("author-page:7", html, depends_on=["author:7", "book.author_id=7"])
        cache.invalidate("author:7")          # after a write the ORM does not see
    """

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        # Registers the system checks even when "django_cachedeps" is not an installed app
        # (cachedeps.E008 says so). A missing LOCATION is reported by cachedeps.E010 and
        # raised on first use, not here: Django's own checks build every backend.
        from . import checks  # noqa: F401

        self._location = location
        self._params = params
        self._alias: str | None = None
        self._signer: Any = None

    # -- plumbing -------------------------------------------------------------------------

    @property
    def alias(self) -> str:
        """Return the ``CACHES`` alias this backend was configured under."""
        if self._alias is None:
            if not self._location:
                raise ImproperlyConfigured(
                    "CachedepsCache needs LOCATION, a cachedeps store URL such as "
                    "'embedded://?max_memory=64MB' or 'memcache://127.0.0.1:11211' (cachedeps.E010)"
                )
            self._alias = _find_alias(self._location, self._params)
        return self._alias

    @property
    def engine(self) -> Any:
        """Return the process-wide :class:`cachedeps.Cache` for this alias."""
        from .runtime import get_engine

        return get_engine(self.alias)

    @property
    def store(self) -> Any:
        """Return the :class:`cachedeps.api.Store` the values live in."""
        return self.engine.store

    def _store_failed(self, exc: BaseException) -> None:
        """Count and log (once per interval, shared with the ORM) an unreachable store."""
        # One warning per interval for the engine and this backend together.
        self.engine.store_failed(exc)

    def _serializer(self) -> Any:
        if self._signer is None:
            from django.utils.crypto import salted_hmac

            from cachedeps.serde import SignedPickleSerializer

            secret = salted_hmac(_SIGNING_SALT, self._location, algorithm="sha256").digest()
            self._signer = SignedPickleSerializer(secret)
        return self._signer

    def validate_key(self, key: str) -> None:
        """Raise ``InvalidCacheKey`` for a key memcache cannot hold, as Django's memcached backends do."""
        for warning in memcache_key_warnings(key):
            raise InvalidCacheKey(warning)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float:
        """Return a store expiry: 0 never expires, negative already expired, > 30 days absolute."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return 0
        if int(timeout) <= 0:
            return -1
        if timeout > RELATIVE_EXPIRY_LIMIT:
            return int(timeout + time.time())
        return int(timeout)

    def _encode(self, value: Any) -> bytes:
        if type(value) is int and 0 <= value <= _MAX_COUNTER:
            return str(value).encode("ascii")
        return _TAG_PICKLE + self._serializer().dumps(value)

    def _decode(self, key: str, data: bytes) -> Any:
        """Return the value stored as ``data``, or NO_VALUE for an entry that does not verify."""
        if not data:
            return self._corrupt(key, "empty value")
        first = data[:1]
        if first.isdigit():
            try:
                return int(data)
            except ValueError:
                return self._corrupt(key, "malformed integer")
        if first == _TAG_PICKLE:
            try:
                return self._serializer().loads(data[1:])
            except CorruptValue as exc:
                return self._corrupt(key, str(exc))
        if first == _TAG_DEPENDENT:
            return self._get_dependent(key, data)
        return self._corrupt(key, "unknown format")

    def _corrupt(self, key: str, reason: str) -> Any:
        logger.warning(
            "cache entry %r ignored (%s): not written by this cache with this SECRET_KEY; "
            "treated as a miss",
            key,
            reason,
        )
        return NO_VALUE

    def _polled_engine(self) -> Any:
        """Return the engine, its delta maps brought up to date from the change feed."""
        from django.db import DEFAULT_DB_ALIAS

        from .conf import get_settings
        from .runtime import ensure_polled, poll_engine

        engine = self.engine
        if self.alias == get_settings().cache:
            ensure_polled(DEFAULT_DB_ALIAS)  # once per request inside CachedepsMiddleware
        elif not engine.polled_in_unit():
            poll_engine(engine, DEFAULT_DB_ALIAS)
        return engine

    def _get_dependent(self, key: str, data: bytes) -> Any:
        blob = self._polled_engine().load_entry(key, data, ref=False)  # kept under its own store key
        if blob is NO_VALUE:
            return NO_VALUE
        if not isinstance(blob, bytes):
            return self._corrupt(key, "dependent entry is not signed bytes")
        try:
            return self._serializer().loads(blob)
        except CorruptValue as exc:
            return self._corrupt(key, str(exc))

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        """Return the value under ``key``, or ``default`` on a miss (or the store down)."""
        key = self.make_and_validate_key(key, version=version)
        store = self.store
        try:
            data = store.get(key)
        except BackendError as exc:
            self._store_failed(exc)
            return default
        if data is None:
            return default
        value = self._decode(key, data)
        return default if value is NO_VALUE else value

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        """Return the values found for ``keys`` in one store round trip."""
        key_map = {self.make_and_validate_key(k, version=version): k for k in keys}
        if not key_map:
            return {}
        store = self.store
        try:
            found = store.get_many(list(key_map))
        except BackendError as exc:
            self._store_failed(exc)
            return {}
        out = {}
        for made, data in found.items():
            value = self._decode(made, data)
            if value is not NO_VALUE:
                out[key_map[made]] = value
        return out

    def has_key(self, key: str, version: int | None = None) -> bool:
        """Return whether ``key`` holds a valid value."""
        return self.get(key, NO_VALUE, version=version) is not NO_VALUE

    # -- writes ---------------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        depends_on: Iterable[str] = (),
        tid: int | None = None,
    ) -> None:
        """Store ``value``; with ``depends_on``, drop it when a write touches any of those keys.

        A dependent value is stamped with a feed position from before the reads it was
        computed from: ``tid`` when given; else the position when the enclosing
        ``engine.recording()`` began; else the first poll of the request
        (:class:`~django_cachedeps.middleware.CachedepsMiddleware`); else this thread's last
        poll (an ORM read polls); else (nothing polled yet) the position polled now. Inside a
        transaction, never newer than the position when the transaction began.
        """
        key = self.make_and_validate_key(key, version=version)
        expire = self.get_backend_timeout(timeout)
        deps = list(depends_on)
        if deps:
            self._set_dependent(key, value, expire, deps, tid)
            return
        store = self.store
        try:
            store.set(key, self._encode(value), expire)
        except ValueTooLarge as exc:
            # Like Django's memcached backends: never leave the previous value behind.
            logger.warning("cache value for %r not stored: %s", key, exc)
            self._quiet_delete(key)
        except BackendError as exc:
            self._store_failed(exc)

    def _set_dependent(self, key: str, value: Any, expire: float, deps: list[str], tid: int | None) -> None:
        from django.db import DEFAULT_DB_ALIAS, connections

        engine = self.engine
        if tid is None:
            tid = engine.stamp()  # taken before the poll below, which must not move it
        self._polled_engine()
        if tid == 0:
            tid = engine.stamp()  # nothing polled in this context before: now
        connection = connections[DEFAULT_DB_ALIAS]
        began = getattr(connection, "cachedeps_tx_stamp", None)
        if began is not None and not connection.get_autocommit():
            tid = min(tid, began)
        if expire < 0:
            self._quiet_delete(key)
            return
        blob = self._serializer().dumps(value)
        try:
            stored = engine.set(key, blob, depends_on=deps, timeout=expire or None, store_key=key, tid=tid)
        except ValueTooLarge as exc:
            logger.warning("cache value for %r not stored: %s", key, exc)
            stored = False
        if not stored:  # outdated already, too large or the store down: leave nothing older
            self._quiet_delete(key)

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` holds nothing; return whether it was stored."""
        key = self.make_and_validate_key(key, version=version)
        store = self.store
        try:
            return bool(store.add(key, self._encode(value), self.get_backend_timeout(timeout)))
        except ValueTooLarge as exc:
            logger.warning("cache value for %r not stored: %s", key, exc)
            return False
        except BackendError as exc:
            self._store_failed(exc)
            return False

    def set_many(
        self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        """Store every pair; return the keys that were not stored."""
        originals = {}
        encoded = {}
        for key, value in data.items():
            made = self.make_and_validate_key(key, version=version)
            originals[made] = key
            encoded[made] = self._encode(value)
        if not encoded:
            return []
        store = self.store
        try:
            failed = store.set_many(encoded, self.get_backend_timeout(timeout))
        except BackendError as exc:
            self._store_failed(exc)
            return list(data)
        return [originals[k] for k in failed]

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give ``key`` a new expiry; return whether it existed."""
        key = self.make_and_validate_key(key, version=version)
        store = self.store
        try:
            return bool(store.touch(key, self.get_backend_timeout(timeout)))
        except BackendError as exc:
            self._store_failed(exc)
            return False

    def delete(self, key: str, version: int | None = None) -> bool:
        """Delete ``key``; return whether it existed."""
        key = self.make_and_validate_key(key, version=version)
        store = self.store
        try:
            return bool(store.delete(key))
        except BackendError as exc:
            self._store_failed(exc)
            return False

    def _quiet_delete(self, key: str) -> None:
        store = self.store
        try:
            store.delete(key)
        except BackendError as exc:
            self._store_failed(exc)

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        """Delete every key in ``keys``."""
        made = [self.make_and_validate_key(k, version=version) for k in keys]
        if not made:
            return
        store = self.store
        try:
            store.delete_many(made)
        except BackendError as exc:
            self._store_failed(exc)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Add ``delta`` to an integer atomically and return the result.

        Raises:
            ValueError: the key holds nothing (as in every Django backend).
        """
        made = self.make_and_validate_key(key, version=version)
        store = self.store
        try:
            value = store.decr(made, -delta) if delta < 0 else store.incr(made, delta)
        except ValueError:
            # Not a bare counter (a negative or huge int, or not an int): Django's
            # read-modify-write fallback, as BaseCache does it.
            return super().incr(key, delta, version=version)
        except BackendError as exc:
            self._store_failed(exc)
            raise ValueError(f"Key {made!r} not found (cache {store.name} unavailable)") from exc
        if value is None:
            raise ValueError(f"Key {made!r} not found")
        return value

    def decr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Subtract ``delta`` from an integer atomically (stopping at 0) and return the result."""
        return self.incr(key, -delta, version=version)

    def clear(self) -> None:
        """Remove everything from the store (``flush_all``, as Django's memcached backends do)."""
        store = self.store
        try:
            store.flush_all()
        except BackendError as exc:
            self._store_failed(exc)

    def close(self, **kwargs: Any) -> None:
        """Keep the store open: it is shared by every thread and alias of the process."""

    # -- dependency keys ------------------------------------------------------------------

    def invalidate(self, *keys: str, using: str | None = None) -> int:
        """Drop every entry depending on ``keys`` once the current transaction commits.

        With a database change feed (the default), the keys are appended to the feed when
        the transaction of the ``using`` database (the default database if not given)
        commits; outside a transaction they take effect at once. Returns the tid of the
        change (0 inside a transaction: it is known at COMMIT).
        """
        from django.db import DEFAULT_DB_ALIAS

        from cachedeps.feed import SqlFeed

        from .db.writes import emit

        keys = tuple(keys)
        if not keys:
            return 0
        engine = self.engine
        if not isinstance(engine.feed, SqlFeed):
            return engine.invalidate(*keys)
        return emit(engine, using or DEFAULT_DB_ALIAS, keys)


def _find_alias(location: str, params: dict[str, Any]) -> str:
    """Return the ``CACHES`` alias configured with this backend, ``location`` and ``params``."""
    from django.conf import settings

    candidates = []
    for alias, conf in settings.CACHES.items():
        if conf.get("LOCATION", "") != location or not str(conf.get("BACKEND", "")).endswith(
            "CachedepsCache"
        ):
            continue
        rest = {k: v for k, v in conf.items() if k not in ("BACKEND", "LOCATION")}
        if rest == params:
            return alias
        candidates.append(alias)
    if candidates:
        return candidates[0]
    raise ImproperlyConfigured(
        f"CachedepsCache with LOCATION {location!r} is not in settings.CACHES; configure it "
        "there (the engine behind it is built from the CACHES entry)"
    )
