"""Stamps, commits and locks of the Django adapter (issue 9: breaks 9, 10, 11, 19, 20, 21).

- an entry is stamped with a position from before the reads it holds, whatever another
  thread polls meanwhile and whatever the transaction's isolation level;
- the engine learns a commit's keys before Django runs ``on_commit`` hooks;
- the feed going backwards (flush, sequence reset) resets to misses;
- writers do not hold the feed lock for their whole transaction: no deadlock with row
  locks, no serialization of writers;
- Django's own errors reach the caller unchanged.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.core.cache import caches
from django.core.exceptions import SynchronousOnlyOperation
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.transaction import TransactionManagementError

from django_cachedeps import runtime
from tests.django.orm._support import fresh, seed, served_from_cache
from tests.django.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)

_PG = connection.vendor == "postgresql"
_MYSQL = connection.vendor == "mysql"
postgresql_only = pytest.mark.skipif(not _PG, reason="row locks and isolation levels of PostgreSQL")
#: what PostgreSQL and MySQL/MariaDB (InnoDB) share: row locks, snapshots, REPEATABLE READ
row_locks = pytest.mark.skipif(not (_PG or _MYSQL), reason="row locks and isolation levels of PostgreSQL and MySQL")


@pytest.fixture
def data(engine):
    return seed()


def _in_thread(fn):
    """Run ``fn`` in another thread (its own connection); return its result or raise its error."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out["error"] = exc
        finally:
            connections.close_all()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the other thread is stuck"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _write_and_poll(pk, title):
    """Another thread commits a write and polls (moving the process-wide position)."""

    def run():
        Book.objects.filter(pk=pk).update(title=title)
        runtime.ensure_polled("default")

    _in_thread(run)


# -- 9: cache.set(depends_on=) takes a stamp from before the computation ------------------


def test_backend_set_is_stamped_before_another_threads_poll(data):
    cache = caches["default"]
    pk = data["b1"].pk
    with runtime.unit_of_work():
        title = Book.objects.get(pk=pk).title  # this request polls, then reads "Alpha"
        _write_and_poll(pk, "Changed")  # a write the value predates, polled by another thread
        cache.set("page", f"<h1>{title}</h1>", depends_on=[f"book:{pk}"])
    assert cache.get("page") in (None, "<h1>Changed</h1>")


def test_backend_set_outside_a_request_uses_this_threads_poll(data):
    cache = caches["default"]
    pk = data["b1"].pk
    title = Book.objects.get(pk=pk).title
    _write_and_poll(pk, "Changed")
    cache.set("page", title, depends_on=[f"book:{pk}"])
    assert cache.get("page") in (None, "Changed")


def test_engine_set_inside_a_recording_is_stamped_when_it_began(data, engine):
    pk = data["b1"].pk
    with engine.recording() as rec:
        title = Book.objects.get(pk=pk).title
        _write_and_poll(pk, "Changed")
        engine.set("page", title, depends_on=rec.keys)
    assert engine.get("page", None) is None


# -- 10: a snapshot older than the process's position ---------------------------------------


@row_locks
def test_repeatable_read_set_inside_atomic_is_not_stamped_newer_than_its_snapshot(data):
    pk = data["b1"].pk
    read = lambda: list(Book.objects.filter(pk=pk).values_list("title", flat=True))  # noqa: E731
    runtime.ensure_polled("default")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert Author.objects.count() == 2  # takes the snapshot
        _write_and_poll(pk, "Changed")  # committed after the snapshot; the process polls it
        assert read() == ["Alpha"]  # the snapshot's answer; must not be stored as current
    assert read() == ["Changed"]
    assert read() == fresh(read)


@row_locks
def test_cached_view_in_a_repeatable_read_transaction_is_not_stamped_newer_than_its_snapshot(data):
    from django.http import HttpResponse
    from django.test import RequestFactory

    from django_cachedeps.decorators import cached_view

    pk = data["b1"].pk

    @cached_view
    def page(request):
        return HttpResponse(Book.objects.get(pk=pk).title)

    def render():
        with runtime.unit_of_work():
            return page(RequestFactory().get("/rr-page/")).content

    runtime.ensure_polled("default")
    with transaction.atomic():  # as with ATOMIC_REQUESTS
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert Author.objects.count() == 2  # takes the snapshot
        _write_and_poll(pk, "Changed")
        assert render() == b"Alpha"  # the snapshot's page: must not be stored as current
    assert render() == b"Changed"


@row_locks  # SQLite: a reading transaction keeps writers from committing
def test_fill_inside_a_transaction_is_stamped_when_it_began(data):
    pk = data["b1"].pk
    read = lambda: list(Book.objects.filter(pk=pk).values_list("title", flat=True))  # noqa: E731
    runtime.ensure_polled("default")
    with transaction.atomic():
        assert Author.objects.count() == 2
        _write_and_poll(pk, "Changed")
        read()
    assert read() == fresh(read) == ["Changed"]


# -- 11: on_commit hooks run after the engine knows the commit ------------------------------


def test_on_commit_hook_registered_before_the_write_reads_the_new_row(data):
    pk = data["b1"].pk
    seen = []
    with runtime.unit_of_work():  # one request: the feed is polled once, at the first read
        served_from_cache(lambda: Book.objects.get(pk=pk).title)
        with transaction.atomic():
            transaction.on_commit(lambda: seen.append(Book.objects.get(pk=pk).title))
            Book.objects.filter(pk=pk).update(title="New")
    assert seen == ["New"]


# -- 13, 19: the feed flushed, truncated, its sequence reset ----------------------------------


def _flush_and_reset_sequences():
    """What TransactionTestCase(reset_sequences=True) does between tests."""
    call_command("flush", verbosity=0, interactive=False, reset_sequences=False, allow_cascade=False,
                 inhibit_post_migrate=True)
    from django.core.management.color import no_style

    statements = connection.ops.sequence_reset_by_name_sql(
        no_style(), connection.introspection.sequence_list()
    )
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _truncate_feed_restarting_tids():
    """A TRUNCATE ... RESTART IDENTITY of the feed (or a backup restored from before)."""
    with connection.cursor() as cursor:
        if _PG:
            cursor.execute("TRUNCATE cachedeps_change RESTART IDENTITY")
        elif _MYSQL:
            cursor.execute("TRUNCATE TABLE cachedeps_change")  # AUTO_INCREMENT back to 1
        else:
            cursor.execute("DELETE FROM cachedeps_change")
            cursor.execute("UPDATE sqlite_sequence SET seq = 0 WHERE name = 'cachedeps_change'")


@pytest.mark.parametrize("how", ["truncate", "restore"])
def test_feed_going_backwards_resets_the_cache_to_misses(engine, how):
    data = seed()
    pk = data["b1"].pk
    titles = lambda: list(Book.objects.order_by("pk").values_list("title", flat=True))  # noqa: E731
    served_from_cache(titles)
    served_from_cache(lambda: Book.objects.get(pk=pk).title)
    before = engine.current_tid
    if how == "truncate":
        _truncate_feed_restarting_tids()
    else:  # a backup from before the first of these rows, restored: rows and sequence
        with connection.cursor() as cursor:
            cursor.execute("SELECT MIN(tid) FROM cachedeps_change")
            oldest = cursor.fetchone()[0]
            cursor.execute("DELETE FROM cachedeps_change WHERE tid > %s", [oldest])
            if _PG:
                cursor.execute("SELECT setval(pg_get_serial_sequence('cachedeps_change', 'tid'), %s)", [oldest])
            elif _MYSQL:
                cursor.execute(f"ALTER TABLE cachedeps_change AUTO_INCREMENT = {oldest + 1}")
            else:
                cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = 'cachedeps_change'", [oldest])
    Book.objects.filter(pk=pk).update(title="Later")  # a tid below every position polled so far
    assert Book.objects.get(pk=pk).title == "Later"
    assert titles() == ["Later", "Beta", "Gamma"]
    served_from_cache(titles)
    Book.objects.filter(pk=pk).update(title="Again")
    assert titles() == ["Again", "Beta", "Gamma"]
    assert engine.current_tid > before  # moved forward, never backwards


def test_get_by_pk_after_reset_sequences_finds_the_row(engine):
    _flush_and_reset_sequences()
    assert Author.objects.create(name="Old").pk == 1
    assert Author.objects.get(pk=1).name == "Old"  # cached state of author:1
    with pytest.raises(Author.DoesNotExist):
        Author.objects.get(pk=2)  # cached: no such row
    _flush_and_reset_sequences()  # the next TransactionTestCase(reset_sequences=True)
    Author.objects.create(name="A")
    Author.objects.create(name="B")
    assert Author.objects.get(pk=1).name == "A"
    assert Author.objects.get(pk=2).name == "B"


# -- 20: no feed lock held while waiting for row locks --------------------------------------


@row_locks
def test_row_lock_holder_saving_while_main_update_waits_does_not_deadlock(data):
    pk = data["b1"].pk
    locked = threading.Event()
    go = threading.Event()

    def holder():
        with transaction.atomic():
            book = Book.objects.select_for_update().get(pk=pk)  # row lock, like update_or_create
            locked.set()
            go.wait(10)
            import time

            time.sleep(0.3)  # the main thread's update is waiting on the row by now
            Author.objects.create(name="Saved by A")  # a write of its own
            book.title = "From A"
            book.save()

    t = threading.Thread(target=lambda: (holder(), connections.close_all()))
    t.start()
    try:
        assert locked.wait(10)
        go.set()
        Book.objects.filter(author=data["ann"]).update(pages=7)  # waits on A's row, as plain Django
    finally:
        t.join(30)
    assert not t.is_alive()
    assert Book.objects.get(pk=pk).title == "From A" and Book.objects.get(pk=pk).pages == 7
    assert Author.objects.filter(name="Saved by A").exists()


@row_locks
def test_writers_of_different_rows_do_not_wait_for_each_other(data):
    started = threading.Event()
    release = threading.Event()

    def long_writer():
        with transaction.atomic():
            Book.objects.filter(pk=data["b1"].pk).update(pages=1)
            started.set()
            release.wait(10)

    t = threading.Thread(target=lambda: (long_writer(), connections.close_all()))
    t.start()
    try:
        assert started.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET innodb_lock_wait_timeout = 2" if _MYSQL else "SET lock_timeout = '2s'")
        try:
            Book.objects.filter(pk=data["b2"].pk).update(pages=2)  # its own row: no waiting
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET innodb_lock_wait_timeout = 50" if _MYSQL else "SET lock_timeout = 0")
    finally:
        release.set()
        t.join(30)
    assert Book.objects.get(pk=data["b2"].pk).pages == 2


# -- 21: Django's own errors, unchanged -----------------------------------------------------


def test_sync_read_in_async_context_raises_synchronous_only_operation(data):
    async def read():
        return Book.objects.get(pk=data["b1"].pk)

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(read())


def test_sync_read_in_async_context_meets_djangos_check_before_the_feed_poll(data):
    # Django's SimpleTestCase refuses connections from other threads (ensure_connection
    # patched to raise DatabaseOperationForbidden), and runs async tests in one: a read must
    # meet Django's own check (connection.cursor(), SynchronousOnlyOperation) before the
    # cached path asks the connection anything for its feed poll (Django's async tests).
    from unittest import mock

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.test.testcases import DatabaseOperationForbidden

    pk = data["b1"].pk
    Book.objects.get(pk=pk), list(Book.objects.filter(pages__gt=0))  # the engine built, its feed known

    async def read_one():
        return Book.objects.get(pk=pk)

    async def read_many():
        return list(Book.objects.filter(pages__gt=0))

    refused = DatabaseOperationForbidden("connections are not allowed here")
    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", side_effect=refused):
        for read in (read_one, read_many):
            with pytest.raises(SynchronousOnlyOperation):
                asyncio.run(read())


def test_sync_write_in_async_context_raises_synchronous_only_operation(data):
    async def write():
        Book.objects.filter(pk=data["b1"].pk).update(title="x")

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(write())


def test_write_in_a_broken_atomic_block_raises_transaction_management_error(data):
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            Book.objects.create(author=data["ann"], title="Dup", isbn="111")
        with pytest.raises(TransactionManagementError):
            Book.objects.filter(pk=data["b1"].pk).update(title="x")
        with pytest.raises(TransactionManagementError):
            Book.objects.create(author=data["ann"], title="New", isbn="999")
        with pytest.raises(TransactionManagementError):
            list(Book.objects.filter(pages__gt=0))


def test_write_of_an_invalid_value_raises_djangos_error(data, queries):
    with queries() as q:
        with pytest.raises((TypeError, ValueError)):
            Book.objects.filter(pk=data["b1"].pk).update(pages="many")
        with pytest.raises((TypeError, ValueError)):
            Book.objects.create(author=data["ann"], title="T", isbn="9", pages="many")
    assert q.data == []  # no statement ran before Django refused the value
    assert Book.objects.get(pk=data["b1"].pk).pages == 100


def test_database_error_in_a_write_propagates_unchanged(data):
    with pytest.raises(DatabaseError) as info:
        Book.objects.create(author=data["ann"], title="Dup", isbn="111")
    assert isinstance(info.value, IntegrityError)


# -- pruning in the committing transaction ---------------------------------------------------


def test_automatic_pruning_at_commit_keeps_reads_correct(data, monkeypatch):
    from django.test import override_settings

    from django_cachedeps.db import writes

    monkeypatch.setattr(writes, "PRUNE_EVERY", 2)
    titles = lambda: list(Book.objects.order_by("pk").values_list("title", flat=True))  # noqa: E731
    with override_settings(CACHEDEPS={"CACHE": "default", "FEED_KEEP": 1}):
        served_from_cache(titles)
        for i in range(4):
            Book.objects.filter(pk=data["b1"].pk).update(title=f"T{i}")
            assert titles() == [f"T{i}", "Beta", "Gamma"]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {connection.ops.quote_name('key')} FROM cachedeps_change ORDER BY tid")
            keys = [k for (k,) in cursor.fetchall()]
    assert any(k.startswith("!pruned:") for k in keys)
    assert len(keys) <= 40  # the last pruning kept one row; two commits came after it


@postgresql_only
def test_old_rows_are_read_for_no_key_update_like_the_update_itself(data, queries):
    with queries() as q:
        Book.objects.filter(author=data["ann"]).update(pages=5)
    reads = [sql for sql in q.data if sql.startswith("SELECT")]
    assert reads and "FOR NO KEY UPDATE" in reads[0]
    # a foreign key check on the row (KEY SHARE) does not wait for a writer holding it
    locked = threading.Event()
    release = threading.Event()

    def writer():
        with transaction.atomic():
            Author.objects.filter(pk=data["ann"].pk).update(name="Ann B.")
            locked.set()
            release.wait(10)

    t = threading.Thread(target=lambda: (writer(), connections.close_all()))
    t.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            Book.objects.create(author=data["ann"], title="Child", isbn="777")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
    finally:
        release.set()
        t.join(30)


@row_locks
@pytest.mark.parametrize("field, values", [("title", ("Blue", "Green")), ("pages", (555, 777))])
def test_old_values_are_those_the_update_replaced_when_another_writer_commits_first(data, field, values):
    """Without a transaction-long lock, a second writer's old values must be read after the
    first writer's commit (FOR NO KEY UPDATE / FOR UPDATE waits for it), or its keys miss the
    value it replaced. (On MySQL only the integer column is keyed by its value.)"""
    pk = data["b1"].pk
    first_value, second_value = values
    blue = lambda: Book.objects.filter(**{field: first_value}).count()  # noqa: E731 - keyed by the value
    first_updated, first_commit = threading.Event(), threading.Event()
    second_updated, second_commit = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            Book.objects.filter(pk=pk).update(**{field: first_value})
            first_updated.set()
            first_commit.wait(10)

    def second():
        with transaction.atomic():
            Book.objects.filter(pk=pk).update(**{field: second_value})  # waits for the first writer
            second_updated.set()
            second_commit.wait(10)

    threads = [threading.Thread(target=lambda f=f: (f(), connections.close_all())) for f in (first, second)]
    threads[0].start()
    try:
        assert first_updated.wait(10)
        threads[1].start()
        import time

        time.sleep(0.3)  # the second writer is waiting on the row
        first_commit.set()
        assert second_updated.wait(10)
        assert blue() == 1  # the first commit is visible, the second not yet
        served_from_cache(blue)
        second_commit.set()
    finally:
        first_commit.set()
        second_commit.set()
        for t in threads:
            t.join(30)
    assert blue() == 0 == fresh(blue)
