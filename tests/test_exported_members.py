"""Every name a cachedeps module exports in ``__all__`` exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import cachedeps

# Modules that need an optional dependency to import are checked only when it is installed.
_OPTIONAL = {"cachedeps.store.remote": "pymemcache", "cachedeps.store._pool": "pymemcache", "cachedeps.testing.conformance": "pytest"}


def _modules() -> list[str]:
    names = ["cachedeps"]
    for info in pkgutil.walk_packages(cachedeps.__path__, "cachedeps."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_names_exist(name):
    if name in _OPTIONAL:
        pytest.importorskip(_OPTIONAL[name])
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


def test_package_exports_the_error_tree_and_store_contract():
    for name in ("Store", "DependencyStore", "NO_VALUE", "Item", "CachedepsError", "CorruptValue",
                 "NonNumericValue", "open_store", "parse_url"):
        assert name in cachedeps.__all__
        assert getattr(cachedeps, name) is not None
