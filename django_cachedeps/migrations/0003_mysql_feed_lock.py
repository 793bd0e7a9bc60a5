"""On MySQL/MariaDB, create the one-row lock table that serializes change-feed writers.

An AUTO_INCREMENT tid is taken at INSERT time, not at COMMIT: feed writers lock the row of
``cachedeps_change_lock`` until their transaction ends, so tids become visible in order
(see :class:`cachedeps.feed.SqlFeed`). Other databases need no table (PostgreSQL takes an
advisory lock, SQLite serializes writers); nothing runs there.
"""

from __future__ import annotations

from django.db import migrations


def _feed(schema_editor):
    from cachedeps.feed import SqlFeed

    from django_cachedeps.conf import FEED_TABLE

    return SqlFeed(dialect="mysql", table=FEED_TABLE)


def create_lock_table(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for stmt in _feed(schema_editor).lock_ddl():
        schema_editor.execute(stmt)


def drop_lock_table(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    schema_editor.execute(f"DROP TABLE IF EXISTS {_feed(schema_editor).lock_table}")


class Migration(migrations.Migration):
    dependencies = [("django_cachedeps", "0002_change_unmanaged")]

    # atomic=False: MySQL cannot run DDL inside a transaction (it commits implicitly).
    operations = [migrations.RunPython(create_lock_table, drop_lock_table, atomic=False, elidable=False)]
