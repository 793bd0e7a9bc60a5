import django.db.models.deletion
from django.db import migrations, models

from tests.django.checkapp.models import COLLATION


def _collation(apps, schema_editor):
    """Create the case-insensitive collation ``Word.name`` uses on PostgreSQL."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE COLLATION IF NOT EXISTS {COLLATION} "
            "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.RunPython(_collation, migrations.RunPython.noop),
        migrations.CreateModel(
            name='Counter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('item', models.IntegerField(unique=True)),
                ('version', models.IntegerField(default=0)),
            ],
            options={
                'db_table': 'check_counter',
            },
        ),
        migrations.CreateModel(
            name='Flag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('item', models.IntegerField()),
                ('n', models.IntegerField()),
                ('data', models.JSONField()),
            ],
            options={
                'db_table': 'check_flag',
            },
        ),
        migrations.CreateModel(
            name='Mark',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField()),
            ],
            options={
                'db_table': 'check_mark',
            },
        ),
        migrations.CreateModel(
            name='Paint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('color', models.CharField(max_length=10)),
            ],
            options={
                'db_table': 'check_paint',
            },
        ),
        migrations.CreateModel(
            name='Slot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('item', models.IntegerField()),
                ('n', models.IntegerField()),
            ],
            options={
                'db_table': 'check_slot',
            },
        ),
        migrations.CreateModel(
            name='Word',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('item', models.IntegerField()),
                ('name', models.CharField(db_collation=COLLATION, max_length=50)),
            ],
            options={
                'db_table': 'check_word',
            },
        ),
        migrations.CreateModel(
            name='Fill',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slot', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fills', to='checkapp.slot')),
            ],
            options={
                'db_table': 'check_fill',
            },
        ),
    ]
