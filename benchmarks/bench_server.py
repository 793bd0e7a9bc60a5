"""``cachedeps serve`` against memcached: memaslap at 4 and 32 connections, and pipelined gets.

Both servers are started here, on free loopback ports, with the same memory; memcached
with 2 threads, ``cachedeps serve`` with ``CACHEDEPS_BENCH_THREADS`` (default 1: its
commands run one at a time whatever the threads). memaslap (libmemcached-tools) runs a 90% get / 10% set mix of
100-byte values; the pipelined load is two client processes each writing batches of 100
``get``s (one write per batch) and reading the replies. Each load runs on both servers in
turn, several rounds (the machine is shared: figures are noisy), and the ratio is printed
per round with its median and spread. Last, the memory each server takes per connection:
RSS before and after opening 800 connections that each ran one command, on the fresh server.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["main"]

_CFG = """key
64 64 1
value
100 100 1
cmd
0 0.1
1 0.9
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def _start_memcached(port: int) -> subprocess.Popen:
    args = [shutil.which("memcached") or "/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port),
            "-U", "0", "-m", "64", "-t", "2", "-c", "1024"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(port)
    return proc


def _start_serve(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cachedeps", "serve", "--port", str(port),
                             "--max-memory", "64MB", "--threads", os.environ.get("CACHEDEPS_BENCH_THREADS", "1")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(port)
    return proc


def _memaslap(port: int, seconds: int, conns: int, cfg: str) -> float:
    binary = shutil.which("memcaslap") or shutil.which("memaslap")
    out = subprocess.run(
        [binary, "-s", f"127.0.0.1:{port}", "-t", f"{seconds}s", "-c", str(conns), "-T", "2",
         "-X", "100", "-F", cfg],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    found = re.findall(r"TPS:\s*(\d+)", out)
    return float(found[-1]) if found else 0.0


def _pipeline_worker(port: int, seconds: float, result) -> None:
    keys = [b"pipe:%d" % i for i in range(1000)]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(keys), 100):
            s.sendall(b"".join(b"set %s 0 0 100 noreply\r\n%s\r\n" % (k, b"v" * 100) for k in keys[i:i + 100]))
        batches = [b"".join(b"get %s\r\n" % k for k in keys[i:i + 100]) + b"mn\r\n"
                   for i in range(0, len(keys), 100)]
        ops = 0
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            s.sendall(batches[n % len(batches)])
            n += 1
            buf = b""
            while not buf.endswith(b"MN\r\n"):
                buf += s.recv(262144)
            ops += 100
        result.put(ops / seconds)


def _pipelined(port: int, seconds: float, clients: int = 2) -> float:
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    procs = [ctx.Process(target=_pipeline_worker, args=(port, seconds, result)) for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(result.get(timeout=seconds + 30) for _ in procs)
    for p in procs:
        p.join()
    return total


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _memory_per_connection(proc: subprocess.Popen, port: int, conns: int = 800) -> float:
    """Return the RSS (bytes) one more open connection costs the server, after a command."""
    before = _rss_kb(proc.pid)
    socks = []
    try:
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"get conn:probe\r\n")
            socks.append(s)
        for s in socks:
            while not s.recv(64).endswith(b"END\r\n"):
                pass
        time.sleep(0.2)
        after = _rss_kb(proc.pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) * 1024 / conns


def main(quick: bool) -> None:
    """Print ops/s of memcached and cachedeps serve side by side, with their ratio."""
    seconds = 3 if quick else 10
    pipe_seconds = 2.0 if quick else 5.0
    rounds = 1 if quick else 3
    have_memaslap = bool(shutil.which("memcaslap") or shutil.which("memaslap"))
    mc_port, cd_port = _free_port(), _free_port()
    memcached = _start_memcached(mc_port)
    serve = _start_serve(cd_port)
    loads: list[tuple[str, object]] = []
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(_CFG)
        cfg = f.name
    if have_memaslap:
        for conns in (4, 32):
            loads.append((f"memaslap 90% get, {conns} conns",
                          lambda port, c=conns: _memaslap(port, seconds, c, cfg)))
    else:
        print("memaslap not installed (apt-get install libmemcached-tools): skipped")
    loads.append(("pipelined get x100, 2 clients", lambda port: _pipelined(port, pipe_seconds)))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in loads}
    try:
        # on fresh servers: after the loads, freed memory is reused and hides the cost
        mc_mem = _memory_per_connection(memcached, mc_port)
        cd_mem = _memory_per_connection(serve, cd_port)
        for _ in range(rounds):
            for name, run in loads:
                mc = run(mc_port)
                cd = run(cd_port)
                results[name].append((mc, cd))
    finally:
        os.unlink(cfg)
        _stop(memcached)
        _stop(serve)
    print(f"{'load':32} {'memcached ops/s':>16} {'serve ops/s':>12} {'ratio':>6}  rounds: ratios")
    for name, pairs in results.items():
        ratios = [cd / mc if mc else 0.0 for mc, cd in pairs]
        mc = statistics.median(p[0] for p in pairs)
        cd = statistics.median(p[1] for p in pairs)
        spread = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{name:32} {mc:16,.0f} {cd:12,.0f} {statistics.median(ratios):6.2f}  "
              f"{spread} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    print(f"memory per connection: serve {cd_mem / 1024:.1f} KiB, memcached {mc_mem / 1024:.1f} KiB "
          "(RSS growth over 800 connections that each ran one get, on the fresh server)")
