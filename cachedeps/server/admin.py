"""Server-level commands: stats, flush_all, version, verbosity, cache_memlimit, metadump,
and the dependency extension (``cd_link``, ``cd_invalidate``, ``cd_dependents``)."""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Iterator
from urllib.parse import quote

from ..errors import CachedepsError, ConfigurationError
from .context import VERSION_STRING, ServerContext, decode_key
from .protocol import KEY_MAX, parse_int, parse_uint

if TYPE_CHECKING:
    from ..store.embedded import ItemInfo

__all__ = ["AdminCommands", "size_class", "PREFIX_NONE"]

_OK = b"OK\r\n"
_END = b"END\r\n"
_ERROR = b"ERROR\r\n"
_BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
#: how ``stats prefixes`` spells the prefix of keys holding no ``:``
PREFIX_NONE = "(none)"

# memcached's default slab classes: 96 bytes growing by 1.25, 8-byte aligned
_CLASS_SIZES: list[int] = []
_size = 96
while _size < 512 * 1024:
    _CLASS_SIZES.append(_size)
    _size = (int(_size * 1.25) + 7) & ~7
_CLASS_SIZES.append(1024 * 1024)


def size_class(size: int) -> int:
    """Return the memcached-like slab class (1-based) an item of ``size`` bytes falls in."""
    for cls, chunk in enumerate(_CLASS_SIZES, 1):
        if size <= chunk:
            return cls
    return len(_CLASS_SIZES)


# the counters ``stats reset`` zeroes (gauges such as curr_items and bytes keep their value)
_RESETTABLE = frozenset((
    "total_items", "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "get_hits", "get_misses",
    "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
    "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses", "evictions",
    "reclaimed", "expired_unfetched", "evicted_unfetched", "invalidations", "invalidated_items",
))


def _stat_lines(pairs) -> bytes:
    return b"".join(b"STAT %s %s\r\n" % (str(k).encode(), str(v).encode()) for k, v in pairs) + _END


class AdminCommands:
    """Commands about the server rather than one item."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        # figures as they stood at the last ``stats reset`` (memcached zeroes its counters)
        self._baseline: dict[str, int] = {}

    def handlers(self) -> dict:
        """Return ``{op: handler}`` for the commands this class answers."""
        return {
            b"stats": self.stats, b"flush_all": self.flush_all, b"version": self.version,
            b"verbosity": self.verbosity, b"cache_memlimit": self.cache_memlimit,
            b"lru_crawler": self.lru_crawler, b"quit": self.quit,
            b"cd_link": self.cd_link, b"cd_invalidate": self.cd_invalidate,
            b"cd_dependents": self.cd_dependents, b"slabs": self.slabs,
        }

    # -- simple commands -----------------------------------------------------------------

    def version(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``version``."""
        return b"VERSION %s\r\n" % VERSION_STRING.encode()

    def quit(self, tokens: list[bytes], _data: object) -> None:
        """Close the connection (``None`` tells the connection to close)."""
        return None

    def verbosity(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``verbosity <level> [noreply]``."""
        n = len(tokens)
        if n != 2 and n != 3:
            return _ERROR
        noreply = tokens[-1] == b"noreply"
        level = parse_uint(tokens[1])
        if level < 0:
            return b"" if noreply else _BAD_FORMAT
        self.ctx.verbosity = min(level, 2)
        return b"" if noreply else _OK

    def slabs(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``slabs automove <0|1|2>`` (accepted, nothing to move) and ``slabs reassign``."""
        if len(tokens) == 3 and tokens[1] == b"automove":
            level = parse_uint(tokens[2])
            if level < 0:
                return _BAD_FORMAT
            return _OK if level <= 2 else _ERROR
        if len(tokens) == 4 and tokens[1] == b"reassign":
            return b"NOSPARE source class has no spare pages\r\n"
        return _ERROR

    def flush_all(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``flush_all [delay] [noreply]``."""
        n = len(tokens)
        if n > 3:
            return _ERROR
        noreply = tokens[-1] == b"noreply"
        if not self.ctx.settings.flush_enabled:
            return b"" if noreply else b"CLIENT_ERROR flush_all not allowed\r\n"
        delay = 0
        if n != (2 if noreply else 1):
            parsed = parse_int(tokens[1])
            if parsed is None:
                return b"" if noreply else b"CLIENT_ERROR invalid exptime argument\r\n"
            delay = parsed
        self.store.flush_all(max(delay, 0))
        self.ctx.leases.clear()
        return b"" if noreply else _OK

    def cache_memlimit(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``cache_memlimit <megabytes> [noreply]``."""
        n = len(tokens)
        if n != 2 and n != 3:
            return _ERROR
        noreply = tokens[-1] == b"noreply"
        mb = parse_uint(tokens[1])
        if mb < 0:
            return _ERROR
        if mb < 8:
            return b"" if noreply else b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
        try:
            self.store.set_memory_limit(mb * 2**20)
        except ConfigurationError:
            return b"" if noreply else _BAD_FORMAT
        return b"" if noreply else _OK

    # -- stats ---------------------------------------------------------------------------

    def stats(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``stats`` and ``stats items|slabs|sizes|settings|prefixes|cachedump|reset``."""
        if len(tokens) == 1:
            return _stat_lines(self.general().items())
        sub = tokens[1]
        if sub == b"settings":
            return _stat_lines(self.settings().items())
        if sub == b"items":
            return _stat_lines(self._items())
        if sub == b"slabs":
            return _stat_lines(self._slabs())
        if sub == b"sizes":
            return _stat_lines(self._sizes())
        if sub == b"prefixes":
            return _stat_lines(self._prefixes())
        if sub == b"cachedump":
            return self._cachedump(tokens)
        if sub == b"reset":
            ctx = self.ctx
            ctx.total_connections = ctx.rejected_connections = ctx.cmd_meta = 0
            ctx.bytes_read = ctx.bytes_written = 0
            ctx.store_too_large = 0
            self._baseline = {}
            self._baseline = {k: v for k, v in self.general().items() if k in _RESETTABLE}
            return b"RESET\r\n"
        if sub == b"detail":
            if len(tokens) == 3 and tokens[2] in (b"on", b"off"):
                return _OK
            if len(tokens) == 3 and tokens[2] == b"dump":
                return _END
            return b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"
        if sub == b"conns":
            return _stat_lines(self._conns())
        if sub == b"extstore":
            return _END
        return _ERROR

    def _conns(self) -> Iterator[tuple[str, object]]:
        now = time.monotonic()
        listen = f"tcp:{self.ctx.settings.host}:{self.ctx.port or self.ctx.settings.port}"
        for fd in self.ctx.listen_fds:
            yield f"{fd}:addr", listen
            yield f"{fd}:state", "conn_listening"
            yield f"{fd}:secs_since_last_cmd", int(now - self.ctx.started_monotonic)
        for conn in list(self.ctx.connections):
            transport = conn.transport
            sock = transport.get_extra_info("socket") if transport else None
            peer = transport.get_extra_info("peername") if transport else None
            if sock is None or not peer:
                continue
            fd = sock.fileno()
            yield f"{fd}:addr", f"tcp:{peer[0]}:{peer[1]}"
            yield f"{fd}:listen_addr", listen
            yield f"{fd}:state", "conn_parse_cmd"
            yield f"{fd}:secs_since_last_cmd", int(now - conn.last_seen)

    def general(self) -> dict:
        """Return the figures of a plain ``stats``, in memcached's order where it has them."""
        ctx = self.ctx
        s = self.store.stats()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now = time.time()
        out = {
            "pid": os.getpid(),
            "uptime": int(now - ctx.started),
            "time": int(now),
            "version": VERSION_STRING.replace(" ", "-"),
            "libevent": "asyncio",
            "pointer_size": 64,
            "rusage_user": f"{usage.ru_utime:.6f}",
            "rusage_system": f"{usage.ru_stime:.6f}",
            "max_connections": ctx.settings.max_conns,
            "curr_connections": ctx.curr_connections,
            "total_connections": ctx.total_connections,
            "rejected_connections": ctx.rejected_connections,
            "connection_structures": ctx.curr_connections,
        }
        for name in ("cmd_get", "cmd_set", "cmd_flush", "cmd_touch"):
            out[name] = s.get(name, 0)
        out["cmd_meta"] = ctx.cmd_meta
        for name in ("get_hits", "get_misses", "delete_misses", "delete_hits", "incr_misses",
                     "incr_hits", "decr_misses", "decr_hits", "cas_misses", "cas_hits",
                     "cas_badval", "touch_hits", "touch_misses"):
            out[name] = s.get(name, 0)
        out["bytes_read"] = ctx.bytes_read
        out["bytes_written"] = ctx.bytes_written
        out["limit_maxbytes"] = s.get("limit_maxbytes", ctx.settings.max_memory)
        out["threads"] = 1
        for name in ("bytes", "curr_items", "total_items", "expired_unfetched",
                     "evicted_unfetched", "evictions", "reclaimed"):
            out[name] = s.get(name, 0)
        out["get_expired"] = 0  # the store does not tell an expired miss from a plain one
        out["get_flushed"] = 0
        out["store_too_large"] = ctx.store_too_large
        out["store_no_memory"] = 0  # the store evicts; a store never fails for memory
        out["accepting_conns"] = 1
        out["listen_disabled_num"] = 0  # past --max-conns, connections are refused, not paused
        if ctx.settings.idle_timeout:  # memcached lists it only with an idle timeout
            out["idle_kicks"] = ctx.idle_kicks
        for name, value in s.items():
            if name not in out and name not in ("version", "pid", "uptime", "time", "pointer_size"):
                out[name] = value
        base = self._baseline
        if base:
            for name, value in base.items():
                current = out.get(name)
                if isinstance(current, int):
                    out[name] = current - value
        return out

    def settings(self) -> dict:
        """Return the figures of ``stats settings``."""
        st = self.ctx.settings
        out = {
            "maxbytes": st.max_memory,
            "maxconns": st.max_conns,
            "tcpport": st.port,
            "interface": st.host,
            "verbosity": self.ctx.verbosity,
            "item_size_max": st.item_max,
            "idle_timeout": int(st.idle_timeout),
            "write_timeout": int(st.write_timeout),
            "binding_protocol": "auto-negotiate",
            "cas_enabled": "yes",
            "evictions": "on",
        }
        store_settings = getattr(self.store, "stats_settings", None)
        if store_settings is not None:
            for name, value in store_settings().items():
                out.setdefault(name, value)
            out["maxbytes"] = store_settings().get("maxbytes", st.max_memory)
        return out

    def _snapshot(self) -> list[ItemInfo]:
        return list(self.store.items_snapshot())

    def _items(self) -> Iterator[tuple[str, int]]:
        now = int(time.time())
        classes: dict[int, list[int]] = {}
        for info in self._snapshot():
            rec = classes.setdefault(size_class(info.size), [0, 0])
            rec[0] += 1
            rec[1] = max(rec[1], now - info.last_access)
        for cls in sorted(classes):
            number, age = classes[cls]
            yield f"items:{cls}:number", number
            yield f"items:{cls}:age", age
            yield f"items:{cls}:evicted", 0  # the store evicts by global LRU, not per class

    def _slabs(self) -> Iterator[tuple[str, int]]:
        classes: dict[int, list[int]] = {}
        for info in self._snapshot():
            rec = classes.setdefault(size_class(info.size), [0, 0])
            rec[0] += 1
            rec[1] += info.size
        for cls in sorted(classes):
            used, requested = classes[cls]
            yield f"{cls}:chunk_size", _CLASS_SIZES[cls - 1]
            yield f"{cls}:used_chunks", used
            yield f"{cls}:mem_requested", requested
        yield "active_slabs", len(classes)
        yield "total_malloced", self.store.stats().get("bytes", 0)

    def _sizes(self) -> Iterator[tuple[int, int]]:
        buckets: dict[int, int] = {}
        for info in self._snapshot():
            bucket = (info.size + 31) // 32 * 32
            buckets[bucket] = buckets.get(bucket, 0) + 1
        for bucket in sorted(buckets):
            yield bucket, buckets[bucket]

    def _prefixes(self) -> Iterator[tuple[str, int]]:
        for prefix, figures in self.store.prefix_stats().items():
            name = prefix or PREFIX_NONE
            for field, value in figures.items():
                yield f"prefix:{name}:{field}", value

    def _cachedump(self, tokens: list[bytes]) -> bytes:
        if len(tokens) < 3:
            return _ERROR
        cls = parse_uint(tokens[2])
        limit = parse_uint(tokens[3]) if len(tokens) > 3 else 0
        if cls < 0 or limit < 0:
            return b"CLIENT_ERROR bad command line format\r\n"
        out = []
        for info in self._snapshot():
            if size_class(info.size) != cls:
                continue
            out.append(b"ITEM %s [%d b; %d s]\r\n" % (info.key.encode(), info.size, max(info.exptime, 0)))
            if limit and len(out) >= limit:
                break
        out.append(_END)
        return b"".join(out)

    def lru_crawler(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``lru_crawler metadump all|<classes>`` (other subcommands: OK/ERROR)."""
        if len(tokens) < 2:
            return _ERROR
        if tokens[1] != b"metadump":
            return _OK if tokens[1] in (b"enable", b"disable", b"crawl", b"sleep", b"tocrawl") else _ERROR
        if len(tokens) < 3:
            return _ERROR
        wanted: set[int] | None = None
        if tokens[2] not in (b"all", b"hash"):
            try:
                wanted = {int(t) for t in tokens[2].split(b",")}
            except ValueError:
                return b"CLIENT_ERROR bad class id\r\n"
        out = []
        for info in self._snapshot():
            cls = size_class(info.size)
            if wanted is not None and cls not in wanted:
                continue
            out.append(b"key=%s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\n" % (
                quote(info.key, safe="").encode(), info.exptime or -1, info.last_access,
                info.cas, b"yes" if info.fetched else b"no", cls, info.size))
        out.append(_END)
        return b"".join(out)

    # -- the dependency extension --------------------------------------------------------

    def cd_link(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``cd_link <parent> <child>+ [T<ttl>] [noreply]`` with ``LINKED <n>``."""
        noreply = tokens[-1] == b"noreply"
        args = tokens[1:-1] if noreply else tokens[1:]
        expire = 0
        if args and args[-1][:1] == b"T":
            ttl = parse_int(args[-1][1:])
            if ttl is None:
                return b"CLIENT_ERROR bad TTL token\r\n"
            expire, args = ttl, args[:-1]
        if len(args) < 2:
            return _ERROR
        if any(len(k) > KEY_MAX for k in args):
            return _BAD_FORMAT
        try:
            self.store.link(decode_key(args[0]), [decode_key(k) for k in args[1:]], expire)
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        return b"" if noreply else b"LINKED %d\r\n" % (len(args) - 1)

    def cd_invalidate(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``cd_invalidate <key>+ [noreply]`` with ``INVALIDATED <deleted>``."""
        noreply = tokens[-1] == b"noreply"
        keys = tokens[1:-1] if noreply else tokens[1:]
        if not keys:
            return _ERROR
        if any(len(k) > KEY_MAX for k in keys):
            return _BAD_FORMAT
        try:
            deleted = self.store.invalidate([decode_key(k) for k in keys])
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        return b"" if noreply else b"INVALIDATED %d\r\n" % deleted

    def cd_dependents(self, tokens: list[bytes], _data: object) -> bytes:
        """Answer ``cd_dependents <key>`` with ``DEPENDENT <key>`` lines and ``END``."""
        if len(tokens) != 2:
            return _ERROR
        try:
            children = self.store.dependents(decode_key(tokens[1]))
        except (ValueError, CachedepsError):
            return _BAD_FORMAT
        return b"".join(b"DEPENDENT %s\r\n" % c.encode() for c in children) + _END
