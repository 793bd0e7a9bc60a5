"""Make the feed table unmanaged: ``flush`` and ``reset_sequences`` leave it alone.

The table itself is unchanged (no SQL runs).
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("django_cachedeps", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="change",
            options={"db_table": "cachedeps_change", "managed": False, "verbose_name": "change"},
        ),
    ]
