"""Cross-ORM spellings (issue 9, break 5) in the directions ``tests/test_cross_orm.py``
leaves out: a SQLAlchemy ``Uuid`` write reaching a Django ``UUIDField`` read, and a Django
write of an enum's stored name reaching a SQLAlchemy ``Enum`` read."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from sqla_cachedeps import FromCache
from tests.test_cross_orm import Color, SaSpelled, _django_page_cached, world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_sqlalchemy_uuid_write_reaches_a_django_read(world):  # noqa: F811
    from tests.django.testapp.models import Spelled

    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    row, other = Spelled.objects.create(), Spelled.objects.create()
    read = lambda: list(Spelled.objects.filter(uid=value).values_list("pk", flat=True))  # noqa: E731
    assert _django_page_cached(read) == []
    with world["Session"].begin() as s:
        s.get(SaSpelled, row.pk).uid = value
    assert read() == [row.pk]
    from sqlalchemy import update

    with world["Session"].begin() as s:
        s.execute(update(SaSpelled).where(SaSpelled.id == other.pk).values(uid=value))
    assert sorted(read()) == [row.pk, other.pk]


def test_django_enum_name_write_reaches_a_sqlalchemy_read(world):  # noqa: F811
    from tests.django.testapp.models import Spelled

    row = Spelled.objects.create(color="BLUE")
    stmt = select(SaSpelled.id).where(SaSpelled.color == Color.RED).order_by(SaSpelled.id).options(FromCache())

    def read() -> list[int]:
        with world["Session"]() as s:
            return list(s.scalars(stmt).all())

    assert read() == []
    world["selects"].clear()
    assert read() == []
    assert world["selects"] == [], "SQLAlchemy did not serve this read from its cache"
    Spelled.objects.filter(pk=row.pk).update(color="RED")
    assert read() == [row.pk]
    Spelled.objects.create(color="RED")
    assert len(read()) == 2
