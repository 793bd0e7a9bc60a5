"""Every Python snippet of README.md and docs/*.md runs, so the docs cannot drift.

Each fenced ``python`` block runs in a fresh interpreter in an empty directory, against the
embedded store and SQLite: ``memcache://HOST:PORT`` URLs are read as ``embedded://`` and
PostgreSQL URLs as SQLite. A block preceded by ``<!-- snippet: settings -->`` is a Django
settings module: ``manage.py check`` must find no error in it. A block preceded by
``<!-- snippet: with NAME -->`` runs with what ``tests/docs/setups/NAME/`` holds: its files
copied beside the snippet (the application's modules the snippet imports) and its
``prelude.py``, if any, run first (a configured Django project). A block preceded by
``<!-- snippet: skip REASON -->`` is a fragment (a settings excerpt, an interface outline) and
is not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"(?:<!--\s*snippet:\s*(?P<mode>\w+)(?P<arg>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", re.S)
SETUPS = Path(__file__).resolve().parent / "setups"
_SETTINGS_TAIL = """
SECRET_KEY = "snippet-test"
ROOT_URLCONF = __name__
urlpatterns = []
"""


def _snippets():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            mode = match.group("mode") or "run"
            setup = match.group("arg").split()[0] if mode == "with" else None
            yield pytest.param(mode, setup, match.group("code"), id=f"{path.relative_to(ROOT)}:{line}")


def _local(code: str) -> str:
    code = re.sub(r"memcache://[\w.\-]+:\d+(?:,[\w.\-]+:\d+)*", "embedded://", code)
    return re.sub(r"postgresql(?:\+\w+)?://[^\"'\s]*", "sqlite:///snippet.sqlite3", code)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env.update(extra)
    return env


@pytest.mark.parametrize("mode, setup, code", list(_snippets()))
def test_snippet_runs(mode, setup, code, tmp_path):
    if mode == "skip":
        pytest.skip("a fragment of a larger file")
    code = _local(code)
    if setup is not None:
        source = SETUPS / setup
        assert source.is_dir(), f"no setup {setup!r} in {SETUPS}"
        shutil.copytree(source, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("prelude.py"))
        prelude = source / "prelude.py"
        if prelude.exists():
            code = prelude.read_text() + "\n" + code
    if mode == "settings":
        (tmp_path / "snippet_settings.py").write_text(code + _SETTINGS_TAIL)
        done = subprocess.run([sys.executable, "-m", "django", "check"], cwd=tmp_path,
                              env=_env(tmp_path, DJANGO_SETTINGS_MODULE="snippet_settings"),
                              capture_output=True, text=True, timeout=120)
    else:
        (tmp_path / "snippet.py").write_text(code)
        done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=_env(tmp_path),
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{code}\n---\n{done.stderr[-3000:]}"
