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
