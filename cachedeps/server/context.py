"""What every command handler shares: the store, the settings and the server's counters."""

from __future__ import annotations

import codecs
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .. import __version__

__all__ = ["ServerSettings", "ServerContext", "MEMCACHED_VERSION", "VERSION_STRING", "decode_key"]

#: the memcached release whose protocol the server speaks
MEMCACHED_VERSION = "1.6.21"
#: what ``version`` answers; clients detect the dependency extension by the suffix
VERSION_STRING = f"{MEMCACHED_VERSION} cachedeps/{__version__}"


@dataclass(frozen=True)
class ServerSettings:
    """The server's limits, parsed once from the command line.

    Args:
        host, port: where to listen (loopback unless told otherwise).
        max_memory: bytes the store may hold (keys, values, per-item overhead).
        item_max: the largest value accepted.
        max_conns: connections served at once; more are refused.
        idle_timeout: seconds a connection may stay silent (0: forever).
        write_timeout: seconds a client may leave replies unread before it is dropped.
        flush_enabled: ``False`` refuses ``flush_all`` (memcached ``-F``).
        threads: event loops serving connections (memcached ``-t``); commands still run
            one at a time, the socket work in parallel.
    """

    host: str = "127.0.0.1"
    port: int = 11211
    max_memory: int = 64 * 2**20
    item_max: int = 2**20
    max_conns: int = 1024
    idle_timeout: float = 0.0
    write_timeout: float = 30.0
    read_buffer: int = 256 * 1024
    write_high_water: int = 1024 * 1024
    flush_enabled: bool = True
    threads: int = 1


# Bytes memcached stores in a key but the store's ``str`` keys refuse (control characters,
# space in a binary key, bytes that are not UTF-8) map to printable stand-ins: U+2400 +
# the byte for the C0 controls and space, U+2421 for DEL, U+2480 + (byte - 0x80) for the
# bytes from 0x80 (enclosed alphanumerics).
_ESCAPES = {c: 0x2400 + c for c in range(0x21)}
_ESCAPES[0x7F] = 0x2421
# any other key that is not printable UTF-8 (not UTF-8, or holding U+0080, U+2028, ...)
# maps byte by byte (one C call: a charmap table)
_BYTE_TABLE = "".join(
    chr(0x2400 + b) if b <= 0x20 else chr(0x2421) if b == 0x7F else chr(0x2480 + b - 0x80) if b >= 0x80
    else chr(b) for b in range(256))


def decode_key(key: bytes) -> str:
    """Return a wire key as the store's ``str`` key.

    A UTF-8 key of printable characters is itself; any other key (memcached stores any
    byte but space and newline in a text key) maps to printable stand-ins, so a client
    reads back what it stored under the same bytes. A stand-in could collide with a key
    spelled with those very characters (U+2400..U+2421, U+2480..U+24FF); docs/server.md.
    """
    s = key.decode("utf-8", "surrogateescape")  # no exception raised: cheap for any bytes
    if s.isprintable() and " " not in s:
        return s
    if key.isascii():
        return s.translate(_ESCAPES)
    return codecs.charmap_decode(key, "strict", _BYTE_TABLE)[0]


class ServerContext:
    """The store, the settings and the counters the handlers of every connection share."""

    def __init__(self, store, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        self.started = time.time()
        self.curr_connections = 0
        self.total_connections = 0
        self.rejected_connections = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.cmd_meta = 0
        self.verbosity = 0
        self.store_too_large = 0
        # held while commands run and counters change: handlers run one at a time whatever
        # loop their connection is on
        self.lock = threading.Lock()
        self.idle_kicks = 0
        self.started_monotonic = time.monotonic()
        # set by the server: its listening sockets' descriptors, its port, its connections
        self.listen_fds: list[int] = []
        self.port = 0
        self.connections: set = set()
        # Lease state of the meta protocol (stale, winner sent), valid while the item keeps
        # the CAS id it was recorded for; bounded, oldest forgotten first.
        self.leases: OrderedDict[str, list] = OrderedDict()
        self.max_leases = 100_000

    def lease(self, key: str, cas: int) -> list:
        """Return ``[cas, stale, win_sent]`` for the item ``key`` at CAS id ``cas``."""
        rec = self.leases.get(key)
        if rec is None or rec[0] != cas:
            rec = [cas, False, False]
            self.leases[key] = rec
            if len(self.leases) > self.max_leases:
                self.leases.popitem(last=False)
        return rec

    def lease_if_any(self, key: str, cas: int) -> list | None:
        """Return the lease record of ``key`` if one was kept for CAS id ``cas``."""
        rec = self.leases.get(key)
        if rec is not None and rec[0] == cas:
            return rec
        return None
