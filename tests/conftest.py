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
#: the test MariaDB/MySQL database (user, password, host, port and database from the URL)
MYSQL_URL = os.environ.get("CACHEDEPS_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


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


def mysql_params(url: str = MYSQL_URL) -> dict:
    """Return ``MYSQL_URL`` as keyword arguments of mysqlclient's/PyMySQL's ``connect``."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": unquote(parts.username or "root"), "password": unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or "test", "charset": "utf8mb4"}


def mysql_sqlalchemy_url(database: str, driver: str = "pymysql") -> str:
    """Return the SQLAlchemy URL of ``database`` on the test MariaDB (PyMySQL by default)."""
    p = mysql_params()
    auth = p["user"] + (f":{p['password']}" if p["password"] else "")
    return f"mysql+{driver}://{auth}@{p['host']}:{p['port']}/{database}?charset=utf8mb4"


def mysql_connect(**kwargs):
    """Open a DB-API connection to the test MariaDB (mysqlclient, else PyMySQL)."""
    params = {**mysql_params(), **kwargs}
    try:
        import MySQLdb
    except ImportError:
        import pymysql

        return pymysql.connect(**params)
    return MySQLdb.connect(**params)


def mysql_available() -> bool:
    try:
        mysql_connect(connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The test MariaDB's URL; skip (or fail under CI) when it is not running."""
    require(mysql_available(), f"MariaDB/MySQL is not reachable at {MYSQL_URL} "
            "(or neither mysqlclient nor PyMySQL is installed: pip install 'cachedeps[mysql]')")
    return MYSQL_URL


class RedisProcess:
    """A redis-server on a free loopback port (never the shared 6379), without persistence;
    can be stopped and restarted on the same port (empty again, as after a crash)."""

    def __init__(self, maxmemory: str = "0", cluster: bool = False, extra: tuple[str, ...] = ()) -> None:
        import tempfile

        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = _cluster_port() if cluster else free_port()
        self.maxmemory = maxmemory
        self.cluster = cluster
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix=f"cachedeps-redis-{self.port}-")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def start(self) -> "RedisProcess":
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--maxmemory", self.maxmemory,
                "--maxmemory-policy", "allkeys-lru", "--protected-mode", "no", *self.extra]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf",
                     "--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def cli(self, *args: str) -> str:
        return subprocess.run([shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(self.port),
                               *args], capture_output=True, text=True, timeout=30).stdout

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def redis_available() -> bool:
    return bool(shutil.which("redis-server") and shutil.which("redis-cli"))


_NO_REDIS = "redis-server is not installed (apt-get install redis-server)"


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session on a free port (flushed by tests that need it empty)."""
    require(redis_available(), _NO_REDIS)
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'cachedeps[redis]')")
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def redis_factory():
    """Start private redis-servers (to kill, restart, flush or starve of memory)."""
    require(redis_available(), _NO_REDIS)
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'cachedeps[redis]')")
    started: list[RedisProcess] = []

    def make(maxmemory: str = "0", extra: tuple[str, ...] = ()) -> RedisProcess:
        server = RedisProcess(maxmemory, extra=extra).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


class RedisCluster:
    """Three cluster-enabled redis-servers joined by ``redis-cli --cluster create``."""

    def __init__(self, nodes: list[RedisProcess]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)


def _form_cluster() -> RedisCluster:
    nodes = [RedisProcess(cluster=True).start() for _ in range(3)]
    made = subprocess.run([shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                           *[n.address for n in nodes], "--cluster-replicas", "0", "--cluster-yes"],
                          capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all("cluster_state:ok" in n.cli("cluster", "info") for n in nodes):
            return RedisCluster(nodes)
        time.sleep(0.1)
    for n in nodes:
        n.stop()
    require(False, f"could not form a 3-node Redis Cluster: {made.stdout[-500:]} {made.stderr[-500:]}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-node Redis Cluster on free ports; skipped with the reason when it cannot form."""
    require(redis_available(), _NO_REDIS)
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'cachedeps[redis]')")
    cluster = _form_cluster()
    yield cluster
    for n in cluster.nodes:
        n.stop()


@pytest.fixture
def redis_cluster_factory():
    """Form private 3-node clusters (to kill or restart a node)."""
    require(redis_available(), _NO_REDIS)
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'cachedeps[redis]')")
    formed: list[RedisCluster] = []

    def make() -> RedisCluster:
        formed.append(_form_cluster())
        return formed[-1]

    yield make
    for cluster in formed:
        for n in cluster.nodes:
            n.stop()
