"""Views that read through paths no dependency key covers (URLconf of test_poisoned_views)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpResponse
from django.template import Context, Template
from django.urls import path

from django_cachedeps import nocache
from django_cachedeps.decorators import cached_view


def _titles(kind: str) -> list[str]:
    from tests.django.testapp.models import Book

    if kind == "iterator":
        return [b.title for b in Book.objects.order_by("pk").iterator()]
    if kind == "random":
        return sorted(b.title for b in Book.objects.order_by("?"))
    if kind == "raw":
        with connection.cursor() as cursor:
            cursor.execute("SELECT title FROM book ORDER BY id")
            return [r[0] for r in cursor.fetchall()]
    if kind == "rawqs":
        return [b.title for b in Book.objects.raw("SELECT * FROM book ORDER BY id")]
    if kind == "nocache":
        with nocache():
            return [b.title for b in Book.objects.order_by("pk")]
    if kind == "cached":
        return [b.title for b in Book.objects.order_by("pk")]
    raise ValueError(kind)


@cached_view
def titles(request, kind):
    return HttpResponse(" ".join(_titles(kind)))


_FRAGMENT = Template('{% load cachedeps %}{% cachedeps "titles" kind %}{{ titles }}{% endcachedeps %}')


class _Lazy:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __str__(self) -> str:
        return " ".join(_titles(self.kind))


@cached_view
def fragment(request, kind):
    return HttpResponse(_FRAGMENT.render(Context({"kind": kind, "titles": _Lazy(kind)})))


@cached_view
def dependent(request):
    """Read a value stored through the CACHES API with dependency keys."""
    from django.core.cache import caches

    return HttpResponse(f"{caches['default'].get('card:1')} {_count()}")


_CALLS = [0]


def _count() -> int:
    _CALLS[0] += 1
    return _CALLS[0]


urlpatterns = [
    path("dependent/", dependent),
    path("titles/<str:kind>/", titles),
    path("fragment/<str:kind>/", fragment),
]
