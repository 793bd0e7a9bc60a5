"""Every sqla_cachedeps module has an honest ``__all__``; importing cachedeps loads no framework."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import sqla_cachedeps


def _modules() -> list[str]:
    return ["sqla_cachedeps"] + [m.name for m in pkgutil.walk_packages(sqla_cachedeps.__path__, "sqla_cachedeps.")]


@pytest.mark.parametrize("name", _modules())
def test_all_names_exist(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    assert [n for n in exported if not hasattr(module, n)] == []


def test_public_surface():
    assert set(sqla_cachedeps.__all__) >= {
        "install", "Installation", "create_feed_table", "FromCache", "RelationshipCache", "CachingSession",
    }


def test_importing_cachedeps_loads_no_sqlalchemy():
    code = "import sys, cachedeps; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
