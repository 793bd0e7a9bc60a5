"""The ``cachedeps`` command line.

``cachedeps --version`` prints the installed version;
``cachedeps serve [--host H] [--port P] [--max-memory 64MB] [--item-max 1MB] [--max-conns N]``
runs the memcache-compatible server on the embedded store (docs/server.md);
``cachedeps stats URL`` prints the statistics of a memcache server
(``memcache://127.0.0.1:11211`` or ``127.0.0.1:11211``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import socket
import sys
from typing import Any

from .errors import ConfigurationError

__all__ = ["main", "parse_size"]

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20,
          "MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30}


def parse_size(text: str) -> int:
    """Return a byte count from ``"64MB"``, ``"512k"``, ``"1GiB"`` or ``"1048576"``.

    Raises:
        ConfigurationError: not a positive size with a known unit.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigurationError(
            f"Cannot read size {text!r}; write a number with an optional unit, like 64MB, 512KB or 1048576"
        )
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigurationError(f"Size {text!r} must be larger than zero")
    return size


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _int_arg(low: int, high: int | None = None) -> Any:
    """Return an argparse type: an integer from ``low`` to ``high`` (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            within = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {within}")
        return value

    return parse


def _float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cachedeps")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from . import __version__

        return __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cachedeps",
        description="cachedeps command line: run the memcache-compatible server on the embedded "
                    "store, or print a memcache server's statistics.")
    parser.add_argument("--version", action="version", version=f"cachedeps {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="run the memcache-compatible server on the embedded store",
        description="Run a memcache-compatible server (text and binary protocols) on the embedded "
                    "store, so that several processes share one cache: point them at "
                    "memcache://HOST:PORT. Stops on SIGTERM or SIGINT. See docs/server.md.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    serve.add_argument("--port", type=_int_arg(0, 65535), default=11211, help="TCP port (default 11211)")
    serve.add_argument("--max-memory", type=_size_arg, default=64 * 2**20,
                       help="memory for items, e.g. 64MB (default 64MB)")
    serve.add_argument("-I", "--item-max", type=_size_arg, default=2**20,
                       help="largest item, e.g. 1MB (default 1MB; at least 1024 bytes, at most "
                            "half of --max-memory, as memcached)")
    serve.add_argument("-t", "--threads", type=_int_arg(1, 64), default=1,
                       help="event loops serving connections, as memcached -t (default 1); "
                            "commands run one at a time, socket work in parallel")
    serve.add_argument("-F", "--disable-flush-all", action="store_true",
                       help="refuse flush_all (as memcached -F)")
    serve.add_argument("--max-conns", type=_int_arg(1), default=1024,
                       help="connections served at once; more are refused (default 1024)")
    serve.add_argument("--idle-timeout", type=_float_arg, default=0.0,
                       help="drop connections silent for this many seconds (default 0: never)")
    serve.add_argument("--write-timeout", type=_float_arg, default=30.0,
                       help="drop clients that leave replies unread this long (default 30s)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every connection event")
    stats = sub.add_parser(
        "stats", help="print a memcache server's statistics",
        description="Print the statistics of a memcached or `cachedeps serve` server, one per line; "
                    "`prefixes` gives items, hits and misses per key prefix (`cachedeps serve`, or "
                    "memcached with detail on).")
    stats.add_argument("url", help="memcache://HOST:PORT or HOST:PORT")
    stats.add_argument("group", nargs="?", default="",
                       help="items, slabs, settings, prefixes, ... (default: general)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .server.context import ServerSettings
    from .server.server import serve

    if args.item_max < 1024:
        raise ConfigurationError(f"--item-max ({args.item_max}) cannot be less than 1024 bytes")
    if args.item_max > args.max_memory // 2:
        raise ConfigurationError(f"--item-max ({args.item_max}) cannot be higher than half of "
                                 f"--max-memory ({args.max_memory}); raise --max-memory")
    if args.item_max > 2**30:
        raise ConfigurationError(f"--item-max ({args.item_max}) cannot be higher than 1GB")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ServerSettings(host=args.host, port=args.port, max_memory=args.max_memory,
                              item_max=args.item_max, max_conns=args.max_conns,
                              idle_timeout=args.idle_timeout, write_timeout=args.write_timeout,
                              flush_enabled=not args.disable_flush_all, threads=args.threads)
    try:
        serve(settings)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (f"; another process (a memcached, or another cachedeps serve) listens on port "
                    f"{args.port}: stop it, or choose another port with --port")
        elif exc.errno in (errno.EACCES, errno.EPERM):
            hint = "; ports below 1024 need privileges: choose --port 11211 or another above 1023"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = f"; {args.host} is not an address of this machine: use --host 127.0.0.1 or 0.0.0.0"
        logging.getLogger("cachedeps.server").error("cannot serve on %s:%d: %s%s",
                                                    args.host, args.port, exc.strerror or exc, hint)
        return 1
    return 0


def _stats(args: argparse.Namespace) -> int:
    address = args.url.split("://", 1)[-1].split(",")[0].rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"Cannot read server address {args.url!r}; write memcache://HOST:PORT")
    command = f"stats {args.group}".strip().encode() + b"\r\n"
    try:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(command)
            data = b""
            while not data.endswith((b"END\r\n", b"ERROR\r\n")):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        print(f"cachedeps: cannot reach {host}:{port}: {exc}", file=sys.stderr)
        return 1
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("STAT "):
            _, name, value = (line.split(" ", 2) + [""])[:3]
            print(f"{name:32} {value}")
        elif line not in ("END",):
            print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``cachedeps`` command line; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _stats(args)
    except ConfigurationError as exc:
        parser.error(str(exc))
    return 2
