"""Fixtures for the engine tests."""

from __future__ import annotations

import pytest

from cachedeps.cache import Cache
from cachedeps.store.embedded import EmbeddedStore

from ._support import DictStore, sqlite_feed


@pytest.fixture
def embedded():
    """A fresh embedded store without its sweeper thread."""
    store = EmbeddedStore(background=False)
    yield store
    store.close()


@pytest.fixture
def dictstore():
    """A dict-backed store without native dependency trees."""
    return DictStore()


@pytest.fixture
def db(tmp_path):
    """A SQLite database file with the feed table: ``(conn, feed)``."""
    conn, feed = sqlite_feed(tmp_path / "feed.db")
    yield conn, feed
    conn.close()


@pytest.fixture
def pair(embedded, db):
    """Two caches over one store and one feed, standing for two processes."""
    conn, feed = db
    a = Cache(embedded, feed=feed)
    b = Cache(embedded, feed=feed)
    a.poll(conn)
    b.poll(conn)
    return conn, feed, a, b
