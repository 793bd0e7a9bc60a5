from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="Change",
            fields=[
                ("tid", models.BigAutoField(primary_key=True, serialize=False)),
                ("key", models.CharField(max_length=255)),
            ],
            options={"db_table": "cachedeps_change", "verbose_name": "change"},
        ),
    ]
