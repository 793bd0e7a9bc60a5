"""The demo site: migrate, seed, then its pages render, are cached and follow an edit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "testproject"

_SCRIPT = r"""
import os, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
import django; django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from bookmarks.models import Bookmark
c = Client()
for path in ["/", "/u/alice/", "/u/alice/?order=importance", "/t/python/", "/u/alice/feed/",
             "/accounts/login/"]:
    assert c.get(path).status_code == 200, path
    with CaptureQueriesContext(connection) as ctx:
        assert c.get(path).status_code == 200
    if path != "/accounts/login/":
        assert len(ctx.captured_queries) <= 1, (path, ctx.captured_queries)  # the feed poll
assert b"demo-password" in c.get("/").content
assert c.login(username="demo", password="demo-password")
bm = Bookmark.objects.filter(owner__username="demo").order_by("-created").first()
assert c.get(f"/b/{bm.pk}/edit/").status_code == 200
r = c.post(f"/b/{bm.pk}/edit/", {"url": bm.url, "title": "An edited title", "importance": 5})
assert r.status_code == 302, r.content
assert b"An edited title" in Client().get("/u/demo/?order=importance").content
assert b"An edited title" in Client().get("/").content
print("OK")
"""


def test_demo_site_migrates_seeds_and_serves(tmp_path):
    env = {**os.environ, "DEMO_DB": str(tmp_path / "demo.sqlite3"), "DJANGO_DEBUG": "0",
           "DJANGO_SETTINGS_MODULE": "testproject.settings", "DEMO_CACHE_MODE": "cachedeps"}
    manage = [sys.executable, str(PROJECT / "manage.py")]
    for args in (["check"], ["migrate", "--noinput", "-v0"], ["seed_bookmarks", "--bookmarks", "300"],
                 ["seed_bookmarks", "--bookmarks", "300"]):
        done = subprocess.run([*manage, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert "already seeded" in done.stdout  # idempotent
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(PROJECT), str(ROOT)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]
