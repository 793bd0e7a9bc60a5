from django.db import migrations, models

import tests.django.testapp.models


class Migration(migrations.Migration):

    dependencies = [
        ("testapp", "0002_spelled_group_item"),
    ]

    operations = [
        migrations.CreateModel(
            name="Wrapped",
            fields=[
                ("id", tests.django.testapp.models.WrappedAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=20)),
            ],
            options={"db_table": "wrapped"},
        ),
    ]
