"""Views and URLs used by the web-layer tests (ROOT_URLCONF = this module)."""

from __future__ import annotations

from django.core.cache import caches
from django.http import HttpResponse
from django.template import Context, Template
from django.urls import include, path

from django_cachedeps.decorators import cached_view
from django_cachedeps.runtime import get_engine

CALLS = {"n": 0}


def _count() -> int:
    CALLS["n"] += 1
    return CALLS["n"]


@cached_view
def item(request, pk):
    """Render version data of item ``pk``; depends on its oid."""
    get_engine().record(f"item:{pk}")
    return HttpResponse(f"item {pk} render {_count()} q={request.GET.get('q', '')}")


@cached_view
def who(request):
    """Render for the session's user (touches the session)."""
    name = request.session.get("name", "anonymous")
    get_engine().record("item:1")
    return HttpResponse(f"hello {name} render {_count()}")


@cached_view
def lang(request):
    """Vary on Accept-Language."""
    response = HttpResponse(f"{request.headers.get('Accept-Language', '-')} render {_count()}")
    response["Vary"] = "Accept-Language"
    return response


@cached_view
def private(request):
    """A private page: never stored."""
    response = HttpResponse(f"private {_count()}")
    response["Cache-Control"] = "private"
    return response


@cached_view
def cookie(request):
    """Sets a cookie: never stored."""
    response = HttpResponse(f"cookie {_count()}")
    response.set_cookie("x", "1")
    return response


@cached_view
def missing(request):
    """A 404 response: never stored."""
    return HttpResponse(f"nothing {_count()}", status=404)


@cached_view
async def async_item(request, pk):
    """An async view depending on an oid."""
    get_engine().record(f"item:{pk}")
    return HttpResponse(f"async item {pk} render {_count()}")


_FRAGMENTS = Template(
    "{% load cachedeps %}"
    "{% cachedeps 'outer' %}[outer {{ outer }} {% cachedeps 'inner' pk %}inner {{ inner }}{{ rec }}"
    "{% endcachedeps %}]{% endcachedeps %}"
)


class _Recorder:
    """Record a dependency key when rendered (stands for an ORM read inside a fragment)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __str__(self) -> str:
        get_engine().record(self.key)
        return ""


_BOOK_PAGE = Template(
    "{% load cachedeps %}<h1>{{ book.title }}</h1>"
    "{% cachedeps 'shelf' book.author_id %}<ul>{% for b in shelf %}<li>{{ b.title }}</li>{% endfor %}</ul>"
    "{% endcachedeps %}"
)


@cached_view
def book_page(request, pk):
    """Render a book through the cached ORM, with a fragment listing its author's books."""
    from tests.django.testapp.models import Book

    book = Book.objects.get(pk=pk)
    caches["default"].get_or_set(f"visits:{pk}", 0)  # the CACHES API on the same store
    shelf = Book.objects.filter(author_id=book.author_id).order_by("pk")  # lazy: read in the fragment
    return HttpResponse(_BOOK_PAGE.render(Context({"book": book, "shelf": shelf})))


def fragments(request, pk):
    """Render nested fragments; the inner one depends on ``item:<pk>``."""
    n = _count()
    return HttpResponse(_FRAGMENTS.render(Context({
        "outer": n, "inner": n, "pk": pk, "rec": _Recorder(f"item:{pk}")})))


@cached_view
def language(request):
    """Render in the active language (set by LocaleMiddleware from the language cookie)."""
    from django.utils.translation import get_language

    return HttpResponse(f"language {get_language()} render {_count()}")


@cached_view
def vary_cookie(request):
    """Reads a cookie of its own and says so with ``Vary: Cookie``."""
    response = HttpResponse(f"theme {request.COOKIES.get('theme', 'light')} render {_count()}")
    response["Vary"] = "Cookie"
    return response


@cached_view
def visitor_kinds(request):
    """A guest's page and a member's (with a CSRF token: a logout form) vary differently."""
    from django.middleware.csrf import get_token

    name = request.session.get("name")
    if name:
        return HttpResponse(f"member {name} render {_count()} <form>{get_token(request)}</form>")
    return HttpResponse(f"guest render {_count()}")


_LANGUAGE_FRAGMENT = Template("{% load cachedeps %}{% cachedeps 'greeting' %}{{ lang }}{% endcachedeps %}")


def language_fragment(request):
    """A fragment rendered in the active language."""
    from django.utils.translation import get_language

    return HttpResponse(_LANGUAGE_FRAGMENT.render(Context({"lang": get_language()})))


urlpatterns = [
    path("language/", language),
    path("vary-cookie/", vary_cookie),
    path("kinds/", visitor_kinds),
    path("language-fragment/", language_fragment),
    path("item/<int:pk>/", item),
    path("who/", who),
    path("lang/", lang),
    path("private/", private),
    path("cookie/", cookie),
    path("missing/", missing),
    path("async/<int:pk>/", async_item),
    path("fragments/<int:pk>/", fragments),
    path("book/<int:pk>/", book_page),
    path("cachedeps/", include("django_cachedeps.urls")),
]
