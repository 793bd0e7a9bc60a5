"""``invalidate_model``/``invalidate_object`` reach another process through the change feed:
a reader process serves a cached read of a row changed behind cachedeps's back until a
second process calls the helper; its next request reads the database's value. Processes
share a SQLite file and a memcached."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.memcached,
              pytest.mark.skipif(os.environ.get("CACHEDEPS_TEST_DB", "sqlite") != "sqlite",
                                 reason="the SQLite run covers it (a file shared by processes)")]

_SETUP = (
    "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.django.settings'; django.setup()\n"
    "from django.conf import settings\n"
    # the test changes a row behind cachedeps's back on purpose: verify mode would call that stale
    "settings.CACHEDEPS = {**settings.CACHEDEPS, 'VERIFY': False}\n"
)

_PREPARE = _SETUP + """
from django.core.management import call_command
call_command('migrate', verbosity=0)
from tests.django.testapp.models import Author, Book
a = Author.objects.create(name='w')
Book.objects.create(author=a, title='Alpha', isbn='111', pages=1)
Book.objects.create(author=a, title='Other', isbn='222', pages=2)
"""

# One "request" per line read: prints the title by pk, the titles by author and the number of
# queries other than the feed poll.
_READER = _SETUP + """
import sys
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_cachedeps import runtime
from tests.django.testapp.models import Book
for line in sys.stdin:
    with runtime.unit_of_work(), CaptureQueriesContext(connection) as q:
        book = Book.objects.get(isbn='111')
        row = Book.objects.get(pk=book.pk).title
        titles = ','.join(Book.objects.filter(author_id=book.author_id).order_by('isbn').values_list('title', flat=True))
    queries = len([x for x in q.captured_queries if 'cachedeps_change' not in x['sql']])
    print(row, titles, queries, flush=True)
"""

_INVALIDATE = _SETUP + """
import sys
from django_cachedeps import invalidate_model, invalidate_object
from tests.django.testapp.models import Book
if sys.argv[1] == 'object':
    print(invalidate_object(Book.objects.get(isbn='111')))
else:
    print(invalidate_model(Book))
"""


@pytest.mark.parametrize("helper", ["object", "model"])
def test_an_invalidation_in_one_process_refreshes_another(tmp_path, memcached, helper):
    db = tmp_path / "db.sqlite3"
    env = {**os.environ, "CACHEDEPS_TEST_SQLITE_FILE": str(db), "CACHEDEPS_TEST_STORE": memcached.url}
    subprocess.run([sys.executable, "-c", _PREPARE], env=env, check=True, cwd=os.getcwd(), timeout=120)
    reader = subprocess.Popen([sys.executable, "-c", _READER], env=env, cwd=os.getcwd(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        def request() -> list[str]:
            reader.stdin.write("read\n")
            reader.stdin.flush()
            return reader.stdout.readline().split()

        assert request()[:2] == ["Alpha", "Alpha,Other"]
        assert request() == ["Alpha", "Alpha,Other", "0"]  # served from the cache
        with sqlite3.connect(db) as conn:  # behind cachedeps's back
            conn.execute("UPDATE book SET title = 'Changed' WHERE isbn = '111'")
        assert request() == ["Alpha", "Alpha,Other", "0"]  # the cache cannot know
        done = subprocess.run([sys.executable, "-c", _INVALIDATE, helper], env=env, cwd=os.getcwd(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout.strip()) > 0  # the change's position in the feed
        assert request()[:2] == ["Changed", "Changed,Other"]
        assert request() == ["Changed", "Changed,Other", "0"]  # and cached again
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
