"""Fixtures for the Django tests: a fresh engine and an empty store per test, the store
switchable between the embedded store and memcached, and query counting that tells the
feed poll apart from the queries the cache should have saved."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from django_cachedeps import runtime

__all__ = ["DbQueries"]


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    """Start every test with new engines (empty delta maps) and an empty store."""
    runtime.reset()
    yield
    runtime.reset()


class DbQueries(CaptureQueriesContext):
    """Capture queries; ``data`` leaves out the feed's own statements."""

    @property
    def data(self) -> list[str]:
        return [q["sql"] for q in self.captured_queries if "cachedeps_change" not in q["sql"]]


@pytest.fixture
def queries() -> Any:
    """Return a factory of :class:`DbQueries` contexts on the default connection."""
    return lambda: DbQueries(connection)


@pytest.fixture
def engine(transactional_db: None) -> Any:
    """Return the default database's engine (tests using it run with real commits)."""
    return runtime.get_engine()


@pytest.fixture(params=["embedded", "memcached"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test against the embedded store and against a real memcached."""
    if request.param == "embedded":
        url = "embedded://?max_memory=16MB"
    else:
        server = request.getfixturevalue("memcached")
        url = server.url
    caches = {"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": url}}
    with override_settings(CACHES=caches):
        engine = runtime.get_engine()
        engine.store.flush_all()
        yield url
