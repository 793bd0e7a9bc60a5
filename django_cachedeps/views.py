"""The ``/cachedeps/`` page: what the cache does, in words a person can follow.

Include it in a project's URLs (``path("cachedeps/", include("django_cachedeps.urls"))``).
It shows SQL and key names, so it answers only staff users, or anyone when ``DEBUG`` is on.

It never fails because the cache does: with the store down it says so and shows this
process's own figures (docs/django.md, "The dashboard"). The figures of recent pages,
writes and the chart are this process's (:mod:`cachedeps.activity`); the store's figures
are the store's, for every process sharing it.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from ._introspect import entry_tree, page_entry_key, prefix_rows

__all__ = ["dashboard", "COUNTER_LEGEND", "KIND_LEGEND"]

logger = logging.getLogger("django_cachedeps")

#: every counter of :meth:`cachedeps.Cache.stats`, in words
COUNTER_LEGEND = {
    "hits": ("Hits", "reads answered from the cache, checked current"),
    "misses": ("Misses", "reads the cache could not answer (nothing stored): computed from the database"),
    "stale": ("Outdated copies", "reads that found a copy older than a write to what it depends on; "
                                 "recomputed, never served"),
    "state_hits": ("Row hits", "rows read by primary key answered from the cache (also counted in Hits)"),
    "state_misses": ("Row misses", "rows read by primary key loaded from the database (also counted in Misses)"),
    "state_stale": ("Outdated rows", "cached rows older than a write to them; reloaded, never served "
                                     "(also counted in Outdated copies)"),
    "sets": ("Stored", "values computed after a miss and stored"),
    "deletes": ("Deleted", "entries deleted on request (cache.delete)"),
    "invalidations": ("Writes committed here", "transactions of this process that changed cached tables"),
    "purges": ("Entries dropped", "cached entries deleted from the store because a write changed "
                                  "what they depend on"),
    "polls": ("Change-feed polls", "reads of the change feed (one per request) to learn of other "
                                   "processes' writes"),
    "polls_shared": ("Polls shared", "requests that used a change-feed poll sent after they began by another "
                                     "thread or worker process instead of their own"),
    "changes_polled": ("Changes seen in the feed", "dependency keys read from the change feed"),
    "checkpoint_shifts": ("Checkpoint moves", "times this process moved the shared checkpoints "
                                              "(its list of recent changes was full)"),
    "checkpoint_adoptions": ("Checkpoints adopted", "times this process took checkpoints moved by another"),
    "resets": ("Resets", "times this process could not be sure it saw every change (a gap in the feed) "
                         "and treated everything cached before as outdated"),
    "store_errors": ("Store errors", "store operations that failed (the store was down or slow); "
                                     "each one cost a hit, never correctness"),
    "lease_wins": ("Fills led", "misses where this process won the right to compute and store the value"),
    "lease_waits": ("Fills waited for", "misses where another request was already computing the value"),
    "lease_timeouts": ("Waits given up", "waits for another request's value that took too long"),
    "current_tid": ("Feed position", "the newest change (tid) this process has seen"),
    "cp0": ("Checkpoint 0", "the newer shared checkpoint"),
    "cp1": ("Checkpoint 1", "the older shared checkpoint: copies stamped before it are outdated"),
    "delta_size": ("Recent changes held", "dependency keys changed since checkpoint 1, kept in memory"),
    "native_trees": ("Drops done by the store", "whether the store drops dependent entries itself "
                                                "(embedded, cachedeps serve) or cachedeps does it over the wire"),
}

#: the kinds of :meth:`cachedeps.Cache.kind_stats`, in words
KIND_LEGEND = {
    "pages": ("Pages", "whole responses of @cached_view views"),
    "fragments": ("Fragments", "parts of templates inside {% cachedeps %}"),
    "queries": ("Queries", "results of ORM queries"),
    "rows": ("Rows", "single rows read by primary key"),
    "checkpoints": ("Checkpoints", "reads of the shared checkpoints (about once a second)"),
    "other": ("Other entries", "values stored with cache.set(..., depends_on=...) and vary rules"),
}


def _when(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)


def _store_description(engine: Any, native: bool) -> str:
    store = engine.store
    kind = type(store).__name__
    if kind == "EmbeddedStore":
        return "the embedded store, inside this process (other processes have their own)"
    servers = list(getattr(store, "servers", ()) or ())
    if kind == "RemoteStore":
        where = ", ".join(f"{h}:{p}" for h, p in servers) or store.name
        if native:
            return f"cachedeps serve at {where}"
        return f"a pool of {len(servers)} memcached servers ({where})" if len(servers) > 1 else f"memcached at {where}"
    if kind == "RedisStore":
        return f"Redis ({store.name})"
    return getattr(store, "name", kind)


def _chart(buckets: list[Any], width: int = 640, height: int = 170) -> dict[str, Any]:
    """Return what the SVG chart needs: three thin bars per bucket, scaled to the highest count."""
    top = max([1, *(max(b.hits, b.misses, b.writes) for b in buckets)])
    left, right, bottom = 40, width - 10, height - 22
    plot_h = bottom - 12
    step = (right - left) / max(1, len(buckets))
    bar = min(12.0, max(1.0, step / 3 - 0.5))
    bars = []
    for i, b in enumerate(buckets):
        for j, (attr, colour) in enumerate((("hits", "var(--hit)"), ("misses", "var(--miss)"),
                                            ("writes", "var(--write)"))):
            value = getattr(b, attr)
            if value:
                h = max(1.5, value / top * plot_h)
                bars.append({"x": f"{left + i * step + j * bar:.1f}", "y": f"{bottom - h:.1f}",
                             "w": f"{bar:.1f}", "h": f"{h:.1f}", "fill": colour, "title": f"{value} {attr}"})
    width_s = buckets[1].start - buckets[0].start if len(buckets) > 1 else 10
    seconds = len(buckets) * width_s
    span = f"{round(seconds / 60)} minutes" if seconds >= 120 else f"{round(seconds)} seconds"
    return {
        "width": width, "height": height, "top": top, "left": left, "bottom": bottom, "right": right,
        "ceiling": bottom - plot_h, "bars": bars, "minutes": span,
        "seconds": round(width_s),
        "totals": {"hits": sum(b.hits for b in buckets), "misses": sum(b.misses for b in buckets),
                   "writes": sum(b.writes for b in buckets)},
    }


@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the cache's figures, recent pages and writes, and a chosen page's tree."""
    if not (settings.DEBUG or getattr(request.user, "is_staff", False)):
        raise Http404("The cachedeps page needs DEBUG or a staff user")
    from cachedeps.errors import CachedepsError

    from .runtime import get_engine

    context: dict[str, Any] = {"problems": []}
    try:
        engine = get_engine()
    except Exception as exc:  # a configuration error: say it, do not fail
        context["problems"].append(f"cachedeps is not set up: {exc}")
        return render(request, "django_cachedeps/dashboard.html", context)

    stats = engine.stats()
    store_ok = True
    try:
        engine.store.stats()
    except CachedepsError as exc:
        store_ok = False
        context["problems"].append(
            f"The store cannot be reached ({exc}). Pages are served from the database meanwhile; "
            "the figures below are this process's own.")
    rows = []
    if store_ok:
        try:
            rows = prefix_rows(engine.store)
        except CachedepsError as exc:
            context["problems"].append(f"The store did not answer its figures: {exc}")
    context["store_ok"] = store_ok
    context["store"] = _store_description(engine, bool(stats.get("native_trees")))
    context["rows"] = rows
    context["per_prefix"] = bool(rows) and rows[0].prefix != "*"

    kinds = engine.kind_stats()
    context["kinds"] = [
        {"name": KIND_LEGEND[k][0], "meaning": KIND_LEGEND[k][1], "hits": h, "misses": m,
         "rate": round(100 * h / (h + m)) if h + m else None}
        for k, (h, m) in kinds.items()
    ]
    context["chart"] = _chart(engine.activity.series(stats))
    context["counters"] = [
        {"name": COUNTER_LEGEND.get(k, (k, ""))[0], "meaning": COUNTER_LEGEND.get(k, (k, ""))[1],
         "value": "—" if v is None else ("yes" if v is True else "no" if v is False else v), "id": k}
        for k, v in stats.items()
    ]
    pages = engine.activity.pages()
    for p in pages:
        p.when = _when(p.last_at)  # type: ignore[attr-defined]
    context["pages"] = pages
    writes = engine.activity.writes()
    for w in writes:
        w.when = _when(w.at)  # type: ignore[attr-defined]
    context["writes"] = writes

    # the tree of a chosen page: ?page=<entry key>, or ?path=/some/url/
    key = request.GET.get("page", "").strip()
    path = request.GET.get("path", "").strip()
    if path and not path.startswith("/"):
        path = "/" + path
    if not key and path:
        for p in pages:
            if p.path == path:
                key = p.key
                break
    selected = engine.activity.page(key) if key else None
    if selected is not None and selected.last_miss_at:
        selected.miss_when = _when(selected.last_miss_at)  # type: ignore[attr-defined]
    tree = None
    try:
        if key:
            tree = entry_tree(engine, key)
        elif path:
            found = page_entry_key(engine, path, host=request.get_host(), cookies=dict(request.COOKIES))
            if found is not None:
                tree = entry_tree(engine, found)
    except Exception:  # a tree is a nicety: log it, never fail the page
        logger.exception("cachedeps: could not draw the tree of %r", key or path)
        context["problems"].append("The tree of this page could not be drawn (see the log).")
    context.update(selected=selected, tree=tree, path=path or (selected.path if selected else ""), key=key)
    return render(request, "django_cachedeps/dashboard.html", context)
