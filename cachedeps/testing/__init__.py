"""A conformance suite any :class:`~cachedeps.api.Store` can run (needs pytest).

Subclass :class:`StoreConformance` in a test module and give it a ``store`` fixture::

    import pytest
    from cachedeps.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self):
            store = MyStore(...)
            yield store
            store.close()

Optional fixtures widen the run: ``small_store`` (a store of a few MiB, for eviction) and
``dead_store`` (a store whose server is down). Class attributes tune timing-dependent
tests to the backend's clock: ``short_expire`` and ``expire_wait``.
"""

from __future__ import annotations

from .conformance import StoreConformance

__all__ = ["StoreConformance"]
