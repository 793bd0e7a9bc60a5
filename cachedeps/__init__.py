"""cachedeps: dependency-tracked caching that is never stale.

Importing this package loads no framework and no memcache client.
"""

from __future__ import annotations

from typing import Any

from .api import NO_VALUE as NO_VALUE
from .api import DependencyStore as DependencyStore
from .api import Item as Item
from .api import Store as Store
from .errors import BackendError as BackendError
from .errors import BackendUnavailable as BackendUnavailable
from .errors import CachedepsError as CachedepsError
from .errors import ConfigurationError as ConfigurationError
from .errors import CorruptValue as CorruptValue
from .errors import FeedError as FeedError
from .errors import InvalidKey as InvalidKey
from .errors import NonNumericValue as NonNumericValue
from .errors import PicklingFailed as PicklingFailed
from .errors import ProtocolError as ProtocolError
from .errors import SerializationError as SerializationError
from .errors import StaleRead as StaleRead
from .errors import ValueTooLarge as ValueTooLarge

__version__ = "0.1.0"

# Loaded on first use so that `import cachedeps` stays cheap.
_LAZY = {
    "Cache": "cachedeps.cache:Cache",
    "open_store": "cachedeps.config:open_store",
    "parse_url": "cachedeps.config:parse_url",
    "SqlFeed": "cachedeps.feed:SqlFeed",
    "StoreFeed": "cachedeps.feed:StoreFeed",
    "Deque": "cachedeps.deque:Deque",
    "mcas_get": "cachedeps.mcas:mcas_get",
    "mcas_get_many": "cachedeps.mcas:mcas_get_many",
    "mcas_add": "cachedeps.mcas:mcas_add",
    "unit_of_work": "cachedeps.work:unit_of_work",
}

__all__ = [
    "NO_VALUE", "Item", "Store", "DependencyStore",
    "CachedepsError", "ConfigurationError", "InvalidKey", "ValueTooLarge", "SerializationError",
    "BackendError", "BackendUnavailable", "ProtocolError", "FeedError", "StaleRead", "PicklingFailed",
    "CorruptValue", "NonNumericValue",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'cachedeps' has no attribute {name!r}")
    import importlib

    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
