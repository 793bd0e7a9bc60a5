"""The SQLite backend reads ``OPTIONS`` ``transaction_mode`` and ``init_command`` on every
supported Django (Django itself from 5.1 on; 4.2 and 5.0 passed them to ``sqlite3.connect``,
which refused them): the multi-process setup of docs/django.md works on all of them."""

from __future__ import annotations

import sqlite3

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from django_cachedeps.db.backends.sqlite3.base import DatabaseWrapper

pytestmark = [pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's options"), pytest.mark.django_db]


def _wrapper(path, **options) -> DatabaseWrapper:
    settings = {**connection.settings_dict, "NAME": str(path), "OPTIONS": options, "TEST": {}}
    return DatabaseWrapper(settings, alias="sqlite_options")


def test_immediate_mode_and_init_command(tmp_path):
    db = tmp_path / "x.sqlite3"
    w = _wrapper(db, transaction_mode="immediate", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                 timeout=5)
    try:
        w.ensure_connection()
        assert w.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert w.connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        w._start_transaction_under_autocommit()  # what atomic() runs: BEGIN IMMEDIATE
        other = sqlite3.connect(db, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the write lock is taken at BEGIN
        finally:
            other.close()
        w.connection.execute("ROLLBACK")
    finally:
        w.close()


def test_a_bad_transaction_mode_names_the_option(tmp_path):
    w = _wrapper(tmp_path / "y.sqlite3", transaction_mode="eager")
    with pytest.raises(ImproperlyConfigured, match=r"\['OPTIONS'\]\['transaction_mode'\].*'IMMEDIATE'"):
        w.ensure_connection()
