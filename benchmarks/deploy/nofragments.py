"""A ``{% cachedeps %}`` tag that only renders its content: the ORM-only configuration."""

from __future__ import annotations

from typing import Any

from django import template

__all__ = ["register"]

register = template.Library()


class _Plain(template.Node):
    def __init__(self, nodelist: Any) -> None:
        self.nodelist = nodelist

    def render(self, context: Any) -> str:
        return self.nodelist.render(context)


@register.tag("cachedeps")
def do_cachedeps(parser: Any, token: Any) -> _Plain:
    """Parse ``{% cachedeps ... %}...{% endcachedeps %}`` and render the content uncached."""
    nodelist = parser.parse(("endcachedeps",))
    parser.delete_first_token()
    return _Plain(nodelist)
