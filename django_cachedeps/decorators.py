"""Cache whole views by what they read: ``@cached_view``.

::

    from django_cachedeps.decorators import cached_view

    @cached_view(timeout=600)
    def bookmarks(request, username):
        ...

The response (content, status, headers) is stored as a derived entry whose dependencies
are every cached ORM read made while the view ran and its template rendered, fragments of
``{% cachedeps %}`` included. A committed write that touches one of them drops the page, in
every process; a write to another row of the same table does not.

What varies the entry follows :func:`django.utils.cache.learn_cache_key`: the method (HEAD
is served from GET entries), the full URL with its query string, the active language (with
``USE_I18N``) and time zone (with ``USE_TZ``), the request headers the response names in
``Vary`` (``Vary: Cookie`` set by the view: the whole Cookie header, as Django does) and,
when the view used the session (``request.user`` does), the session cookie, so one user
never sees another's page. A URL keeps up to four such rules at once (an anonymous
visitor's page and a logged-in user's vary differently): one kind of visitor never evicts
the other's page; the most specific rule is tried first. Only ``GET``/``HEAD`` ``200``
responses are stored, never one that sets a cookie, modifies the session, is marked
``private``/``no-store``/``no-cache``, or streams. A page that renders a CSRF token also
varies on the CSRF cookie (and is not stored for a client that has none yet).

A page whose rendering ran a database statement that no dependency key covers (a read
the cache does not serve: ``.iterator()``, ``order_by("?")``, raw SQL, an excluded model, a
``nocache()`` block, the database session backend's own read) is not stored
(:mod:`django_cachedeps.db.guard`). Data read from elsewhere (files, other services) is not
seen at all: pass ``depends_on`` or bound such pages with ``timeout``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any, Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import cc_delim_re, patch_vary_headers

from cachedeps.api import NO_VALUE

from . import runtime

__all__ = ["cached_view", "page_key", "vary_spec", "request_variant", "prepared_engine", "visitor_label"]

_HEADER_MEMO_SIZE = 4096
_SPECS_PER_URL = 4
_UNCACHEABLE_CC = ("private", "no-store", "no-cache")


def prepared_engine() -> Any:
    """Return the engine polled for this unit of work, or None when caching is off.

    Before ``migrate`` has created the change feed table nothing is cached.
    """
    from django.db import DEFAULT_DB_ALIAS

    from .conf import get_settings
    from .runtime import ensure_polled, feed_ready

    if not get_settings().enabled or not feed_ready(DEFAULT_DB_ALIAS):
        return None
    return ensure_polled(DEFAULT_DB_ALIAS)


def _timeout(timeout: float | None, keys: Iterable[str] = ()) -> float | None:
    """Return ``timeout``, or ``CACHEDEPS["TIMEOUT"]`` when it is None (0: no limit), shortened
    to the per-model timeouts of the tables ``keys`` name (``CACHEDEPS["MODELS"]``)."""
    from .conf import capped_timeout

    return capped_timeout(timeout, keys)


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def _prefix(key_prefix: str | None) -> str:
    if key_prefix is not None:
        return key_prefix
    return getattr(settings, "CACHE_MIDDLEWARE_KEY_PREFIX", "") or ""


def _uri_digest(request: HttpRequest) -> str:
    """Return the digest of the request's absolute URI (computed once per request)."""
    digest = getattr(request, "_cachedeps_uri_digest", None)
    if digest is None:
        digest = request._cachedeps_uri_digest = _digest(request.build_absolute_uri())  # type: ignore[attr-defined]
    return digest


def _spec_key(request: HttpRequest, key_prefix: str) -> str:
    return f"view.h.{key_prefix}.{_uri_digest(request)}"


def vary_spec(request: HttpRequest, response: HttpResponse, vary_on_user: bool | None) -> dict[str, Any]:
    """Return what a response varies on: its ``Vary`` headers, the session, the CSRF cookie."""
    headers: list[str] = []
    cookie = False
    if response.has_header("Vary"):
        for name in cc_delim_re.split(response.headers["Vary"]):
            name = name.strip().lower()
            if name == "cookie":
                # Set by the view itself (the session and CSRF middleware add theirs after
                # this decorator has run): it reads some cookie, so vary on all of them.
                cookie = True
            elif name and name not in headers:
                headers.append(name)
    session = getattr(request, "session", None)
    uses_session = bool(session is not None and getattr(session, "accessed", False))
    if vary_on_user is not None:
        uses_session = vary_on_user
    uses_csrf = bool(request.META.get("CSRF_COOKIE_NEEDS_UPDATE") or request.META.get("CSRF_COOKIE_USED"))
    spec = {"headers": sorted(headers), "session": uses_session, "csrf": uses_csrf}
    if cookie:
        spec["cookie"] = True
    return spec


def _specificity(spec: dict[str, Any]) -> tuple[int, ...]:
    return (int(bool(spec.get("cookie"))), int(bool(spec.get("session"))), int(bool(spec.get("csrf"))),
            len(spec.get("headers", ())))


def _merge_specs(specs: list[dict[str, Any]], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Return ``specs`` with ``spec`` added (newest kept), most specific first, at most four."""
    kept = [spec] + [s for s in specs if s != spec]
    kept = kept[:_SPECS_PER_URL]
    return sorted(kept, key=_specificity, reverse=True)


def _as_specs(found: Any) -> list[dict[str, Any]] | None:
    """Read a stored rule list (a lone dict: one rule, as written by earlier versions)."""
    if isinstance(found, dict):
        return [found]
    if isinstance(found, list) and all(isinstance(s, dict) for s in found):
        return found
    return None


def request_variant(request: HttpRequest, spec: dict[str, Any]) -> str | None:
    """Return the digest of the parts of ``request`` a cached entry varies on.

    ``None`` means this request must not be served from (or stored into) the cache: it
    needs a CSRF cookie it does not have yet.
    """
    parts = []
    if getattr(settings, "USE_I18N", False):
        from django.utils.translation import get_language

        parts.append(f"l={get_language()}")
    if getattr(settings, "USE_TZ", False):
        from django.utils.timezone import get_current_timezone_name

        parts.append(f"tz={get_current_timezone_name()}")
    if spec.get("cookie"):
        parts.append("cookie=" + request.META.get("HTTP_COOKIE", ""))
    for name in spec.get("headers", ()):
        meta = "HTTP_" + name.upper().replace("-", "_")
        if name == "content-type":
            meta = "CONTENT_TYPE"
        elif name == "content-length":
            meta = "CONTENT_LENGTH"
        parts.append(f"{name}={request.META.get(meta, '')}")
    if spec.get("session"):
        parts.append("s=" + request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""))
    if spec.get("csrf"):
        token = request.COOKIES.get(settings.CSRF_COOKIE_NAME)
        if not token or getattr(settings, "CSRF_USE_SESSIONS", False):
            return None
        parts.append("c=" + token)
    return _digest(*parts)


def page_key(request: HttpRequest, key_prefix: str, variant: str) -> str:
    """Return the entry key of the page for ``request`` (HEAD shares GET's entries)."""
    return f"view.p.{key_prefix}.GET.{_uri_digest(request)}.{variant}"


def _cacheable(request: HttpRequest, response: HttpResponse) -> bool:
    if request.method != "GET" or response.status_code != 200 or response.streaming:
        return False
    if response.cookies:
        return False
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "modified", False):
        return False
    if response.has_header("Cache-Control"):
        cc = response.headers["Cache-Control"].lower()
        if any(word in cc for word in _UNCACHEABLE_CC):
            return False
    return True


def visitor_label(spec: dict[str, Any], request: HttpRequest | None = None) -> str:
    """Return in words which visitors share one cached copy made under the vary rule ``spec``."""
    if spec.get("cookie"):
        text = "one copy per set of cookies"
    elif spec.get("session"):
        user = getattr(request, "user", None)  # the session was read already: no new Vary
        if user is None:  # no authentication middleware
            text = "one copy per session"
        elif getattr(user, "is_authenticated", False):
            text = f"signed-in user \u201c{user.get_username()}\u201d (a copy per session)"
        else:
            text = "anonymous visitors (one shared copy)"
    elif spec.get("csrf"):
        text = "one copy per CSRF cookie"
    else:
        text = "shared by every visitor"
    headers = spec.get("headers") or ()
    if headers:
        text += ", varies on " + ", ".join(h.title() for h in headers)
    return text


def _freeze(response: HttpResponse) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "content": response.content,
        "headers": [[k, v] for k, v in response.headers.items()],
    }


def _thaw(payload: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(payload["content"], status=payload["status"])
    for name, value in payload["headers"]:
        response.headers[name] = value
    return response


class _SpecMemo:
    """Remember, per process, what each URL's page varies on (bounded, least recently used).

    It saves a round trip per hit; a wrong memo only costs a miss, since the spec is
    learned again from the rendered response.
    """

    def __init__(self, size: int = _HEADER_MEMO_SIZE) -> None:
        self._size = size
        self._data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            spec = self._data.get(key)
            if spec is not None:
                self._data.move_to_end(key)
            return spec

    def put(self, key: str, spec: list[dict[str, Any]]) -> None:
        with self._lock:
            self._data[key] = spec
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


class _ViewCache:
    """The lookup and store steps of one decorated view, shared by the sync and async wrappers."""

    def __init__(self, timeout: float | None, key_prefix: str | None, vary_on_user: bool | None,
                 depends_on: Iterable[str]) -> None:
        self.timeout = timeout
        self.key_prefix = key_prefix
        self.vary_on_user = vary_on_user
        self.depends_on = tuple(depends_on)
        self.memo = _SpecMemo()

    def lookup(self, request: HttpRequest) -> tuple[HttpResponse | None, Any]:
        """Return ``(cached response or None, state for store())``; None state: do not cache."""
        if request.method not in ("GET", "HEAD"):
            return None, None
        engine = prepared_engine()
        if engine is None:
            return None, None
        prefix = _prefix(self.key_prefix)
        spec_key = _spec_key(request, prefix)
        stamp = runtime.snapshot_stamp(engine)
        specs = self.memo.get(spec_key)
        if specs is None:
            found = engine.get(spec_key)
            specs = _as_specs(found) if found is not NO_VALUE else None
            if specs is not None:
                self.memo.put(spec_key, specs)
        for spec in specs or ():
            variant = request_variant(request, spec)
            if variant is None:
                continue
            key = page_key(request, prefix, variant)
            payload = engine.get(key)
            if payload is not NO_VALUE:
                response = _thaw(payload)
                engine.activity.page_hit(key, request.get_full_path(), visitor_label(spec, request),
                                         len(payload["content"]))
                if spec.get("session") or spec.get("csrf"):
                    patch_vary_headers(response, ("Cookie",))
                return response, None
        return None, (engine, prefix, spec_key, stamp)

    def store(self, request: HttpRequest, response: HttpResponse, state: Any, keys: set[str],
              children: Iterable[str] = ()) -> None:
        """Store a freshly rendered response if it may be shared."""
        engine, prefix, spec_key, stamp = state
        if not _cacheable(request, response):
            return
        spec = vary_spec(request, response, self.vary_on_user)
        variant = request_variant(request, spec)
        if variant is None:
            return
        known = self.memo.get(spec_key)
        if known is None:
            found = engine.get(spec_key)
            known = (_as_specs(found) if found is not NO_VALUE else None) or []
        if spec not in known:
            known = _merge_specs(known, spec)
            engine.set(spec_key, known, timeout=_timeout(self.timeout))
        self.memo.put(spec_key, known)
        deps = set(keys)
        deps.update(self.depends_on)
        key = page_key(request, prefix, variant)
        if engine.set(key, _freeze(response), depends_on=sorted(deps), timeout=_timeout(self.timeout, deps), tid=stamp):
            engine.activity.built_from(key, children)
            engine.activity.page_stored(key, request.get_full_path(), visitor_label(spec, request), len(response.content),
                                        stamp, sorted(k for k in deps if not k.startswith("@")))


def cached_view(
    view: Callable[..., Any] | None = None,
    *,
    timeout: float | None = None,
    key_prefix: str | None = None,
    vary_on_user: bool | None = None,
    depends_on: Iterable[str] = (),
) -> Any:
    """Cache a view's responses until a write touches what they were rendered from.

    Args:
        timeout: seconds an entry may live at most (default: ``CACHEDEPS["TIMEOUT"]``).
        key_prefix: separates entries of views on the same URLs (default
            ``CACHE_MIDDLEWARE_KEY_PREFIX``).
        vary_on_user: ``None`` (default) varies on the session only when the view used it;
            ``True`` always, ``False`` never (for pages that read the session but render the
            same for everyone).
        depends_on: extra dependency keys, for data the view reads outside the cached ORM.

    Works on sync and async views; usable bare (``@cached_view``) or called.
    """
    if view is not None:
        return cached_view(timeout=timeout, key_prefix=key_prefix, vary_on_user=vary_on_user,
                           depends_on=depends_on)(view)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        cache = _ViewCache(timeout, key_prefix, vary_on_user, depends_on)

        if iscoroutinefunction(func):
            from asgiref.sync import sync_to_async

            @wraps(func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                hit, state = await sync_to_async(cache.lookup)(request)
                if hit is not None:
                    return hit
                if state is None:
                    return await func(request, *args, **kwargs)
                with state[0].recording() as rec:
                    response = await func(request, *args, **kwargs)
                    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                        await sync_to_async(response.render)()
                if rec.poisoned is None:  # else it read something no key covers: never stored
                    await sync_to_async(cache.store)(request, response, state, rec.keys, rec.children)
                return response

            return async_wrapper

        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            hit, state = cache.lookup(request)
            if hit is not None:
                return hit
            if state is None:
                return func(request, *args, **kwargs)
            with state[0].recording() as rec:
                response = func(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
            if rec.poisoned is None:  # else it read something no key covers: never stored
                cache.store(request, response, state, rec.keys, rec.children)
            return response

        return wrapper

    return decorator
