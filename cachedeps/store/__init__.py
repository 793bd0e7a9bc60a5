"""Store implementations behind :class:`cachedeps.api.Store`.

- ``embedded``: :class:`cachedeps.store.embedded.EmbeddedStore`, in-process (the default);
- ``memcache``: :class:`cachedeps.store.remote.RemoteStore`, pymemcache to memcached or
  ``cachedeps serve``;
- ``redis``: :class:`cachedeps.store.redis_store.RedisStore`, redis-py to Redis or Valkey
  (one server or a Redis Cluster).

Open a store by URL with :func:`cachedeps.config.open_store`; the classes are loaded on
first use, so importing this package loads no memcache or Redis client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EmbeddedStore", "RemoteStore", "RedisStore"]

_LAZY = {
    "EmbeddedStore": "cachedeps.store.embedded:EmbeddedStore",
    "RemoteStore": "cachedeps.store.remote:RemoteStore",
    "RedisStore": "cachedeps.store.redis_store:RedisStore",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'cachedeps.store' has no attribute {name!r}")
    import importlib

    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
