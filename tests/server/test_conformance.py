"""The store conformance suite over TCP: pymemcache (RemoteStore) against ``cachedeps serve``."""

from __future__ import annotations

import pytest

from cachedeps.config import open_store
from cachedeps.testing import StoreConformance
from tests.conftest import free_port


class TestServeConformance(StoreConformance):
    @pytest.fixture
    def store(self, serve):
        store = open_store(f"memcache://{serve.address}")
        store.flush_all()
        yield store
        store.close()

    @pytest.fixture
    def small_store(self, serve_factory):
        server = serve_factory("--max-memory", "4MB")
        store = open_store(f"memcache://{server.address}")
        yield store
        store.close()

    @pytest.fixture
    def dead_store(self):
        store = open_store(f"memcache://127.0.0.1:{free_port()}?connect_timeout=0.5&timeout=0.5")
        yield store
        store.close()
