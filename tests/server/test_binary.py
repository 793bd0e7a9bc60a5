"""The binary protocol: packet splitting on canned bytes, and a session over a socket."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from cachedeps.server.binary import parse_packets

_HEADER = struct.Struct(">BBHBBHIIQ")


def request(opcode: int, key: bytes = b"", extras: bytes = b"", value: bytes = b"",
            opaque: int = 0, cas: int = 0) -> bytes:
    body = len(key) + len(extras) + len(value)
    return _HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0, body, opaque, cas) + extras + key + value


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, int, bytes, bytes, int]]:
    out = []
    buf = b""
    while len(out) < count:
        while len(buf) < 24:
            buf += sock.recv(65536)
        magic, opcode, keylen, extlen, _, status, body, opaque, cas = _HEADER.unpack_from(buf)
        while len(buf) < 24 + body:
            buf += sock.recv(65536)
        key = buf[24 + extlen:24 + extlen + keylen]
        value = buf[24 + extlen + keylen:24 + body]
        out.append((opcode, status, key, value, opaque))
        buf = buf[24 + body:]
    return out


def test_packets_split_at_any_byte():
    stream = request(0x01, b"k", struct.pack(">II", 5, 0), b"value", opaque=7) + request(0x00, b"k", opaque=8)
    packets, used, error = parse_packets(stream, 1024)
    assert error is None and used == len(stream) and len(packets) == 2
    for cut in range(len(stream)):
        first, used, _ = parse_packets(stream[:cut], 1024)
        rest, _, _ = parse_packets(stream[used:], 1024)
        assert first + rest == packets


def test_bad_magic_and_oversized_bodies_are_reported():
    assert parse_packets(b"\x81" + b"\x00" * 23, 1024)[2] == "magic"
    big = _HEADER.pack(0x80, 0x01, 1, 8, 0, 0, 5000, 0, 0)
    assert parse_packets(big, 1024)[2] == "size"


def test_binary_session(serve):
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as s:
        s.sendall(request(0x01, b"bk", struct.pack(">II", 3, 0), b"hello", opaque=1)
                  + request(0x0C, b"bk", opaque=2)            # getk
                  + request(0x09, b"missing", opaque=3)       # getq: silent miss
                  + request(0x05, b"ctr", struct.pack(">QQI", 5, 10, 0), opaque=4)  # incr, create
                  + request(0x05, b"ctr", struct.pack(">QQI", 5, 10, 0), opaque=5)
                  + request(0x0B, opaque=6) + request(0x0A, opaque=7))
        replies = read_responses(s, 6)
    assert [(r[0], r[1], r[4]) for r in replies] == [
        (0x01, 0, 1), (0x0C, 0, 2), (0x05, 0, 4), (0x05, 0, 5), (0x0B, 0, 6), (0x0A, 0, 7)]
    assert replies[1][2:4] == (b"bk", b"hello")
    assert struct.unpack(">Q", replies[2][3])[0] == 10
    assert struct.unpack(">Q", replies[3][3])[0] == 15
    assert b"cachedeps/" in replies[4][3]


def test_binary_client_that_never_reads_cannot_grow_the_server(serve_factory):
    serve = serve_factory("--write-timeout", "2")
    with socket.create_connection(("127.0.0.1", serve.port)) as c:
        c.sendall(request(0x01, b"big", struct.pack(">II", 0, 0), b"v" * 100000))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = serve.rss_kb()
        c.settimeout(0.5)
        batch = request(0x00, b"big") * 200
        sent = 0
        try:
            while sent < 100 * 2**20:
                sent += c.send(batch)
        except (socket.timeout, OSError):
            pass
        # gigabytes of replies were asked for; the server stopped reading instead
        assert sent < 100 * 2**20
        assert serve.rss_kb() - before < 64 * 1024


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 64))
def test_fuzz_packet_parser_consumes_only_whole_packets(data, max_body):
    packets, used, error = parse_packets(b"\x80" + data, max_body)
    assert 0 <= used <= len(data) + 1
    assert error in (None, "magic", "size")
    for opcode, key, extras, value, opaque, cas in packets:
        assert len(key) + len(extras) + len(value) <= max_body
