"""Shared fixtures: real servers started by the test session, skipped with a reason on a
machine without them and failing under CI (``CI=true``), where they must exist."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_DSN = os.environ.get("CACHEDEPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false; under CI, fail instead, since CI installs everything."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true: .ci/run installs and starts it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class MemcachedProcess:
    """A memcached on a free loopback port; can be killed and restarted on the same port."""

    def __init__(self, memory_mb: int = 64, extra: tuple[str, ...] = ()) -> None:
        self.binary = shutil.which("memcached") or "/usr/bin/memcached"
        self.port = free_port()
        self.memory_mb = memory_mb
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"memcache://{self.address}"

    def start(self) -> "MemcachedProcess":
        args = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                "-m", str(self.memory_mb), "-t", "2", "-c", "1024", *self.extra]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def memcached_available() -> bool:
    return bool(shutil.which("memcached") or os.path.exists("/usr/bin/memcached"))


@pytest.fixture(scope="session")
def memcached():
    """One memcached for the session (flushed by tests that need it empty)."""
    require(memcached_available(), "memcached is not installed (apt-get install memcached)")
    server = MemcachedProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memcached_pool():
    """Three memcached servers, for consistent-hashing tests."""
    require(memcached_available(), "memcached is not installed (apt-get install memcached)")
    servers = [MemcachedProcess().start() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def memcached_factory():
    """Start private memcached servers (to kill, restart or starve of memory)."""
    require(memcached_available(), "memcached is not installed (apt-get install memcached)")
    started: list[MemcachedProcess] = []

    def make(memory_mb: int = 64, extra: tuple[str, ...] = ()) -> MemcachedProcess:
        server = MemcachedProcess(memory_mb, extra).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


def postgres_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """A DSN for the test PostgreSQL; skip (or fail under CI) when it is not running."""
    require(postgres_available(), f"PostgreSQL is not reachable at {PG_DSN}")
    return PG_DSN
