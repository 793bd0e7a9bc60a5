"""Writes whose rows cachedeps cannot read back by primary key emit table keys; they never
fail the user's statement (issue 9, found by Django's custom_pk tests run through the adapter)."""

from __future__ import annotations

import pytest

from tests.django.orm._support import check
from tests.django.testapp.models import Wrapped, Wrapper

pytestmark = pytest.mark.django_db(transaction=True)


def _names():
    return sorted(Wrapped.objects.values_list("name", flat=True))


def test_insert_with_a_primary_key_its_field_cannot_prepare(engine):
    check(_names, lambda: Wrapped.objects.create(name="a"), ["a"])
    obj = Wrapped.objects.get(name="a")
    assert isinstance(obj.pk, Wrapper)
    check(_names, lambda: Wrapped.objects.bulk_create([Wrapped(name="b"), Wrapped(name="c")]), ["a", "b", "c"])


def test_update_and_delete_with_an_unhashable_primary_key(engine):
    Wrapped.objects.create(name="a")
    Wrapped.objects.create(name="b")
    check(_names, lambda: Wrapped.objects.filter(name="a").update(name="z"), ["b", "z"])
    check(_names, lambda: Wrapped.objects.filter(name="b").delete(), ["z"])
