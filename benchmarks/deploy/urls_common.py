"""Build the demo's URLconf with its ``@cached_view`` pages replaced."""

from __future__ import annotations

from typing import Any, Callable

from django.urls import URLPattern, URLResolver, include, path

__all__ = ["site_urls", "PAGES"]

#: the URL names of the demo's ``@cached_view`` pages
PAGES = ("home", "user", "user-feed", "tag")


def site_urls(wrap: Callable[[str, Any], Any]) -> list[Any]:
    """Return the demo's urlpatterns with each page's view unwrapped and passed to ``wrap``."""
    from bookmarks import urls as bookmark_urls
    from testproject import urls as site

    pages = []
    for p in bookmark_urls.urlpatterns:
        if isinstance(p, URLPattern) and p.name in PAGES:
            p = URLPattern(p.pattern, wrap(p.name, p.callback.__wrapped__), p.default_args, p.name)
        pages.append(p)
    out: list[Any] = [path("", include(pages))]
    out += [p for p in site.urlpatterns
            if not (isinstance(p, URLResolver) and getattr(p.urlconf_name, "__name__", p.urlconf_name) == "bookmarks.urls")]
    return out
