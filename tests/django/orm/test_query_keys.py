"""Query cache keys are an exact, typed encoding of the SQL and its parameters.

``repr(params)`` gave two queries one key: psycopg's ``Jsonb`` repr is cut short and a
``memoryview``'s repr is its address, so a query was answered with another's rows.
"""

from __future__ import annotations

import pytest
from django.db.models import BinaryField, JSONField, Value
from django.test.utils import override_settings

from tests.django.orm._support import seed
from tests.django.testapp.models import Book

pytestmark = pytest.mark.django_db(transaction=True)

_NO_VERIFY = override_settings(CACHEDEPS={"CACHE": "default"})  # the rows themselves must differ


@pytest.fixture
def data(engine):
    return seed()


@_NO_VERIFY
def test_binary_parameters_do_not_share_a_key(data):
    def read(value: bytes):
        qs = Book.objects.filter(title="Alpha").annotate(x=Value(memoryview(value), output_field=BinaryField()))
        return [bytes(v) for v in qs.values_list("x", flat=True)]

    for _ in range(2):
        assert read(b"one") == [b"one"]
        assert read(b"two") == [b"two"]


@_NO_VERIFY
def test_long_json_parameters_do_not_share_a_key(data):
    def read(value: dict):
        qs = Book.objects.filter(title="Alpha").annotate(x=Value(value, output_field=JSONField()))
        return list(qs.values_list("x", flat=True))

    a, b = {"k": "x" * 100 + "A"}, {"k": "x" * 100 + "B"}
    for _ in range(2):
        assert read(a) == [a]
        assert read(b) == [b]
