"""The Redis store against real redis-servers (one, and a 3-node cluster): the conformance
suite, native dependency trees, faults, bad input and the one-round-trip hit."""

from __future__ import annotations

import time

import pytest

from cachedeps.config import RedisConfig, open_store, parse_url
from cachedeps.errors import BackendError, BackendUnavailable, ConfigurationError, ValueTooLarge
from cachedeps.testing import StoreConformance
from tests.conftest import free_port

pytestmark = pytest.mark.redis


def _open(url: str, **extra):
    return open_store(url + ("&" if "?" in url else "?") + "timeout=5&connect_timeout=5")


class TestRedisConformance(StoreConformance):
    @pytest.fixture
    def store(self, redis_server):
        store = _open(redis_server.url)
        store.flush_all()
        yield store
        store.close()

    @pytest.fixture
    def small_store(self, redis_factory):
        server = redis_factory(maxmemory="8mb", extra=("--maxmemory-samples", "10"))
        store = _open(server.url)
        yield store
        store.close()

    def test_eviction_keeps_recent_items(self, small_store):
        """Redis' LRU clock counts whole seconds: keys written within one second are equally
        old to it, and it evicts among them at random. So the old keys are written a second
        before the rest, then the store is overfilled twice over."""
        limit = small_store.stats()["limit_maxbytes"]
        value = b"e" * 20_000
        first = limit // len(value) // 3
        for i in range(first):
            small_store.set(f"conf:ev:{i}", value)
        time.sleep(1.2)
        count = first + 2 * limit // len(value)
        for i in range(first, count):
            small_store.set(f"conf:ev:{i}", value)
        assert small_store.get(f"conf:ev:{count - 1}") == value
        assert small_store.get("conf:ev:0") is None
        stats = small_store.stats()
        assert stats["evictions"] > 0
        assert stats["bytes"] <= limit

    @pytest.fixture
    def dead_store(self):
        store = open_store(f"redis://127.0.0.1:{free_port()}/0?connect_timeout=0.5&timeout=0.5")
        yield store
        store.close()


class TestRedisClusterConformance(StoreConformance):
    @pytest.fixture
    def store(self, redis_cluster):
        store = _open(redis_cluster.url)
        store.flush_all()
        yield store
        store.close()

    @pytest.fixture
    def dead_store(self):
        # opening needs no server: a cluster unreachable at start-up is misses, not a crash
        store = open_store(f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
                           "?connect_timeout=0.5&timeout=0.5")
        yield store
        store.close()


@pytest.fixture(params=["single", "cluster"])
def any_store(request):
    if request.param == "single":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("redis_cluster").url
    store = _open(url)
    store.flush_all()
    yield store
    store.close()


def test_native_trees_purge_recursively(any_store):
    from cachedeps.api import DependencyStore

    store = any_store
    assert isinstance(store, DependencyStore)
    store.set_many({"d:q1": b"1", "d:q2": b"2", "d:frag": b"f", "d:view": b"v", "l:q1": b"lease", "d:other": b"o"})
    store.link("t:book:1", ["d:q1", "d:q2"])
    store.link("d:q1", ["d:frag", "l:q1"])
    store.link("d:frag", ["d:view"])
    store.link("d:view", ["d:q1"])  # a cycle ends
    assert store.dependents("t:book:1") == ["d:q1", "d:q2"]
    assert store.invalidate(["t:book:1"]) == 5
    assert store.get_many(["d:q1", "d:q2", "d:frag", "d:view", "l:q1", "d:other"]) == {"d:other": b"o"}
    assert store.dependents("t:book:1") == []
    assert store.invalidate(["t:book:1"]) == 0


def test_purge_fan_out_is_bounded_per_call_and_completes(redis_server):
    store = _open(redis_server.url + "?purge_batch=100&max_dependents=2000")
    store.flush_all()
    children = [f"d:c{i}" for i in range(1050)]
    store.set_many({c: b"x" for c in children})
    store.link("t:big", children)
    calls = []
    script = store._purge_script
    store._purge_script = lambda **kw: calls.append(len(kw["keys"])) or script(**kw)
    assert store.invalidate(["t:big"]) == 1050
    assert len(calls) == 11  # 100 dependents per call, then the empty remainder
    assert store.get_many(children) == {}
    store.close()


def test_a_keys_dependents_are_bounded_and_their_entries_never_served_after_a_write(redis_server):
    """A key's set keeps at most max_dependents links (the writer waits for the purge of all
    of them); entries whose link was dropped are refused by readers' validation instead."""
    import cachedeps
    from cachedeps.api import NO_VALUE

    store = _open(redis_server.url + "?max_dependents=100")
    store.flush_all()
    store.link("t:hot", [f"d:c{i}" for i in range(250)])
    store.link_many(["t:hot", "t:other"], [f"d:m{i}" for i in range(30)])
    assert len(store.dependents("t:hot")) == 100
    assert len(store.dependents("t:other")) == 30
    unbounded = _open(redis_server.url + "?max_dependents=0")
    unbounded.link("t:all", [f"d:c{i}" for i in range(250)])
    assert len(unbounded.dependents("t:all")) == 250

    writer, reader = cachedeps.Cache(store), cachedeps.Cache(store)
    writer.poll()
    reader.poll()
    for i in range(300):
        writer.set(f"page{i}", i, depends_on=["book:1"])
    assert reader.get("page299") == 299
    writer.invalidate("book:1")
    assert writer.stats()["purges"] <= 100  # the rest are still stored...
    reader.poll()
    assert [k for k in range(300) if reader.get(f"page{k}") is not NO_VALUE] == []
    assert [k for k in range(300) if writer.get(f"page{k}") is not NO_VALUE] == []  # ...and refused
    store.close()
    unbounded.close()


def test_links_expire_with_their_longest_lived_dependent(redis_server):
    store = _open(redis_server.url)
    store.link("t:exp", ["d:a"], expire=1)
    store.link("t:exp", ["d:b"], expire=100)
    ttl = store._client.pttl("\x01t:exp")
    assert 90_000 < ttl <= 100_000
    store.link("t:exp", ["d:c"], expire=1)  # never shortens
    assert store._client.pttl("\x01t:exp") > 90_000
    store.link("t:exp", ["d:d"], expire=0)
    assert store._client.pttl("\x01t:exp") == -1
    store.close()


def test_cluster_dependency_sets_share_their_item_slot(redis_cluster):
    from cachedeps.store._redis_wire import slot as _slot

    store = _open(redis_cluster.url)
    for key in ("d:abc", "t:books:{x}", "l}weird{", "d:ключ"):
        assert _slot(store._set_key(key).encode()) == _slot(key.encode())
    store.close()


def test_one_round_trip_per_hit(redis_server, monkeypatch):
    import redis.connection

    store = _open(redis_server.url)
    store.set("rt:k", b"v", flags=7)
    store.get("rt:k")  # a connection in the pool
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert store.get("rt:k") == b"v"
    assert len(sent) == 1
    assert store.get_item("rt:k").flags == 7
    assert store.get_many(["rt:k", "rt:none"]) == {"rt:k": b"v"}
    assert len(sent) == 3
    store.close()


def test_engine_hit_is_one_round_trip(redis_server, tmp_path, monkeypatch):
    import redis.connection

    from cachedeps import Cache
    from tests.core._support import sqlite_feed, write

    store = _open(redis_server.url)
    store.flush_all()
    conn, feed = sqlite_feed(tmp_path / "feed.db")
    cache = Cache(store, feed=feed, namespace="rt:")
    cache.poll(conn)
    cache.set("answer", 42, depends_on=["book:1"])
    assert cache.get("answer") == 42
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert cache.get("answer") == 42
    assert len(sent) == 1
    monkeypatch.undo()
    write(conn, feed, ["book:1"], cache=cache)  # the purge deletes the entry
    assert store.get_many([k for k in map(bytes.decode, store._client.keys("d:*"))]) == {}
    assert cache.get("answer", None) is None
    store.close()


def test_restart_and_flushall_are_misses(redis_factory):
    server = redis_factory()
    store = _open(server.url)
    store.set("k", b"v")
    store.link("t:k", ["k"])
    server.stop()
    with pytest.raises(BackendUnavailable) as info:
        store.get("k")
    assert info.value.address == server.address and server.address in str(info.value)
    server.start()
    for _ in range(2):  # the first call may meet the pool's dead connection
        try:
            assert store.get("k") is None
            break
        except BackendUnavailable:
            pass
    store.set("k", b"v2")
    server.cli("flushall")
    assert store.get("k") is None
    assert store.invalidate(["t:k"]) == 0
    store.close()


def test_evictions_take_entries_and_sets_without_errors(redis_factory):
    server = redis_factory(maxmemory="4mb")
    store = _open(server.url)
    for i in range(600):
        store.set(f"d:e{i}", b"x" * 20_000)
        store.link(f"t:e{i}", [f"d:e{i}"])
    assert store.stats()["evictions"] > 0
    # Redis evicts by an approximated LRU (sampling keys): which entries went varies, not
    # that some did and that reading them is a plain miss
    assert sum(store.get(f"d:e{i}") is None for i in range(600)) > 0
    assert store.invalidate([f"t:e{i}" for i in range(600)]) <= 600
    store.close()


def test_value_over_the_limit_is_refused_never_truncated(redis_server):
    store = _open(redis_server.url + "?item_max=1k")
    with pytest.raises(ValueTooLarge, match="item_max"):
        store.set("big", b"x" * 1025)
    store.set("big", b"x" * 1000)
    with pytest.raises(ValueTooLarge, match="item_max"):
        store.append("big", b"y" * 100)
    assert store.get("big") == b"x" * 1000
    with pytest.raises(ValueTooLarge):
        store.set_many({"ok": b"1", "big2": b"x" * 2000})
    assert store.get("big2") is None
    store.close()


def test_read_only_replica_and_refused_script_name_the_address(redis_factory):
    primary = redis_factory()
    replica = redis_factory(extra=("--replicaof", "127.0.0.1", str(primary.port)))
    _open(primary.url).set("k", b"v")
    store = _open(replica.url)
    deadline = time.monotonic() + 10
    while store.get("k") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    token = store.gets("k")[1]
    writes = (lambda: store.set("k", b"v"), lambda: store.cas("k", b"w", token), lambda: store.append("k", b"x"),
              lambda: store.link("t:k", ["k"]))
    for write in writes:
        with pytest.raises(BackendError, match="read-only replica") as info:
            write()
        assert replica.address in str(info.value)
    store.close()


def test_noscript_becomes_a_cachedeps_error(redis_server, monkeypatch):
    import redis.exceptions

    store = _open(redis_server.url)

    def refuse(*a, **kw):
        raise redis.exceptions.NoScriptError("No matching script")

    monkeypatch.setattr(store, "_cas_script", refuse)
    with pytest.raises(BackendError, match="NOSCRIPT") as info:
        store.cas("k", b"v", 1)
    assert redis_server.address in str(info.value)
    store.close()


def test_cluster_url_against_a_single_server(redis_server):
    with pytest.raises(ConfigurationError, match="not in cluster mode"):
        open_store(f"redis+cluster://{redis_server.address}?timeout=2")


def test_single_url_against_a_cluster_node(redis_cluster):
    node = redis_cluster.nodes[0]
    store = _open(node.url)
    with pytest.raises(ConfigurationError, match="redis\\+cluster"):
        for i in range(50):  # some key lives on another node
            store.set(f"k{i}", b"v")
    store.close()


def test_prefix_stats(redis_server):
    store = _open(redis_server.url)
    store.flush_all()
    store.set("books:1", b"v" * 100)
    store.get("books:1")
    store.get("books:2")
    store.link("books:1", ["d:x"])
    stats = store.prefix_stats()
    assert stats["books"]["items"] == 1 and stats["books"]["hits"] == 1 and stats["books"]["misses"] == 1
    assert stats["books"]["bytes"] >= 100 and stats["(dependencies)"]["items"] == 1
    store.close()


@pytest.mark.parametrize("url, message", [
    ("redis://h:70000/0", "port must be a number from 1 to 65535"),
    ("redis://h:abc", "port must be a number"),
    ("redis://h:6379/0?timeot=1s", "Unknown option 'timeot'.*accepted: connect_timeout, db, item_max"),
    ("redis://h:6379/0?ssl_ca_certs=/x", "Unknown option 'ssl_ca_certs'"),
    ("rediss://h:6379/0?ssl_cert_reqs=maybe", "expected none, optional or required"),
    ("redis://h:6379/zero", "database number"),
    ("redis://a:1,b:2", "redis\\+cluster://"),
    ("redis+cluster://a:1/3", "only database 0"),
    ("redis://h:6379/0?item_max=1GB", "512 MiB"),
    ("unix://", "unix:///path"),
])
def test_bad_urls_name_the_input_and_what_is_accepted(url, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_url(url)


def test_urls():
    config = parse_url("rediss://user:s%40cret@cache.example.com:6380/2?ssl_cert_reqs=none&timeout=500ms")
    assert isinstance(config, RedisConfig)
    assert config.tls and config.db == 2 and config.password == "s@cret" and config.username == "user"
    assert dict(config.ssl_options) == {"ssl_cert_reqs": "none"} and config.timeout == 0.5
    assert "s@cret" not in repr(config) and "s@cret" not in config.url_for_errors
    assert parse_url("redis://h").servers == (("h", 6379),)
    assert parse_url("unix:///run/redis.sock?db=3") == RedisConfig(unix_path="/run/redis.sock", db=3)
    cluster = parse_url("redis+cluster://h1:7000,h2:7001")
    assert cluster.cluster and cluster.servers == (("h1", 7000), ("h2", 7001))


def test_unix_socket(redis_factory, tmp_path):
    sock = tmp_path / "r.sock"
    redis_factory(extra=("--unixsocket", str(sock)))
    time.sleep(0.1)
    store = open_store(f"unix://{sock}?db=1")
    store.set("u", b"v")
    assert store.get("u") == b"v"
    store.close()


def test_missing_redis_py_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "redis" or name.startswith("redis."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ConfigurationError, match=r"cachedeps\[redis\]"):
        open_store("redis://127.0.0.1:1/0")


def test_rediss_with_tls_options(redis_factory, tmp_path):
    import shutil
    import subprocess

    from tests.conftest import RedisProcess

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = RedisProcess()
    server.extra = ("--port", "0", "--tls-port", str(server.port), "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    server.start()
    try:
        store = open_store(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required&timeout=5")
        store.set("tls", b"v", flags=2)
        assert store.get_item("tls")[:2] == (b"v", 2)
        store.close()
        plain = open_store(f"redis://127.0.0.1:{server.port}/0?timeout=1&connect_timeout=1")
        with pytest.raises(BackendUnavailable):
            plain.get("tls")
        plain.close()
    finally:
        server.stop()


def test_cluster_node_down_is_unavailable_then_misses(redis_cluster_factory):
    from cachedeps.store._redis_wire import slot as _slot

    cluster = redis_cluster_factory()
    store = _open(cluster.url)
    keys = [f"k{i}" for i in range(30)]
    store.set_many({k: b"v" for k in keys})
    for k in keys:
        store.link("t:" + k, [k])
    down = cluster.nodes[1]
    owner = {k: store._client.get_node_from_key(k).port for k in keys}
    lost = [k for k in keys if owner[k] == down.port]
    assert lost and len(lost) < len(keys)
    down.stop()
    with pytest.raises(BackendUnavailable) as info:
        store.get(lost[0])
    assert str(down.port) in str(info.value)
    with pytest.raises(BackendUnavailable):
        store.invalidate(["t:" + lost[0]])
    down.start()  # its slots come back (nodes.conf), its items do not
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            got = store.get_many(keys)
            break
        except BackendUnavailable:
            time.sleep(0.2)
    assert set(got) == set(keys) - set(lost)
    # a link lives in its parent's slot: one on the node that went down went with it
    kept = [k for k in keys if k not in lost and store._client.get_node_from_key("t:" + k).port != down.port]
    assert store.invalidate(["t:" + k for k in keys]) == len(kept)
    store.close()


def test_an_entry_is_linked_under_all_its_parents_in_one_round_trip(redis_server, monkeypatch):
    import redis.connection

    from cachedeps.deps import DependencyTrees

    store = _open(redis_server.url)
    store.flush_all()
    trees = DependencyTrees(store, namespace="ns:")
    trees.link("d:ns:warm", ["x"])
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    trees.link("d:ns:q", ["book:1", "book:2", "author:3", "book.author_id=3"], expire=60)
    assert len(sent) == 1
    monkeypatch.undo()
    store.set("d:ns:q", b"v")
    assert store.dependents(trees.node("author:3")) == ["d:ns:q"]
    assert 0 < store._client.pttl(store._set_key(trees.node("book:1"))) <= 60_000
    assert trees.purge(["book.author_id=3"]) == 1 and store.get("d:ns:q") is None
    store._client.script_flush()  # as after a restart: the script is loaded again, once
    trees.link("d:ns:r", ["book:9"])
    assert store.dependents(trees.node("book:9")) == ["d:ns:r"]
    store.close()


def test_pool_exhausted_names_pool_size(redis_server):
    store = open_store(redis_server.url + "?pool_size=1&timeout=0.2")
    held = store._client.connection_pool.get_connection()
    try:
        with pytest.raises(BackendUnavailable, match="pool_size"):
            store.get("k")
    finally:
        store._client.connection_pool.release(held)
    assert store.get("k") is None
    store.close()
