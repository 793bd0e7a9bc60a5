"""The running server: real clients, limits, timeouts, shutdown, garbage from many sockets."""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest

from tests.server.conftest import exchange

pymemcache = pytest.importorskip("pymemcache")
from pymemcache.client.base import Client  # noqa: E402


@pytest.fixture
def client(serve):
    c = Client(("127.0.0.1", serve.port), connect_timeout=2, timeout=5, default_noreply=False)
    c.flush_all()
    yield c
    c.close()


def test_pymemcache_round_trips(client):
    assert client.set("a", b"1", expire=0) is True
    assert client.get("a") == b"1"
    assert client.get_many(["a", "missing"]) == {"a": b"1"}
    value, cas = client.gets("a")
    assert client.cas("a", b"2", cas) is True
    assert client.cas("a", b"3", cas) is False
    assert client.incr("a", 40) == 42
    assert client.decr("a", 100) == 0
    assert client.add("a", b"x") is False
    assert client.replace("missing", b"x") is False
    assert client.append("a", b"!") is True and client.get("a") == b"0!"
    assert client.touch("a", 100) is True
    assert client.delete("a") is True and client.get("a") is None
    assert client.incr("missing", 1) is None


def test_incr_wraps_at_64_bits(client):
    client.set("n", str(2**64 - 1).encode())
    assert client.incr("n", 2) == 1


def test_expiry_and_flush_delay(client):
    client.set("short", b"x", expire=1)
    client.set("long", b"y")
    time.sleep(1.2)
    assert client.get("short") is None
    client.flush_all(delay=1)
    assert client.get("long") == b"y"
    time.sleep(1.2)
    assert client.get("long") is None


def test_version_names_the_server(serve):
    assert exchange(serve.port, b"version\r\n").startswith(b"VERSION 1.6.21 cachedeps/")


def test_dependency_extension_invalidates_trees(client, serve):
    for key in ("q:1", "view:1", "frag:1", "other"):
        client.set(key, b"v")
    reply = exchange(serve.port, b"cd_link book:1 q:1\r\ncd_link q:1 view:1 frag:1\r\n"
                                  b"cd_dependents q:1\r\n")
    assert reply == b"LINKED 1\r\nLINKED 2\r\nDEPENDENT view:1\r\nDEPENDENT frag:1\r\nEND\r\n"
    assert exchange(serve.port, b"cd_invalidate book:1\r\n") == b"INVALIDATED 3\r\n"
    assert client.get_many(["q:1", "view:1", "frag:1", "other"]) == {"other": b"v"}
    assert exchange(serve.port, b"cd_invalidate\r\ncd_link x\r\ncd_invalidate book:1 noreply\r\n") \
        == b"ERROR\r\nERROR\r\n"


def test_stats_groups(client, serve):
    client.set("user:1", b"abc")
    client.get("user:1")
    client.get("user:2")
    client.set("plain", b"x")
    general = client.stats()
    assert general[b"curr_items"] == 2 and general[b"get_hits"] >= 1
    assert client.stats("items")[b"items:1:number"] == 2
    prefixes = exchange(serve.port, b"stats prefixes\r\n")
    assert b"STAT prefix:user:items 1\r\n" in prefixes
    assert b"STAT prefix:user:hits 1\r\n" in prefixes
    assert b"STAT prefix:user:misses 1\r\n" in prefixes
    assert b"STAT prefix:(none):items 1\r\n" in prefixes
    settings = client.stats("settings")
    assert settings[b"maxbytes"] == 32 * 2**20
    dump = exchange(serve.port, b"lru_crawler metadump all\r\n")
    assert dump.endswith(b"END\r\n") and b"key=user%3A1 exp=-1 " in dump and b"fetch=yes" in dump
    cachedump = exchange(serve.port, b"stats cachedump 1 10\r\n")
    assert b"ITEM plain [" in cachedump and cachedump.endswith(b"END\r\n")


def test_meta_leases_and_explicit_cas(serve, client):
    reply = exchange(serve.port, b"mg lease N30 v c\r\nmg lease N30 v\r\n")
    lines = reply.split(b"\r\n")
    assert lines[0].startswith(b"VA 0 c") and lines[0].endswith(b" W")
    assert lines[2] == b"VA 0 Z"
    assert exchange(serve.port, b"ms e 1 E5000 c\r\n1\r\nmg e c v\r\n") == b"HD c5000\r\nVA 1 c5000\r\n1\r\n"
    # ids keep growing past an explicit one
    client.set("after", b"x")
    assert int(client.gets("after")[1]) > 5000
    # md I: stale, one winner, then a fresh set clears it
    assert exchange(serve.port, b"md e I\r\nmg e v\r\nmg e v\r\n") == \
        b"HD\r\nVA 1 X W\r\n1\r\nVA 1 Z X\r\n1\r\n"
    assert exchange(serve.port, b"ms e 1\r\n2\r\nmg e v\r\n") == b"HD\r\nVA 1\r\n2\r\n"
    assert exchange(serve.port, b"md e I E9500\r\nmg e c\r\n") == b"HD\r\nHD c9500 X W\r\n"
    # a vivified item may take an explicit CAS id (E)
    assert exchange(serve.port, b"mg viv N30 E9000 c v\r\nmg viv c\r\n") == b"VA 0 c9000 W\r\n\r\nHD c9000 Z\r\n"


def test_binary_base64_keys(serve):
    assert exchange(serve.port, b"ms Zm9v 1 b\r\nx\r\nmg foo v\r\nmg Zm9v b k v\r\n") == \
        b"HD\r\nVA 1\r\nx\r\nVA 1 kZm9v b\r\nx\r\n"


def test_connection_limit_refuses_cleanly(serve_factory):
    serve = serve_factory("--max-conns", "3")
    held = [socket.create_connection(("127.0.0.1", serve.port)) for _ in range(3)]
    for s in held:
        s.sendall(b"version\r\n")
        assert s.recv(100).startswith(b"VERSION")
    extra = socket.create_connection(("127.0.0.1", serve.port), timeout=2)
    assert extra.recv(100) == b"ERROR Too many open connections\r\n"
    assert extra.recv(100) == b""
    held.pop().close()
    time.sleep(0.2)
    assert exchange(serve.port, b"version\r\n").startswith(b"VERSION")
    for s in held:
        s.close()


def test_idle_clients_are_dropped(serve_factory):
    serve = serve_factory("--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as s:
        started = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - started < 4


def test_overlong_line_closes_the_connection(serve):
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as s:
        s.sendall(b"x" * 5000)
        assert s.recv(100) == b""
    assert exchange(serve.port, b"version\r\n").startswith(b"VERSION")


def test_client_that_never_reads_cannot_grow_the_server(serve_factory):
    serve = serve_factory("--write-timeout", "2")
    with socket.create_connection(("127.0.0.1", serve.port)) as c:
        c.sendall(b"set big 0 0 100000\r\n" + b"v" * 100000 + b"\r\n")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = serve.rss_kb()
        c.settimeout(0.5)
        sent = 0
        request = b"get big big big big big big big big big big\r\n" * 100
        try:
            while sent < 400 * 2**20:
                sent += c.send(request)
        except (socket.timeout, OSError):
            pass
        # ~4 GB of replies were asked for; the server stopped reading instead of buffering them
        assert sent < 400 * 2**20
        assert serve.rss_kb() - before < 64 * 1024
    assert exchange(serve.port, b"version\r\n").startswith(b"VERSION")


def test_garbage_from_many_sockets_leaves_the_server_answering(serve_factory):
    serve = serve_factory("--item-max", "64KB")
    rng = random.Random(1234)
    pieces = [b"get ", b"set k 0 0 5\r\n", b"ms k 3 T1\r\n", b"\r\n", b"\n", b"mg k v\r\n",
              b"gat 1 k\r\n", b"incr k 99999999999999999999999\r\n", b"set k 0 0 99999999\r\n",
              b"\x80\x01\x00", b"noreply", b" ", b"cd_link a b\r\n", b"stats\r\n", b"lru_crawler metadump all\r\n"]
    start_rss = serve.rss_kb()
    deadline = time.monotonic() + 3

    def hammer(seed: int) -> None:
        r = random.Random(seed)
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", serve.port), timeout=1) as s:
                    for _ in range(r.randint(1, 30)):
                        if r.random() < 0.5:
                            s.sendall(r.choice(pieces))
                        else:
                            s.sendall(os.urandom(r.randint(1, 300)))
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(0.2)
                    while s.recv(65536):
                        pass
            except OSError:
                pass

    threads = [threading.Thread(target=hammer, args=(rng.random(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert exchange(serve.port, b"version\r\n").startswith(b"VERSION")
    assert serve.rss_kb() - start_rss < 64 * 1024
    assert serve.proc.poll() is None


def test_sigterm_shuts_down_cleanly(serve_factory):
    serve = serve_factory()
    conn = socket.create_connection(("127.0.0.1", serve.port))
    proc = serve.proc
    log = serve.stop()
    assert proc.returncode == 0
    assert "listening on 127.0.0.1:%d" % serve.port in log
    assert "stopped" in log
    assert conn.recv(10) == b""
    conn.close()


def test_value_just_over_the_store_limit_is_refused_and_drops_the_old_value(serve_factory):
    serve = serve_factory("--item-max", "1KB")
    # the parser lets 1024 bytes through; key and item overhead push it over in the store
    reply = exchange(serve.port, b"set k 0 0 1\r\nx\r\nset k 0 0 1024\r\n" + b"y" * 1024 + b"\r\nget k\r\n")
    assert reply == b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"


def test_threads_serve_concurrent_clients_with_commands_one_at_a_time(serve_factory):
    serve = serve_factory("--threads", "3")
    exchange(serve.port, b"set counter 0 0 1\r\n0\r\n")
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as s:
                f = s.makefile("rb")
                for i in range(200):
                    value = b"%d-%d" % (n, i)
                    s.sendall(b"set t:%d 0 0 %d\r\n%s\r\nget t:%d\r\nincr counter 1\r\n" % (n, len(value), value, n))
                    got = [f.readline() for _ in range(5)]
                    if got[:4] != [b"STORED\r\n", b"VALUE t:%d 0 %d\r\n" % (n, len(value)), value + b"\r\n", b"END\r\n"]:
                        errors.append(repr(got))
                        return
        except OSError as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert exchange(serve.port, b"get counter\r\n") == b"VALUE counter 0 4\r\n1600\r\nEND\r\n"
    time.sleep(0.3)  # the clients' closes reach their loops
    stats = exchange(serve.port, b"stats\r\n")
    assert b"STAT curr_connections 1\r\n" in stats, stats
