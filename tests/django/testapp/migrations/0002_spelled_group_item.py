import django.db.models.deletion
from django.db import migrations, models

import tests.django.testapp.models
from tests.django.testapp.models import CI_COLLATION


def _create_collation(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE COLLATION IF NOT EXISTS {CI_COLLATION} "
            "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
        )


class Migration(migrations.Migration):

    dependencies = [
        ("testapp", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_create_collation, migrations.RunPython.noop),
        migrations.CreateModel(
            name="Spelled",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(db_collation=CI_COLLATION, default="", max_length=50)),
                ("data", models.JSONField(default=dict)),
                ("numbers", tests.django.testapp.models.CommaList(default=list)),
                ("uid", models.UUIDField(null=True)),
                ("color", models.CharField(default="RED", max_length=10)),
            ],
            options={"db_table": "spelled"},
        ),
        migrations.CreateModel(
            name="Group",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=20)),
                ("rank", models.IntegerField(default=0)),
            ],
            options={"db_table": "pgroup"},
        ),
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("k", models.IntegerField()),
                ("n", models.IntegerField(null=True)),
                ("s", models.CharField(max_length=20, null=True)),
                ("flag", models.BooleanField(default=False)),
                ("group", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                            related_name="items", to="testapp.group")),
            ],
            options={"db_table": "pitem"},
        ),
    ]
