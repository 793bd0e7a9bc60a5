"""Tables for the stale-read checker's query shapes (tests/django/test_consistency_shapes.py).

Each item ``i`` has a version, and every shape spells it differently, so a reader of any
shape returns the version the writers last committed:

- ``Slot``/``Fill``: an anti-join over a LEFT OUTER JOIN, ``slots without fills``;
- ``Flag``: a JSON value that changes from ``1`` to ``true`` (equal in Python);
- ``Word``: a case-insensitive collation (SQLite ``NOCASE``, MariaDB ``utf8mb4_general_ci``, a nondeterministic ICU collation
  on PostgreSQL), written in capitals and read in lower case;
- ``Counter``: a column changed by raw SQL that starts with a comment;
- ``Paint``/``Mark``: an enum name and a UUID, written by SQLAlchemy and read by Django.
"""

from __future__ import annotations

import os

from django.db import models

__all__ = ["COLLATION", "Slot", "Fill", "Flag", "Word", "Counter", "Paint", "Mark"]

#: The case-insensitive collation of ``Word.name`` on the test database.
COLLATION = {"postgresql": "cachedeps_ci", "mysql": "utf8mb4_general_ci"}.get(
    os.environ.get("CACHEDEPS_TEST_DB", "sqlite"), "NOCASE"
)


class Slot(models.Model):
    item = models.IntegerField()
    n = models.IntegerField()

    class Meta:
        db_table = "check_slot"


class Fill(models.Model):
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="fills")

    class Meta:
        db_table = "check_fill"


class Flag(models.Model):
    item = models.IntegerField()
    n = models.IntegerField()
    data = models.JSONField()

    class Meta:
        db_table = "check_flag"


class Word(models.Model):
    item = models.IntegerField()
    name = models.CharField(max_length=50, db_collation=COLLATION)

    class Meta:
        db_table = "check_word"


class Counter(models.Model):
    item = models.IntegerField(unique=True)
    version = models.IntegerField(default=0)

    class Meta:
        db_table = "check_counter"


class Paint(models.Model):
    color = models.CharField(max_length=10)

    class Meta:
        db_table = "check_paint"


class Mark(models.Model):
    uid = models.UUIDField()

    class Meta:
        db_table = "check_mark"
