"""``{% cachedeps %}`` in Jinja2 templates through Django's Jinja2 backend: hits, dependencies
recorded from ORM reads, invalidation by writes, nesting, the vary rules, escaping, poisoning."""

from __future__ import annotations

import pytest
from django.db import connection
from django.template.backends.jinja2 import Jinja2
from django.test import RequestFactory
from django.test.utils import override_settings
from django.utils import translation

from tests.django.conftest import DbQueries
from tests.django.testapp.models import Author, Book

jinja2 = pytest.importorskip("jinja2")

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATES = {
    "shelf.html": '{% cachedeps "shelf", author_id %}<ul>{% for b in books(author_id) %}<li>{{ b }}</li>'
                  "{% endfor %}</ul>{% endcachedeps %}",
    "nested.html": '{% cachedeps "outer" %}[{{ count() }} {% cachedeps "inner" author_id timeout=600 %}'
                   "{{ books(author_id)|join(',') }}{% endcachedeps %}]{% endcachedeps %}",
    "greeting.html": '{% cachedeps "greeting" %}{{ lang() }}{% endcachedeps %}',
    "raw.html": '{% cachedeps "raw" %}{{ raw() }}{% endcachedeps %}',
}


def titles(author_id):
    return list(Book.objects.filter(author_id=author_id).order_by("pk").values_list("title", flat=True))


def raw_count():
    with connection.cursor() as cursor:  # raw SQL: no dependency key covers it
        cursor.execute("SELECT COUNT(*) FROM book")
        return cursor.fetchone()[0]


@pytest.fixture
def backend(engine):
    """Django's Jinja2 backend with the extension and helpers the templates call."""
    backend = Jinja2({
        "NAME": "jinja2", "DIRS": [], "APP_DIRS": False,
        "OPTIONS": {
            "extensions": ["django_cachedeps.jinja2.CachedepsExtension"],
            "loader": jinja2.DictLoader(TEMPLATES),
        },
    })
    backend.env.globals.update(books=titles, count=lambda: Author.objects.count(),
                               lang=translation.get_language, raw=raw_count)
    return backend


@pytest.fixture
def authors():
    ann = Author.objects.create(name="Ann")
    bob = Author.objects.create(name="Bob")
    Book.objects.create(author=ann, title="Alpha", isbn="1")
    Book.objects.create(author=bob, title="<b>Bold</b>", isbn="2")
    return ann, bob


def render(backend, name, **context):
    request = RequestFactory().get("/")
    with DbQueries(connection) as q:
        html = backend.get_template(name).render(context, request)
    return html, q.data


@override_settings(CACHEDEPS={"CACHE": "default"})
def test_a_fragment_is_served_from_the_cache_until_a_write_touches_what_it_read(backend, authors):
    ann, bob = authors
    first, queries = render(backend, "shelf.html", author_id=ann.pk)
    assert first == "<ul><li>Alpha</li></ul>" and queries
    assert render(backend, "shelf.html", author_id=ann.pk) == (first, [])  # a hit, no query
    Book.objects.create(author=bob, title="Other", isbn="3")  # another author's shelf
    assert render(backend, "shelf.html", author_id=ann.pk) == (first, [])
    Book.objects.create(author=ann, title="Beta", isbn="4")
    html, queries = render(backend, "shelf.html", author_id=ann.pk)
    assert html == "<ul><li>Alpha</li><li>Beta</li></ul>" and queries


@override_settings(CACHEDEPS={"CACHE": "default"})
def test_arguments_vary_the_fragment_and_output_is_escaped_once(backend, authors):
    ann, bob = authors
    assert render(backend, "shelf.html", author_id=ann.pk)[0] == "<ul><li>Alpha</li></ul>"
    escaped = "<ul><li>&lt;b&gt;Bold&lt;/b&gt;</li></ul>"
    assert render(backend, "shelf.html", author_id=bob.pk)[0] == escaped
    assert render(backend, "shelf.html", author_id=bob.pk) == (escaped, [])  # hit: not escaped twice


@override_settings(CACHEDEPS={"CACHE": "default"})
def test_nested_fragments_pass_dependencies_outwards(backend, authors):
    ann, _ = authors
    first, _ = render(backend, "nested.html", author_id=ann.pk)
    assert first == "[2 Alpha]"
    assert render(backend, "nested.html", author_id=ann.pk) == (first, [])
    Book.objects.filter(author=ann).update(title="Changed")  # only the inner fragment read books
    html, queries = render(backend, "nested.html", author_id=ann.pk)
    assert html == "[2 Changed]" and queries  # the outer one depended on the inner one's keys
    from django_cachedeps.runtime import get_engine
    from django_cachedeps.templatetags.cachedeps import fragment_key

    get_engine().delete(fragment_key("outer", []))  # the outer gone, the inner cached
    render(backend, "nested.html", author_id=ann.pk)  # outer re-rendered around an inner hit
    assert render(backend, "nested.html", author_id=ann.pk)[1] == []
    Book.objects.filter(author=ann).update(title="Again")
    assert render(backend, "nested.html", author_id=ann.pk)[0] == "[2 Again]"


@override_settings(CACHEDEPS={"CACHE": "default"}, USE_I18N=True, LANGUAGES=[("en", "English"), ("fr", "French")])
def test_a_fragment_is_kept_per_language(backend, authors):
    for lang in ("en", "fr", "en", "fr"):
        with translation.override(lang):
            assert render(backend, "greeting.html")[0] == lang


@override_settings(CACHEDEPS={"CACHE": "default"})
def test_a_fragment_that_read_what_no_key_covers_is_not_stored(backend, authors):
    assert render(backend, "raw.html")[0] == "2"
    Book.objects.create(author=authors[0], title="Gamma", isbn="5")
    assert render(backend, "raw.html")[0] == "3"


@override_settings(CACHEDEPS={"CACHE": "default"})
def test_a_django_template_and_a_jinja2_template_share_the_fragment(backend, authors):
    from django.template import Context, Template

    ann, _ = authors
    jinja_html, _ = render(backend, "shelf.html", author_id=ann.pk)
    django_template = Template('{% load cachedeps %}{% cachedeps "shelf" author_id %}not rendered{% endcachedeps %}')
    assert django_template.render(Context({"author_id": ann.pk})) == jinja_html


@override_settings(CACHEDEPS={"CACHE": "default", "ENABLED": False})
def test_with_caching_off_the_body_renders_every_time(backend, authors):
    ann, _ = authors
    assert render(backend, "shelf.html", author_id=ann.pk)[1]
    assert render(backend, "shelf.html", author_id=ann.pk)[1]


def test_bad_tags_are_template_syntax_errors(backend):
    from jinja2 import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="needs a fragment name"):
        backend.from_string("{% cachedeps %}x{% endcachedeps %}")
    with pytest.raises(TemplateSyntaxError, match="no option 'timout'"):
        backend.from_string('{% cachedeps "a", timout=5 %}x{% endcachedeps %}')
    with pytest.raises(ValueError, match="timeout must be a number"):
        backend.from_string('{% cachedeps "a", timeout="soon" %}x{% endcachedeps %}').render({})
