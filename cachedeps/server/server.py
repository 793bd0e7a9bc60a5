"""``cachedeps serve``: the embedded store on the memcache text, meta and binary protocols.

Event loops (uvloop when installed) serve the connections: the main one accepts and hands
each new connection, round robin, to one of ``threads`` loops (the main one among them),
as memcached hands them to its worker threads. Each read is parsed into commands, the
commands run against the store under one lock (``ServerContext.lock``: one command at a
time, as the handlers assume), and their replies go out in one write, outside the lock, so
that the loops' socket work runs in parallel. Memory stays bounded: the parser buffers at most one command line or data
block, and a connection whose client does not read its replies stops being read (and is
dropped after ``write_timeout``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import threading
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
                 "paused_at", "closing", "backlog", "_first", "lock", "loop", "fd", "get_key")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ctx = server.ctx
        self.transport: asyncio.Transport | None = None
        self.parser = TextParser(self.ctx.settings.item_max)
        self.handlers = server.handlers
        self.get_key = server.get_key
        self.binary: BinaryConnection | None = None
        self.last_seen = time.monotonic()
        self.paused_at = 0.0
        self.closing = False
        self.backlog: tuple[list[tuple], int] | None = None
        self._first = True
        self.lock = self.ctx.lock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd = -1

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        ctx = self.ctx
        with self.lock:
            refuse = ctx.curr_connections >= ctx.settings.max_conns
            if refuse:
                ctx.rejected_connections += 1
            else:
                ctx.curr_connections += 1
                ctx.total_connections += 1
                self.server.connections.add(self)
        if refuse:
            log.warning("refusing %s: %d connections open (--max-conns)", self._peer(),
                        ctx.curr_connections)
            transport.write(_TOO_MANY)
            transport.close()
            self.closing = True
            return
        transport.set_write_buffer_limits(high=ctx.settings.write_high_water)
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        log.debug("connection from %s (%d open)", self._peer(), ctx.curr_connections)

    def connection_lost(self, exc) -> None:
        with self.lock:
            known = self in self.server.connections
            if known:
                self.server.connections.discard(self)
                self.ctx.curr_connections -= 1
        if known:
            log.debug("connection from %s closed%s", self._peer(), f": {exc}" if exc else "")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_seen = time.monotonic()
        if self._first:
            self._first = False
            if data[:1] == b"\x80":
                self.binary = BinaryConnection(self.ctx, self.server.handlers)
        if self.binary is not None:
            self._run_binary(data)
            return
        if data[:4] == b"get " and data[-2:] == b"\r\n" and self.parser.idle:
            # The commonest read, one "get <key>\r\n", without the parser's lists.
            key = data[4:-2]
            if key and b" " not in key and b"\n" not in key:
                ctx = self.ctx
                with self.lock:
                    ctx.bytes_read += len(data)
                    try:
                        reply = self.get_key(key)
                    except Exception:
                        log.exception("error answering b'get' from %s", self._peer())
                        reply = _INTERNAL
                    ctx.bytes_written += len(reply)
                self._send([reply], False)
                return
        self._run(self.parser.feed(data), 0, len(data))

    def _run_binary(self, data: bytes) -> None:
        binary = self.binary
        assert binary is not None  # set by data_received before any binary request runs
        ctx = self.ctx
        while True:
            with self.lock:
                ctx.bytes_read += len(data)
                out, close = binary.feed(data)
                for reply in out:
                    ctx.bytes_written += len(reply)
            data = b""
            self._send(out, close)
            if close or not binary.pending:
                return
            if self.paused_at:
                self.backlog = _BINARY_BACKLOG
                return

    def _run(self, commands: list[tuple], start: int, nread: int = 0) -> None:
        """Execute ``commands[start:]``, writing replies in batches of bounded size.

        The commands run under the context's lock; the writes happen outside it. When the
        transport's buffer passes its high-water mark the rest waits in ``backlog`` until
        the client has read enough (:meth:`resume_writing`).
        """
        handlers = self.handlers
        out: list[bytes] = []
        size = 0
        limit = self.ctx.settings.write_high_water
        i = start
        n = len(commands)
        lock = self.lock
        ctx = self.ctx
        with lock:
            ctx.bytes_read += nread
            while i < n:
                op, args, payload = commands[i]
                i += 1
                handler = handlers.get(op)
                if handler is None:
                    if op == OP_REPLY:
                        if not args:
                            out.append(payload)
                            size += len(payload)
                        continue
                    if op == OP_CLOSE:
                        log.info("closing %s: %s", self._peer(), args.decode())
                        ctx.bytes_written += size
                        self._send(out, True)
                        return
                    if len(args) > 1 and args[-1][:5] == b"HTTP/":
                        # As memcached: an HTTP request closes the connection, unanswered,
                        # and the replies not yet written for the same read are dropped.
                        self._send([], True)
                        return
                    out.append(_ERROR)
                    size += len(_ERROR)
                    continue
                try:
                    reply = handler(args, payload)
                except Exception:
                    log.exception("error answering %r from %s", op, self._peer())
                    reply = _INTERNAL
                if reply is None:
                    ctx.bytes_written += size
                    self._send(out, True)
                    return
                if reply:
                    out.append(reply)
                    size += len(reply)
                    if size > limit and i < n:
                        ctx.bytes_written += size
                        lock.release()
                        try:
                            self._send(out, False)
                        finally:
                            lock.acquire()
                        out = []
                        size = 0
                        if self.paused_at:
                            self.backlog = (commands, i)
                            return
            ctx.bytes_written += size
        self._send(out, False)

    def _send(self, out: list[bytes], close: bool) -> None:
        transport = self.transport
        assert transport is not None  # set by connection_made, before any data arrives
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            fd = self.fd
            if fd >= 0 and not transport.get_write_buffer_size():
                # Nothing queued: write straight to the socket, without the GIL, so that
                # the loops' writes run in parallel; what does not fit goes to the transport.
                try:
                    sent = os.write(fd, data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:  # the transport meets the error on its own write and closes
                    sent = 0
                if sent < len(data):
                    transport.write(memoryview(data)[sent:] if sent else data)
            else:
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


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _adopt(server: Server, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(lambda: _Connection(server), sock)
    except OSError as exc:  # the client left before the transport was made
        log.debug("connection lost before it was served: %s", exc)
        sock.close()


class _Worker:
    """A thread running its own event loop for the connections the acceptor hands it."""

    def __init__(self, server: Server, index: int) -> None:
        self.server = server
        self.loop = _new_loop()
        self._reaper: asyncio.Task | None = None
        self.thread = threading.Thread(target=self._main, name=f"cachedeps-serve-{index}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._reaper = self.loop.create_task(self.server._reap(self.loop))
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def adopt(self, sock: socket.socket) -> None:
        """Serve ``sock`` on this worker's loop (called from the acceptor's thread)."""
        self.loop.call_soon_threadsafe(self.loop.create_task, _adopt(self.server, sock))

    async def _close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        self.server._close_connections(self.loop)
        await asyncio.sleep(0.05)

    def stop(self) -> None:
        """Close this worker's connections and end its thread."""
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


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
        self.get_key = text.get_key
        self.connections: set[_Connection] = self.ctx.connections
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._next: itertools.cycle | None = None
        self._server: asyncio.AbstractServer | None = None
        self._reaper: asyncio.Task | None = None

    @property
    def port(self) -> int:
        """Return the port listened on (useful with ``port=0``)."""
        assert self._listener is not None
        return self._listener.getsockname()[1]

    async def start(self) -> None:
        """Start listening (and the worker threads past the first)."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(1024)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._loop = loop
        if settings.threads > 1:
            self._workers = [_Worker(self, i) for i in range(1, settings.threads)]
            self._next = itertools.cycle([None, *self._workers])
            loop.add_reader(listener.fileno(), self._accept)
        else:
            self._server = await loop.create_server(lambda: _Connection(self), sock=listener,
                                                    backlog=1024)
        self._reaper = loop.create_task(self._reap(loop))
        self.ctx.listen_fds = [listener.fileno()]
        self.ctx.port = self.port
        log.info("cachedeps serve listening on %s:%d (max memory %d bytes, item max %d bytes, "
                 "max connections %d, threads %d)", settings.host, self.port, settings.max_memory,
                 settings.item_max, settings.max_conns, max(settings.threads, 1))

    def _accept(self) -> None:
        # Hand each new connection to the next loop, as memcached's dispatcher does.
        listener = self._listener
        assert listener is not None and self._next is not None and self._loop is not None
        for _ in range(64):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, for one: try again on the next call
                log.warning("cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            worker = next(self._next)
            if worker is None:
                self._loop.create_task(_adopt(self, sock))
            else:
                worker.adopt(sock)

    def _close_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        for conn in list(self.connections):
            if conn.loop is loop:
                conn.closing = True
                assert conn.transport is not None  # only connected clients are listed
                conn.transport.close()

    async def stop(self) -> None:
        """Stop listening, close every connection and the store."""
        if self._reaper is not None:
            self._reaper.cancel()
        if self._listener is not None:
            assert self._loop is not None
            if self._server is not None:
                self._server.close()
            else:
                self._loop.remove_reader(self._listener.fileno())
                self._listener.close()
            self._listener = None
            for worker in self._workers:
                worker.stop()
            self._workers = []
            self._close_connections(self._loop)
            if self._server is not None:
                await self._server.wait_closed()
                self._server = None
            else:
                await asyncio.sleep(0.05)
        self.store.close()
        log.info("cachedeps serve stopped")

    async def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        # Drop this loop's idle clients and clients that stopped reading their replies.
        settings = self.settings
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.loop is not loop:
                    continue
                stalled = conn.paused_at and now - conn.paused_at > settings.write_timeout
                idle = settings.idle_timeout and now - conn.last_seen > settings.idle_timeout
                if stalled or idle:
                    if idle and not stalled:
                        with self.ctx.lock:
                            self.ctx.idle_kicks += 1
                    log.info("dropping %s: %s", conn._peer(), "not reading replies" if stalled else "idle")
                    conn.closing = True
                    assert conn.transport is not None  # only connected clients are listed
                    conn.transport.abort()


async def _serve(settings: ServerSettings) -> None:
    stop = asyncio.Event()
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def _on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    # Before listening: a client may send SIGTERM as soon as the port answers.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig)
    server = Server(settings)
    try:
        await server.start()
    except BaseException:
        server.store.close()
        raise
    await stop.wait()
    log.info("cachedeps serve shutting down: received %s", received[0] if received else "a stop request")
    await server.stop()


def serve(settings: ServerSettings) -> None:
    """Run the server until SIGTERM or SIGINT (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings))
        return
    uvloop.run(_serve(settings))
