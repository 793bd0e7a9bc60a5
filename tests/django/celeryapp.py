"""The Celery app of the unit-of-work tests: a real worker (``celery -A tests.django.celeryapp
worker``) on RabbitMQ at 127.0.0.1:5672, or eager calls in the test process.

Each test run takes a queue of its own (``CACHEDEPS_TEST_QUEUE``), so that runs sharing the
broker never take each other's tasks.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

BROKER = os.environ.get("CACHEDEPS_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

app = Celery("cachedeps_tests")
app.conf.update(
    broker_url=BROKER,
    result_backend="rpc://",
    task_default_queue=os.environ.get("CACHEDEPS_TEST_QUEUE", "cachedeps-tests"),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)


@app.task(name="cachedeps_tests.read_books")
def read_books(pks: list[int], reads: int) -> dict[str, Any]:
    """Read books through the cache ``reads`` times; return titles, feed polls and queries."""
    from tests.django.testapp.units_probe import read_books as probe

    return probe(pks, reads)


@app.task(name="cachedeps_tests.rename_and_read")
def rename_and_read(pk: int, title: str) -> list[str]:
    """Read a book, rename it, read it again (read-your-writes inside the task's unit)."""
    from tests.django.testapp.models import Book

    before = Book.objects.get(pk=pk).title
    Book.objects.filter(pk=pk).update(title=title)
    return [before, Book.objects.get(pk=pk).title, Book.objects.filter(pk=pk).values_list("title", flat=True)[0]]
