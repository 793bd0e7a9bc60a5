"""What a unit of work costs: N cached reads, the feed polls and database queries they ran.

Shared by the management commands and the Celery tasks of the unit-of-work tests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_books"]


def read_books(pks: list[int], reads: int) -> dict[str, Any]:
    """Read the books ``pks`` round-robin ``reads`` times (by pk and by a query); count the cost."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_cachedeps import runtime
    from tests.django.testapp.models import Book

    engine = runtime.get_engine()
    polls = engine.stats()["polls"]
    titles = []
    with CaptureQueriesContext(connection) as captured:
        for i in range(reads):
            pk = pks[i % len(pks)]
            if i % 2:
                titles.append(Book.objects.get(pk=pk).title)  # the state path
            else:
                titles.append(Book.objects.filter(pk=pk).values_list("title", flat=True)[0])  # a query entry
    sql = [q["sql"] for q in captured.captured_queries]
    feed = [s for s in sql if "cachedeps_change" in s]
    return {
        "titles": titles,
        "polls": engine.stats()["polls"] - polls,
        "feed_queries": len(feed),
        "data_queries": len(sql) - len(feed),
    }
