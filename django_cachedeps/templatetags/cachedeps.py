"""``{% cachedeps %}``: cache a template fragment until what it read changes.

::

    {% load cachedeps %}
    {% cachedeps "sidebar" user.pk %}
        {% for tag in tags %}...{% endfor %}
    {% endcachedeps %}

The fragment is keyed by its name, the exact values of its arguments (add whatever it
varies on: the user's pk, a page number; a model instance, which has no exact value, leaves
the fragment uncached) and, as Django's per-view cache is, the active language (with
``USE_I18N``) and time zone (with ``USE_TZ``): a French visitor never gets the English
fragment. Its dependencies are every cached ORM read made
while it rendered; a write touching one of them drops it. Fragments nest: an inner
fragment's dependencies, whether rendered or served from the cache, also become the outer
fragment's (and the enclosing ``@cached_view``'s). An optional ``timeout=<seconds>`` bounds
the entry's life.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token
from django.utils.safestring import mark_safe

from cachedeps.api import NO_VALUE
from cachedeps.querykey import Unencodable, encode_parts

from .. import runtime

__all__ = ["register", "CachedepsNode", "do_cachedeps", "fragment_key", "render_fragment"]

register = template.Library()


def _locale_parts() -> list[str]:
    from django.conf import settings

    parts = []
    if getattr(settings, "USE_I18N", False):
        from django.utils.translation import get_language

        parts.append(f"l={get_language()}")
    if getattr(settings, "USE_TZ", False):
        from django.utils.timezone import get_current_timezone_name

        parts.append(f"tz={get_current_timezone_name()}")
    return parts


def fragment_key(name: str, args: list[Any], locale: list[str] | None = None) -> str | None:
    """Return the entry key of fragment ``name`` rendered for ``args``; None to not cache it.

    The arguments are spelled exactly (:func:`cachedeps.querykey.encode_parts`), never by
    their ``repr``: two books of the same title (``Model.__str__``) are different arguments.
    An argument without an exact spelling (a model instance, whose other fields the fragment
    may render without reading them: pass its ``pk`` and read inside instead) leaves the
    fragment uncached. ``locale`` defaults to the active language and time zone.
    """
    try:
        data = encode_parts(*(_locale_parts() if locale is None else locale), "\x01", *args)
    except Unencodable:
        return None
    return f"frag.{name}.{hashlib.blake2b(data, digest_size=16).hexdigest()}"


def render_fragment(name: str, args: list[Any], timeout: float | None, render: Callable[[], str]) -> tuple[str, bool]:
    """Return ``(content, from_cache)`` of fragment ``name`` for ``args``: the cached text, or
    ``render()`` stored with the dependencies it recorded.

    The one implementation behind ``{% cachedeps %}`` and the Jinja2 extension
    (:mod:`django_cachedeps.jinja2`): same keys, same vary rules, same nesting (a hit records
    the fragment's dependencies into the enclosing fragments and view), same poisoning.
    """
    from ..decorators import _timeout, prepared_engine

    engine = prepared_engine()
    if engine is None:
        return render(), False
    key = fragment_key(name, args)
    if key is None:  # an argument the key cannot spell exactly: never share an entry
        return render(), False
    cached = engine.get(key)  # a hit records the fragment's dependencies into outer ones
    if cached is not NO_VALUE and isinstance(cached, str):
        return cached, True
    stamp = runtime.snapshot_stamp(engine)
    with engine.recording() as rec:
        content = render()
    if rec.poisoned is not None:  # it read something no key covers (the outer ones too)
        return content, False
    if engine.set(key, "".join([content]), depends_on=sorted(rec.keys), timeout=_timeout(timeout, rec.keys), tid=stamp):
        engine.activity.built_from(key, rec.children)
    return content, False


class CachedepsNode(template.Node):
    """Render a fragment from the cache, or render it and store it with its dependencies."""

    def __init__(self, nodelist: NodeList, name: FilterExpression, args: list[FilterExpression],
                 timeout: FilterExpression | None) -> None:
        self.nodelist = nodelist
        self.name = name
        self.args = args
        self.timeout = timeout

    def render(self, context: template.Context) -> str:
        name = str(self.name.resolve(context))
        args = [arg.resolve(context) for arg in self.args]
        timeout = None
        if self.timeout is not None:
            raw = self.timeout.resolve(context)
            try:
                timeout = float(raw)
            except (TypeError, ValueError) as exc:
                raise template.TemplateSyntaxError(
                    f"{{% cachedeps %}} timeout must be a number of seconds, got {raw!r}"
                ) from exc
        content, hit = render_fragment(name, args, timeout, lambda: self.nodelist.render(context))
        return mark_safe(content) if hit else content


@register.tag("cachedeps")
def do_cachedeps(parser: Parser, token: Token) -> CachedepsNode:
    """Parse ``{% cachedeps name [arg ...] [timeout=seconds] %}...{% endcachedeps %}``."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError(
            f"{bits[0]!r} needs a fragment name: {{% cachedeps \"name\" arg1 arg2 %}}"
        )
    nodelist = parser.parse(("endcachedeps",))
    parser.delete_first_token()
    timeout = None
    args = []
    for bit in bits[2:]:
        if bit.startswith("timeout="):
            timeout = parser.compile_filter(bit[len("timeout="):])
        else:
            args.append(parser.compile_filter(bit))
    return CachedepsNode(nodelist, parser.compile_filter(bits[1]), args, timeout)
