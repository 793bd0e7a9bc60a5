"""LOCAL SHIM until cachedeps.store.remote lands: a minimal pymemcache Store for the checker.

Remove this file (and its use in model.py) once ``open_store("memcache://...")`` works.
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Mapping

from cachedeps.errors import BackendUnavailable

__all__ = ["ShimStore"]


class ShimStore:
    """Just enough of the Store contract over one memcached, errors translated."""

    def __init__(self, host: str, port: int) -> None:
        from pymemcache.client.base import Client

        self.name = f"memcache://{host}:{port}"
        self._c = Client((host, port), connect_timeout=0.5, timeout=1.0, no_delay=True)

    def _call(self, name: str, *args: Any, **kw: Any) -> Any:
        from pymemcache.exceptions import MemcacheError

        try:
            return getattr(self._c, name)(*args, **kw)
        except (OSError, socket.timeout, MemcacheError) as exc:
            self._c.close()
            raise BackendUnavailable(f"{self.name}: {exc}", address=self.name) from exc

    def get(self, key: str) -> bytes | None:
        return self._call("get", key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(keys)
        return self._call("get_many", keys) if keys else {}

    def gets(self, key: str) -> tuple[bytes, int] | None:
        value, cas = self._call("gets", key)
        return None if value is None else (value, int(cas))

    def set(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> None:
        self._call("set", key, value, expire=int(expire), noreply=False)

    def set_many(self, mapping: Mapping[str, bytes], expire: float = 0, flags: int = 0) -> list[str]:
        return list(self._call("set_many", dict(mapping), expire=int(expire), noreply=False))

    def add(self, key: str, value: bytes, expire: float = 0, flags: int = 0) -> bool:
        return bool(self._call("add", key, value, expire=int(expire), noreply=False))

    def cas(self, key: str, value: bytes, cas: int, expire: float = 0, flags: int = 0) -> bool | None:
        return self._call("cas", key, value, cas, expire=int(expire), noreply=False)

    def append(self, key: str, value: bytes) -> bool:
        return bool(self._call("append", key, value, noreply=False))

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key, noreply=False))

    def delete_many(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self._call("delete_many", keys, noreply=False)

    def incr(self, key: str, delta: int = 1) -> int | None:
        return self._call("incr", key, delta, noreply=False)

    def flush_all(self, delay: float = 0) -> None:
        self._call("flush_all", noreply=False)

    def close(self) -> None:
        self._c.close()
