"""Fixtures: ``cachedeps serve`` started as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import free_port, wait_port


class ServeProcess:
    """``python -m cachedeps serve`` on a free port, with its log captured."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServeProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cachedeps", "serve", "--port", str(self.port), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_port(self.port)
        return self

    def stop(self) -> str:
        """Stop with SIGTERM and return the log."""
        if self.proc is None:
            return ""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.proc = None
        return out.decode(errors="replace")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


@pytest.fixture(scope="session")
def serve():
    """One ``cachedeps serve`` for the session."""
    server = ServeProcess("--max-memory", "32MB").start()
    yield server
    server.stop()


@pytest.fixture
def serve_factory():
    """Start private servers with their own options."""
    started: list[ServeProcess] = []

    def make(*extra: str) -> ServeProcess:
        server = ServeProcess(*extra).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


# A command pair whose reply cannot come from anything else: marks the end of the replies.
_SENTINEL = b"ms __end__ 1 q\r\nX\r\nmg __end__ v k\r\n"
_SENTINEL_REPLY = b"VA 1 k__end__\r\nX\r\n"


def exchange(port: int, data: bytes, expect_close: bool = False, settle: float = 0.05,
             timeout: float = 2.0, bytewise: bool = False) -> bytes:
    """Send ``data`` on a new connection and return everything answered until quiet.

    ``bytewise``: send it one byte per write (TCP_NODELAY), so that the server sees every
    command split at every point.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        payload = data + (b"" if expect_close else _SENTINEL)
        try:
            if bytewise:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(len(payload)):
                    sock.sendall(payload[i:i + 1])
            else:
                sock.sendall(payload)
        except OSError:  # closed by the server part way: read what it answered
            pass
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:  # closed with our bytes unread: closed all the same
                break
            if not chunk:
                break
            out += chunk
            if not expect_close and out.endswith(_SENTINEL_REPLY):
                return out[:-len(_SENTINEL_REPLY)]
        return out
