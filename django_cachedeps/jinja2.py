"""``{% cachedeps %}`` for Jinja2 templates: the same fragments as the Django template tag.

Add the extension to Django's Jinja2 backend (``pip install 'cachedeps[jinja2]'``)::

    TEMPLATES = [{
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "jinja2"],
        "OPTIONS": {"extensions": ["django_cachedeps.jinja2.CachedepsExtension"]},
    }]

and cache a fragment::

    {% cachedeps "sidebar", user.pk, timeout=600 %}
        {% for tag in tags %}...{% endfor %}
    {% endcachedeps %}

The name comes first, then the arguments the fragment varies on (commas between them are
optional), then an optional ``timeout=<seconds>``. Semantics are those of
``{% cachedeps %}`` (:func:`django_cachedeps.templatetags.cachedeps.render_fragment` does
both): keyed by the name, the exact typed values of the arguments (a model instance leaves
the fragment uncached), the active language and time zone; its dependencies are the cached
ORM reads made while it rendered; fragments nest, and an inner fragment's dependencies,
rendered or hit, become the outer fragment's and the enclosing ``@cached_view``'s; a
fragment that read something no key covers is not stored. A Django template and a Jinja2
template caching a fragment under the same name and arguments share its entry.

Templates rendered by an environment with ``enable_async=True`` are not supported.
"""

from __future__ import annotations

from typing import Any, Callable

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.utils import pass_eval_context
from markupsafe import Markup

__all__ = ["CachedepsExtension", "cachedeps"]


class CachedepsExtension(Extension):
    """The ``{% cachedeps name, arg, ... [, timeout=seconds] %}...{% endcachedeps %}`` tag."""

    tags = {"cachedeps"}

    def parse(self, parser: Parser) -> nodes.Node:
        """Parse the tag: a name, arguments, an optional ``timeout=``, then the body."""
        lineno = next(parser.stream).lineno
        if parser.stream.current.type == "block_end":
            parser.fail('{% cachedeps %} needs a fragment name: {% cachedeps "name", arg1, arg2 %}', lineno)
        name = parser.parse_expression()
        args: list[nodes.Expr] = []
        timeout: nodes.Expr = nodes.Const(None)
        while parser.stream.current.type != "block_end":
            parser.stream.skip_if("comma")
            if parser.stream.current.type == "name" and parser.stream.look().type == "assign":
                option = next(parser.stream)
                if option.value != "timeout":
                    parser.fail(f"{{% cachedeps %}} has no option {option.value!r}; the only one is "
                                "timeout=<seconds>", option.lineno)
                next(parser.stream)  # the "="
                timeout = parser.parse_expression()
            else:
                args.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcachedeps",), drop_needle=True)
        call = self.call_method("_render", [name, nodes.List(args), timeout])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    @pass_eval_context
    def _render(self, eval_ctx: Any, name: Any, args: list[Any], timeout: Any, caller: Callable[[], str]) -> str:
        from .templatetags.cachedeps import render_fragment

        seconds = None
        if timeout is not None:
            try:
                seconds = float(timeout)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{{% cachedeps %}} timeout must be a number of seconds, got {timeout!r}") from exc
        content, hit = render_fragment(str(name), list(args), seconds, caller)
        if hit and eval_ctx.autoescape:
            return Markup(content)  # stored as rendered, escaped already
        return content


#: the short name, for ``extensions=["django_cachedeps.jinja2.cachedeps"]``
cachedeps = CachedepsExtension
