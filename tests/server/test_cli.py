"""The ``cachedeps`` command line: sizes, bad options, ``cachedeps stats``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cachedeps.cli import main, parse_size
from cachedeps.errors import ConfigurationError
from tests.conftest import free_port


@pytest.mark.parametrize("text, size", [("64MB", 64 * 2**20), ("512k", 512 * 2**10),
                                        ("1GiB", 2**30), ("1048576", 2**20), ("1.5M", 3 * 2**19)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "0", "12 parsecs"])
def test_bad_sizes_name_the_input(text):
    with pytest.raises(ConfigurationError, match=re.escape(repr(text))):
        parse_size(text)


def test_bad_option_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--max-memory", "lots"])
    assert info.value.code == 2
    assert "Cannot read size 'lots'" in capsys.readouterr().err


def test_stats_prints_figures(serve, capsys):
    assert main(["stats", f"memcache://{serve.address}"]) == 0
    out = capsys.readouterr().out
    assert "curr_connections" in out and "limit_maxbytes" in out
    assert main(["stats", serve.address, "settings"]) == 0
    assert "maxconns" in capsys.readouterr().out


def test_stats_of_a_dead_server_fails_cleanly(capsys):
    assert main(["stats", f"127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_port_in_use_is_logged_and_exits_nonzero(serve):
    result = subprocess.run([sys.executable, "-m", "cachedeps", "serve", "--port", str(serve.port)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot serve on 127.0.0.1:%d" % serve.port in result.stderr
    assert "another process" in result.stderr and "--port" in result.stderr  # the hint


def test_version(capsys):
    from cachedeps import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cachedeps {__version__}"


@pytest.mark.parametrize("argv, option", [
    (["serve", "--port", "80000"], "--port"),
    (["serve", "--port", "http"], "--port"),
    (["serve", "--max-conns", "0"], "--max-conns"),
    (["serve", "--threads", "99"], "--threads"),
    (["serve", "--idle-timeout", "-1"], "--idle-timeout"),
])
def test_a_bad_option_is_named_and_no_other(argv, option, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{option}: " in err.split("error: argument", 1)[1]
    others = {"--port", "--max-conns", "--threads", "--idle-timeout"} - {option}
    assert not any(o in err.split("error:", 1)[1] for o in others), err


@pytest.mark.parametrize("argv", [[], ["serve"], ["stats"]])
def test_every_help_has_a_description(argv, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    body = out.split("\n\n", 2)[1]  # after the usage block
    assert not body.startswith(("positional", "options")), out


def test_a_stopped_server_logs_why():
    from tests.server.conftest import ServeProcess

    log = ServeProcess().start().stop()
    assert "shutting down: received SIGTERM" in log


def test_prefix_figures_of_a_served_store_are_per_prefix(serve):
    import cachedeps
    from django_cachedeps._introspect import prefix_rows

    store = cachedeps.open_store(f"memcache://{serve.address}")
    try:
        store.set("figs:1", b"x")
        assert store.get("figs:1") == b"x"
        store.get("figs:missing")
        rows = {r.prefix: r for r in prefix_rows(store)}
    finally:
        store.close()
    assert "*" not in rows and "figs" in rows, rows
    assert rows["figs"].hits >= 1 and rows["figs"].misses >= 1
