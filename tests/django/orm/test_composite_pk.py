"""Writes to a model whose primary key is composite (Django 5.2's ``CompositePrimaryKey``).

The rows a write changes are read by their primary key's columns, one by one: the ``pk``
name would select them as one tuple column that the old-row read cut off (the last
component missing: an ``IndexError`` where a converter applies to it, rows sharing the
first component merged into one otherwise, so their keys went missing).
"""

from __future__ import annotations

import django
import pytest
from django.db import connection, models

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(django.VERSION < (5, 2), reason="CompositePrimaryKey is new in Django 5.2"),
]

if django.VERSION >= (5, 2):

    class Stamped(models.Model):
        """Django's own ``composite_pk.TimeStamped``: a converted column last in the key."""

        pk = models.CompositePrimaryKey("id", "created")
        id = models.SmallIntegerField(unique=True)
        created = models.DateTimeField(auto_now_add=True)
        text = models.TextField(default="", blank=True)

        class Meta:
            app_label = "testapp"
            db_table = "cd_stamped"

    class Membership(models.Model):
        pk = models.CompositePrimaryKey("tenant", "user")
        tenant = models.IntegerField()
        user = models.IntegerField()
        role = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"
            db_table = "cd_membership"


def _installed(on: bool) -> None:
    """Register the models with the app registry (their tables exist) or take them out: code
    that walks every installed model (capture install, MySQL's sequence reset of
    ``reset_sequences``, checks) must not meet them in other tests, where their tables do not
    exist."""
    from django.apps import apps

    from django_cachedeps import conf

    registered = apps.all_models["testapp"]
    for model in (Stamped, Membership):
        if on:
            registered[model._meta.model_name] = model
        else:
            registered.pop(model._meta.model_name, None)
    apps.clear_cache()
    conf.reset()  # the cached tables, read from the registry


if django.VERSION >= (5, 2):
    _installed(False)


@pytest.fixture
def tables(engine):
    _installed(True)
    with connection.schema_editor() as editor:
        editor.create_model(Stamped)
        editor.create_model(Membership)
    yield engine
    with connection.schema_editor() as editor:
        editor.delete_model(Stamped)
        editor.delete_model(Membership)
    _installed(False)


def _committed_keys(engine, monkeypatch):
    keys: list[str] = []
    committed = engine.committed

    def record(changed, *args, **kwargs):
        keys.extend(changed)
        return committed(changed, *args, **kwargs)

    monkeypatch.setattr(engine, "committed", record)
    return keys


def test_update_or_create_by_a_composite_pk_with_a_datetime_component(tables):
    t = Stamped.objects.create(id=1)
    assert Stamped.objects.count() == 1
    t, created = Stamped.objects.update_or_create(pk=t.pk, defaults={"text": "new text"})
    assert created is False and t.text == "new text"
    assert Stamped.objects.get(pk=t.pk).text == "new text"
    assert Stamped.objects.filter(created__gte=t.created).count() == 1


def test_a_delete_emits_the_keys_of_every_row_sharing_a_key_component(tables, monkeypatch):
    Membership.objects.create(tenant=1, user=1, role="owner")
    Membership.objects.create(tenant=1, user=2, role="guest")
    assert sorted(Membership.objects.filter(tenant=1).values_list("role", flat=True)) == ["guest", "owner"]
    keys = _committed_keys(tables, monkeypatch)
    assert Membership.objects.filter(tenant=1).delete()[0] == 2
    # both rows' values, not the last one read only
    assert "cd_membership.user=1" in keys and "cd_membership.user=2" in keys
    assert "cd_membership.role=owner" in keys and "cd_membership.role=guest" in keys
    assert list(Membership.objects.filter(tenant=1)) == []


def test_an_update_reads_the_rows_back_by_every_key_component(tables, monkeypatch):
    Membership.objects.create(tenant=1, user=1, role="owner")
    Membership.objects.create(tenant=1, user=2, role="guest")
    keys = _committed_keys(tables, monkeypatch)
    assert Membership.objects.filter(tenant=1).update(role="member") == 2
    assert "cd_membership.role=owner" in keys and "cd_membership.role=guest" in keys
    assert "cd_membership:*" not in keys  # the rows were read back, not given up on
    assert sorted(Membership.objects.values_list("user", "role")) == [(1, "member"), (2, "member")]
