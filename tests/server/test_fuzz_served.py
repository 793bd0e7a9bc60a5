"""A bounded, seeded fuzzing run against a running ``cachedeps serve``.

A few thousand inputs mixing text, meta and binary commands (well and badly formed),
random bytes and splits are each sent on their own connection. After each one a fresh
client must get correct answers, and at the end the server's RSS and open descriptors must
be back within bounds. The seed is fixed so a failure reproduces; ``CACHEDEPS_FUZZ_SEED``
and ``CACHEDEPS_FUZZ_INPUTS`` change it and the size of the run.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import pytest

from tests.server.conftest import ServeProcess

SEED = int(os.environ.get("CACHEDEPS_FUZZ_SEED", "14"))
INPUTS = int(os.environ.get("CACHEDEPS_FUZZ_INPUTS", "3000"))

_HEADER = struct.Struct(">BBHBBHIIQ")
_KEYS = [b"k", b"k:1", b"user:42", b"a\tb", b"\x01\x7f", b"\xff\xfe", b"Zm9v", b"x" * 250, b"x" * 251, b""]
_NUMS = [b"0", b"1", b"-1", b"+5", b"-0", b"5", b"100", b"2147483648", b"-2147483649", b"4294967296",
         b"18446744073709551615", b"18446744073709551616", b"x", b"", b"1x", b"\t3"]
_TEXT_OPS = [b"get", b"gets", b"gat", b"gats", b"set", b"add", b"replace", b"append", b"prepend",
             b"cas", b"delete", b"incr", b"decr", b"touch", b"flush_all", b"verbosity", b"version",
             b"stats", b"slabs", b"cache_memlimit", b"lru_crawler", b"cd_link", b"cd_invalidate",
             b"cd_dependents", b"GET", b"me", b"mn", b"bogus"]
_STATS = [b"", b" items", b" slabs", b" sizes", b" settings", b" prefixes", b" conns",
          b" detail on", b" detail dump", b" reset", b" cachedump 1 1", b" nonsense"]
_META_FLAGS = [b"v", b"k", b"c", b"f", b"h", b"l", b"s", b"t", b"u", b"q", b"b", b"O123", b"O" + b"o" * 40,
               b"N30", b"R5", b"T0", b"T-1", b"T+9", b"C1", b"E7", b"F3", b"I", b"MA", b"MP", b"ME", b"MS",
               b"MD", b"M+", b"MX", b"M", b"D3", b"J9", b"x", b"zz", b"P", b"L", b"N", b"Cx"]


def _text_command(r: random.Random) -> bytes:
    op = r.choice(_TEXT_OPS)
    key = r.choice(_KEYS)
    if op in (b"set", b"add", b"replace", b"append", b"prepend", b"cas"):
        size = r.choice([0, 1, 5, 100, 5000, 70000])
        value = os.urandom(size) if r.random() < 0.3 else b"v" * size
        declared = size if r.random() < 0.8 else r.choice([size + 1, max(size - 1, 0)])
        words = [op, key, r.choice(_NUMS), r.choice(_NUMS), b"%d" % declared]
        if op == b"cas":
            words.append(r.choice(_NUMS))
        if r.random() < 0.3:
            words.append(b"noreply")
        return b" ".join(words) + b"\r\n" + value + b"\r\n"
    if op == b"stats":
        return b"stats" + r.choice(_STATS) + b"\r\n"
    words = [op] + [r.choice(_KEYS + _NUMS + [b"noreply"]) for _ in range(r.randint(0, 4))]
    return b" ".join(words) + r.choice([b"\r\n", b"\n"])


def _meta_command(r: random.Random) -> bytes:
    op = r.choice([b"mg", b"ms", b"md", b"ma", b"mn", b"me"])
    flags = [r.choice(_META_FLAGS) for _ in range(r.randint(0, 5))]
    key = r.choice(_KEYS)
    if op == b"ms":
        size = r.choice([0, 2, 10, 3000])
        declared = r.choice([b"%d" % size, b"%d" % (size + 1), b"x", b"-1"])
        return b" ".join([op, key, declared] + flags) + b"\r\n" + b"m" * size + b"\r\n"
    return b" ".join([op, key] + flags) + b"\r\n"


def _binary_command(r: random.Random) -> bytes:
    opcode = r.choice([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0B, 0x0C,
                       0x0D, 0x0E, 0x10, 0x11, 0x1C, 0x1D, 0x23, 0x55])
    key = r.choice(_KEYS[:7] + [b""])
    extras = r.choice([b"", b"\0" * 4, b"\0" * 8, b"\0" * 20, os.urandom(8)])
    value = r.choice([b"", b"val", b"12", os.urandom(r.randint(0, 200))])
    keylen, extlen, bodylen = len(key), len(extras), len(key) + len(extras) + len(value)
    if r.random() < 0.15:  # lie in the header
        keylen, extlen, bodylen = r.randint(0, 300), r.randint(0, 40), r.randint(0, 400)
    header = _HEADER.pack(0x80, opcode, keylen, extlen, 0, 0, bodylen, r.getrandbits(32), 0)
    return header + extras + key + value


def make_input(r: random.Random) -> bytes:
    """Return one fuzzing input: a short stream of one protocol, or random bytes."""
    kind = r.random()
    if kind < 0.45:
        data = b"".join(_text_command(r) if r.random() < 0.6 else _meta_command(r)
                        for _ in range(r.randint(1, 6)))
    elif kind < 0.8:
        data = b"".join(_binary_command(r) for _ in range(r.randint(1, 6)))
    else:
        data = os.urandom(r.randint(1, 600))
    if r.random() < 0.2:  # cut short
        data = data[:r.randint(0, len(data))]
    return data


def _send(port: int, data: bytes, r: random.Random) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        try:
            if r.random() < 0.3:
                step = r.randint(1, 64)
                for i in range(0, len(data), step):
                    s.sendall(data[i:i + step])
            else:
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(0.5)
            while s.recv(262144):
                pass
        except OSError:  # closed by the server, or too slow to answer: both are fine here
            pass


def _check(port: int, i: int) -> None:
    """A fresh client is answered correctly (text, meta and binary)."""
    key = b"fuzzcheck:%d" % i
    value = b"%d" % (i * 7919)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"set %s 3 0 %d\r\n%s\r\nget %s\r\nmg %s v f\r\n" % (key, len(value), value, key, key))
        expected = (b"STORED\r\nVALUE %s 3 %d\r\n%s\r\nEND\r\nVA %d f3\r\n%s\r\n"
                    % (key, len(value), value, len(value), value))
        got = b""
        while len(got) < len(expected):
            chunk = s.recv(65536)
            assert chunk, f"connection closed after input {i}; got {got!r}"
            got += chunk
        assert got == expected, f"after input {i}"
    if i % 50 == 0:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(_HEADER.pack(0x80, 0x0A, 0, 0, 0, 0, 0, 0xF00D, 0))
            reply = s.recv(24)
            assert reply[:2] == b"\x81\x0a" and reply[12:16] == b"\x00\x00\xf0\x0d", f"after input {i}"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_fuzzing_run_leaves_the_server_correct_and_bounded():
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to read the server's RSS and descriptors")
    serve = ServeProcess("--max-memory", "16MB", "--item-max", "64KB", "--threads", "2").start()
    try:
        pid = serve.proc.pid
        r = random.Random(SEED)
        # warm up (imports, allocator pools) before taking the baselines
        for i in range(50):
            _send(serve.port, make_input(r), r)
        _check(serve.port, 0)
        start_rss, start_fds = _rss_kb(pid), _fds(pid)
        started = time.monotonic()
        peak_rss = start_rss
        for i in range(1, INPUTS + 1):
            _send(serve.port, make_input(r), r)
            _check(serve.port, i)
            if i % 250 == 0:
                peak_rss = max(peak_rss, _rss_kb(pid))
        elapsed = time.monotonic() - started
        time.sleep(0.2)  # let the last connections finish closing
        end_fds = _fds(pid)
        print(f"fuzzing: {INPUTS} inputs in {elapsed:.1f}s; RSS {start_rss} -> {_rss_kb(pid)} kB "
              f"(peak {peak_rss}); descriptors {start_fds} -> {end_fds}")
        assert serve.proc.poll() is None
        # the store holds at most 16 MB; parsers and buffers are bounded per connection
        assert peak_rss - start_rss < 48 * 1024
        assert end_fds <= start_fds + 2
    finally:
        log = serve.stop()
    assert "Traceback" not in log, log[-4000:]
