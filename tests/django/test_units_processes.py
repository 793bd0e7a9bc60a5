"""Units of work across processes (issue 12, deliverable 5): management commands and a real
Celery worker on RabbitMQ, with another process committing writes between units.

Each unit polls the change feed once and then answers from the cache; a write another
process committed before a unit began is seen by it; a unit reads its own writes. The
database is a SQLite file (or a PostgreSQL database of its own in the PostgreSQL run),
shared by the processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import require
from tests.django._checker_db import fresh_pg_database

ON_POSTGRESQL = os.environ.get("CACHEDEPS_TEST_DB", "sqlite") == "postgresql"
BROKER_PORT = 5672

_SETUP = "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.django.settings'; django.setup();"


def _python(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _writer(pk: int, title: str) -> str:
    """Code for another process that commits a new title for book ``pk``."""
    return _SETUP + (
        "from tests.django.testapp.models import Book;"
        f"assert Book.objects.filter(pk={pk}).update(title={title!r}) == 1"
    )


@pytest.fixture
def shared_db(tmp_path, request):
    """Return (env, pk): a database the processes share, migrated, with one book 'Before'."""
    if ON_POSTGRESQL:
        request.getfixturevalue("postgres_dsn")
        with fresh_pg_database() as db:
            yield _prepare(db)
    else:
        yield _prepare({"CACHEDEPS_TEST_DB": "sqlite", "CACHEDEPS_TEST_SQLITE_FILE": str(tmp_path / "db.sqlite3")})


def _prepare(db: dict) -> tuple[dict, int]:
    env = {**os.environ, **db, "DJANGO_SETTINGS_MODULE": "tests.django.settings"}
    env.pop("CACHEDEPS_TEST_STORE", None)  # each process its own embedded store
    out = _python(
        _SETUP + "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from tests.django.testapp.models import Author, Book;"
        "print(Book.objects.create(author=Author.objects.create(name='A'), title='Before', isbn='1').pk)",
        env,
    )
    return env, int(out.split()[-1])


def test_another_process_writes_between_two_commands(shared_db):
    env, pk = shared_db
    done = subprocess.run(
        [sys.executable, "-m", "tests.django.units_reader", str(pk), _writer(pk, "Theirs")],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["first"]["titles"] == ["Before"] * 10 and out["first"]["polls"] == 1
    # warm: ten reads, one poll, no data query
    assert out["second"] == {"titles": ["Before"] * 10, "polls": 1, "feed_queries": 1, "data_queries": 0}
    # the other process's write committed before the third command began: every read sees it
    assert out["third"]["titles"] == ["Theirs"] * 10
    assert out["third"]["polls"] == 1
    assert out["own_writes"] == ["Theirs", "Mine", "Mine"]


# -- Celery ------------------------------------------------------------------------------------


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", BROKER_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def worker(shared_db, tmp_path):
    """Start a Celery worker process (prefork, one child) on a queue of its own; yield
    (env, pk, queue)."""
    pytest.importorskip("celery")
    require(_broker_up(), f"RabbitMQ is not reachable at 127.0.0.1:{BROKER_PORT} (rabbitmq-server -detached)")
    env, pk = shared_db
    queue = f"cachedeps-tests-{uuid.uuid4().hex[:12]}"
    log = open(tmp_path / "worker.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.django.celeryapp", "worker", "--pool=prefork",
         "--concurrency=1", "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel=WARNING", "-n", f"{queue}@localhost"],
        env={**env, "CACHEDEPS_TEST_QUEUE": queue}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield env, pk, queue
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        from tests.django.celeryapp import app

        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        log.seek(0)
        text = log.read()
        log.close()
        assert "Traceback" not in text, text[-3000:]


def _call(queue: str, name: str, *args: object) -> object:
    from tests.django.celeryapp import app

    deadline = time.monotonic() + 90  # the worker's first task waits for it to start
    result = app.send_task(name, args=list(args), queue=queue)
    return result.get(timeout=max(1.0, deadline - time.monotonic()))


def test_a_celery_worker_polls_once_per_task_and_sees_writes_between_tasks(worker):
    env, pk, queue = worker
    first = _call(queue, "cachedeps_tests.read_books", [pk], 10)
    assert first["titles"] == ["Before"] * 10 and first["polls"] == 1
    second = _call(queue, "cachedeps_tests.read_books", [pk], 10)
    assert second == {"titles": ["Before"] * 10, "polls": 1, "feed_queries": 1, "data_queries": 0}
    _python(_writer(pk, "Theirs"), env)  # another process commits between two tasks
    third = _call(queue, "cachedeps_tests.read_books", [pk], 10)
    assert third["titles"] == ["Theirs"] * 10 and third["polls"] == 1
    assert _call(queue, "cachedeps_tests.rename_and_read", pk, "Mine") == ["Theirs", "Mine", "Mine"]
    assert _call(queue, "cachedeps_tests.read_books", [pk], 10)["titles"] == ["Mine"] * 10
