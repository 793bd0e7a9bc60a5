"""The ``/cachedeps/`` page: hit rates per key prefix and the dependency tree of a cached page.

Include it in a project's URLs (``path("cachedeps/", include("django_cachedeps.urls"))``).
It shows key names, so it answers only staff users, or anyone when ``DEBUG`` is on.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from ._introspect import page_tree, prefix_rows

__all__ = ["dashboard"]


@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render store figures per key prefix, engine counters and, for ``?path=``, a page's tree."""
    if not (settings.DEBUG or getattr(request.user, "is_staff", False)):
        raise Http404("The cachedeps page needs DEBUG or a staff user")
    from .runtime import get_engine

    engine = get_engine()
    path = request.GET.get("path", "").strip()
    tree = None
    if path:
        if not path.startswith("/"):
            path = "/" + path
        tree = page_tree(engine, path, host=request.get_host(), cookies=dict(request.COOKIES))
    return render(request, "django_cachedeps/dashboard.html", {
        "store_name": getattr(engine.store, "name", "?"),
        "rows": prefix_rows(engine.store),
        "engine_stats": sorted(engine.stats().items()),
        "path": path,
        "tree": tree,
    })
