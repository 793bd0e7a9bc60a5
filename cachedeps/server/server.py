"""``cachedeps serve``: the embedded store on the memcache text, meta and binary protocols.

One asyncio event loop (uvloop when installed) serves every connection. Each read is
parsed into commands, the commands run directly against the store, and their replies go
out in one write. Memory stays bounded: the parser buffers at most one command line or data
block, and a connection whose client does not read its replies stops being read (and is
dropped after ``write_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Callable

from .admin import AdminCommands
from .binary import BinaryConnection
from .context import ServerContext, ServerSettings
from .meta import MetaCommands
from .protocol import OP_CLOSE, OP_REPLY, OP_TOO_LARGE, TextParser
from .text import TextCommands

__all__ = ["Server", "serve", "make_store"]

log = logging.getLogger("cachedeps.server")

_ERROR = b"ERROR\r\n"
_INTERNAL = b"SERVER_ERROR internal error\r\n"
# marks a binary connection whose parsed requests wait for the client to read
_BINARY_BACKLOG: tuple[list[tuple], int] = ([], 0)
_TOO_MANY = b"ERROR Too many open connections\r\n"  # memcached's words


def make_store(settings: ServerSettings):
    """Return the embedded store sized by ``settings``."""
    from ..store.embedded import EmbeddedStore

    # The store counts key + value + 64 bytes per item; memcached counts key + value + 59
    # (flags 0): the store's limit is raised by 5 so the same values fit as in memcached.
    return EmbeddedStore("serve", max_memory=settings.max_memory, item_max=settings.item_max + 5)


class _Connection(asyncio.Protocol):
    """One client: parse, execute, reply in one write; backpressure both ways."""

    __slots__ = ("server", "ctx", "transport", "parser", "handlers", "binary", "last_seen",
                 "paused_at", "closing", "backlog", "_first")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ctx = server.ctx
        self.transport: asyncio.Transport | None = None
        self.parser = TextParser(self.ctx.settings.item_max)
        self.handlers = server.handlers
        self.binary: BinaryConnection | None = None
        self.last_seen = time.monotonic()
        self.paused_at = 0.0
        self.closing = False
        self.backlog: tuple[list[tuple], int] | None = None
        self._first = True

    def connection_made(self, transport) -> None:
        self.transport = transport
        ctx = self.ctx
        if ctx.curr_connections >= ctx.settings.max_conns:
            ctx.rejected_connections += 1
            log.warning("refusing %s: %d connections open (--max-conns)", self._peer(),
                        ctx.curr_connections)
            transport.write(_TOO_MANY)
            transport.close()
            self.closing = True
            return
        ctx.curr_connections += 1
        ctx.total_connections += 1
        transport.set_write_buffer_limits(high=ctx.settings.write_high_water)
        self.server.connections.add(self)
        log.debug("connection from %s (%d open)", self._peer(), ctx.curr_connections)

    def connection_lost(self, exc) -> None:
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.ctx.curr_connections -= 1
            log.debug("connection from %s closed%s", self._peer(), f": {exc}" if exc else "")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.ctx.bytes_read += len(data)
        self.last_seen = time.monotonic()
        if self._first:
            self._first = False
            if data[:1] == b"\x80":
                self.binary = BinaryConnection(self.ctx, self.server.handlers)
        if self.binary is not None:
            self._run_binary(data)
            return
        self._run(self.parser.feed(data), 0)

    def _run_binary(self, data: bytes) -> None:
        binary = self.binary
        assert binary is not None  # set by data_received before any binary request runs
        while True:
            out, close = binary.feed(data)
            data = b""
            self._send(out, close)
            if close or not binary.pending:
                return
            if self.paused_at:
                self.backlog = _BINARY_BACKLOG
                return

    def _run(self, commands: list[tuple], start: int) -> None:
        """Execute ``commands[start:]``, writing replies in batches of bounded size.

        When the transport's buffer passes its high-water mark the rest waits in
        ``backlog`` until the client has read enough (:meth:`resume_writing`).
        """
        handlers = self.handlers
        out: list[bytes] = []
        size = 0
        limit = self.ctx.settings.write_high_water
        i = start
        n = len(commands)
        while i < n:
            op, args, payload = commands[i]
            i += 1
            handler = handlers.get(op)
            if handler is None:
                if op == OP_REPLY:
                    if not args:
                        out.append(payload)
                    continue
                if op == OP_CLOSE:
                    log.info("closing %s: %s", self._peer(), args.decode())
                    self._send(out, True)
                    return
                if len(args) > 1 and args[-1][:5] == b"HTTP/":
                    # As memcached: an HTTP request closes the connection, unanswered, and
                    # the replies not yet written for the same read are dropped.
                    self._send([], True)
                    return
                out.append(_ERROR)
                continue
            try:
                reply = handler(args, payload)
            except Exception:
                log.exception("error answering %r from %s", op, self._peer())
                reply = _INTERNAL
            if reply is None:
                self._send(out, True)
                return
            if reply:
                out.append(reply)
                size += len(reply)
                if size > limit and i < n:
                    self._send(out, False)
                    out = []
                    size = 0
                    if self.paused_at:
                        self.backlog = (commands, i)
                        return
        self._send(out, False)

    def _send(self, out: list[bytes], close: bool) -> None:
        transport = self.transport
        assert transport is not None  # set by connection_made, before any data arrives
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            self.ctx.bytes_written += len(data)
            transport.write(data)
        if close:
            self.closing = True
            transport.close()

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests.
        self.paused_at = time.monotonic()
        assert self.transport is not None  # writes happen only once connected
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused_at = 0.0
        if self.closing:
            return
        backlog = self.backlog
        if backlog is not None:
            self.backlog = None
            if backlog is _BINARY_BACKLOG:
                self._run_binary(b"")
            else:
                self._run(*backlog)
            if self.paused_at or self.closing:
                return
        assert self.transport is not None  # writes happen only once connected
        self.transport.resume_reading()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"


class Server:
    """A memcache-protocol server over one store.

    Example::

        server = Server(ServerSettings(port=0))
        await server.start()
        ...
        await server.stop()
    """

    def __init__(self, settings: ServerSettings, store=None) -> None:
        self.settings = settings
        self.store = store if store is not None else make_store(settings)
        self.ctx = ServerContext(self.store, settings)
        text = TextCommands(self.ctx)
        handlers: dict[bytes, Callable] = {}
        for group in (text, MetaCommands(self.ctx), AdminCommands(self.ctx)):
            handlers.update(group.handlers())
        handlers[OP_TOO_LARGE] = text.too_large
        self.handlers = handlers
        self.connections: set[_Connection] = self.ctx.connections
        self._server: asyncio.base_events.Server | None = None
        self._reaper: asyncio.Task | None = None

    @property
    def port(self) -> int:
        """Return the port listened on (useful with ``port=0``)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Start listening."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.settings.host, self.settings.port,
            reuse_address=True, backlog=1024,
        )
        self._reaper = loop.create_task(self._reap())
        self.ctx.listen_fds = [sock.fileno() for sock in self._server.sockets]
        self.ctx.port = self.port
        log.info("cachedeps serve listening on %s:%d (max memory %d bytes, item max %d bytes, "
                 "max connections %d)", self.settings.host, self.port, self.settings.max_memory,
                 self.settings.item_max, self.settings.max_conns)

    async def stop(self) -> None:
        """Stop listening, close every connection and the store."""
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.closing = True
                assert conn.transport is not None  # only connected clients are listed
                conn.transport.close()
            await self._server.wait_closed()
            self._server = None
        self.store.close()
        log.info("cachedeps serve stopped")

    async def _reap(self) -> None:
        # Drop idle clients and clients that stopped reading their replies.
        settings = self.settings
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                stalled = conn.paused_at and now - conn.paused_at > settings.write_timeout
                idle = settings.idle_timeout and now - conn.last_seen > settings.idle_timeout
                if idle and not stalled:
                    self.ctx.idle_kicks += 1
                if stalled or idle:
                    log.info("dropping %s: %s", conn._peer(), "not reading replies" if stalled else "idle")
                    conn.closing = True
                    assert conn.transport is not None  # only connected clients are listed
                    conn.transport.abort()


async def _serve(settings: ServerSettings) -> None:
    server = Server(settings)
    try:
        await server.start()
    except BaseException:
        server.store.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("cachedeps serve shutting down")
    await server.stop()


def serve(settings: ServerSettings) -> None:
    """Run the server until SIGTERM or SIGINT (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings))
        return
    uvloop.run(_serve(settings))
