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
assert b"demo-password" in c.get("/accounts/login/").content  # the password on the login page
assert c.login(username="demo", password="demo-password")
assert c.get("/admin/").status_code == 200  # a staff account
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


def _make_dry_run(*args):
    done = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VENV": "/nonexistent-venv"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_takes_a_port_and_installs_only_the_demo_extra():
    out = _make_dry_run("demo", "PORT=8001")
    assert "runserver 127.0.0.1:8001" in out
    assert "'.[demo]'" in out and "[test]" not in out
    assert "'.[test]'" in _make_dry_run("test")


def test_license_is_an_spdx_expression_with_its_file():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # not the deprecated {text = ...} table
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "django" in " ".join(project["project"]["optional-dependencies"]["demo"]).lower()
