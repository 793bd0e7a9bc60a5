"""The feed poll on PostgreSQL with psycopg 3: prepared when the database's OPTIONS set
``prepare_threshold`` (Django's switch for prepared statements), never otherwise (Django's
default keeps transaction-mode poolers working); Django's execute wrappers, query log and
error translation still see it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from django.db import connection
from django.db.utils import ProgrammingError
from django.test.utils import CaptureQueriesContext

from cachedeps.feed import SqlFeed
from django_cachedeps import runtime

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")


@pytest.fixture
def threshold(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[Any]:
    """Run with ``OPTIONS["prepare_threshold"]`` set to the parameter (absent: Django's default)."""
    options = connection.settings_dict.setdefault("OPTIONS", {})
    saved = dict(options)
    if request.param is not None:
        options["prepare_threshold"] = request.param
    connection.close()
    runtime.reset()
    yield request.param
    options.clear()
    options.update(saved)
    connection.close()
    runtime.reset()


def prepared_polls() -> list[tuple[int, int]]:
    with connection.cursor() as cur:
        cur.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE %s", ["%FROM cachedeps_change WHERE tid >=%"])
        return [(int(g), int(c)) for g, c in cur.fetchall()]


def poll_times(n: int) -> Any:
    engine = runtime.get_engine()
    for _ in range(n):
        runtime.poll_engine(engine, "default")
    return engine


@pytest.mark.parametrize("threshold", [None], indirect=True)
def test_default_options_prepare_nothing(threshold):
    engine = poll_times(8)
    assert engine.feed.prepare is False
    assert prepared_polls() == []


@pytest.mark.parametrize("threshold", [5, 1000], indirect=True)
def test_prepare_threshold_prepares_the_poll_and_stops_planning_it(threshold):
    engine = poll_times(12)  # the first starts the engine (head), the rest poll
    assert engine.feed.prepare is True
    [(generic, custom)] = prepared_polls()
    assert custom <= 5 and generic >= 5, (generic, custom)


@pytest.mark.parametrize("threshold", [5], indirect=True)
def test_prepared_poll_goes_through_django_cursor_wrappers(threshold):
    engine = runtime.get_engine()
    runtime.poll_engine(engine, "default")  # resolves the statements
    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper), CaptureQueriesContext(connection) as logged:
        runtime.poll_engine(engine, "default")
    assert len(seen) == 1 and "FROM cachedeps_change WHERE tid >=" in seen[0]
    assert [q["sql"] for q in logged.captured_queries] == seen
    feed = SqlFeed("postgresql", table="cachedeps_change_missing", prepare=True)
    with pytest.raises(ProgrammingError):  # Django's error, not psycopg's
        feed.poll(runtime._PreparingConnection(connection), 0)
