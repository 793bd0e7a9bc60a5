"""The dependency analysis of queries, the raw-SQL write parser, the row codec and the
settings parser, tested directly."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import RawSQL

from django_cachedeps.conf import DEFAULT_EXCLUDE, cached_tables, parse
from django_cachedeps.db.deps import MAX_IN_KEYS, analyze
from django_cachedeps.db.rawsql import written_tables
from django_cachedeps.db.rows import Unencodable, decode_rows, encode_rows
from tests.django.orm._support import text_key
from tests.django.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db


def plan(qs):
    query = qs.query
    query.get_compiler("default").as_sql()
    return analyze(query, cached_tables())


def deps(qs):
    p = plan(qs)
    return None if p is None else set(p.deps)


def test_equality_filter_gives_a_field_key():
    assert deps(Book.objects.filter(author_id=7)) == {"book.author_id=7"}
    assert deps(Book.objects.filter(isbn="x-1", pages__gt=3)) == {text_key("book.isbn=x-1")}


def test_boolean_and_none_constants_are_keyable():
    assert deps(Author.objects.filter(active=True)) == {"author.active=1"}
    assert deps(Book.objects.filter(published=None)) == {"book.published=null"}


def test_non_keyable_constant_falls_back_to_the_table_key():
    assert deps(Book.objects.filter(published=datetime.date(2020, 1, 1))) == {"book"}
    assert deps(Book.objects.filter(pages__gte=10)) == {"book"}


def test_disjunction_and_negation_depend_on_the_table():
    assert deps(Book.objects.filter(Q(author_id=1) | Q(author_id=2))) == {"book"}
    assert deps(Book.objects.exclude(author_id=1)) == {"book"}


def test_in_list_gives_one_key_per_value_up_to_a_limit():
    assert deps(Book.objects.filter(author_id__in=[1, 2])) == {"book.author_id=1", "book.author_id=2"}
    assert deps(Book.objects.filter(author_id__in=range(MAX_IN_KEYS + 1))) == {"book"}


def test_join_keys_per_table():
    assert deps(Book.objects.filter(author__name="Ann")) == {"book", text_key("author.name=Ann")}
    assert deps(Book.objects.select_related("author").filter(author_id=3)) == {"book.author_id=3", "author"}


def test_m2m_reads_depend_on_the_through_table_value():
    assert deps(Tag.objects.filter(books__id=4)) == {"tag", "book_tags.book_id=4"}


def test_subqueries_add_their_tables():
    qs = Book.objects.filter(author__in=Author.objects.filter(active=False))
    assert deps(qs) == {"book", "author.active=0"}
    qs = Author.objects.filter(Exists(Book.objects.filter(author=OuterRef("pk"), pages=5)))
    assert deps(qs) == {"author", "book.pages=5"}


def test_grouped_aggregate_keeps_the_field_key():
    from django.db.models import Sum

    assert deps(Book.objects.filter(author_id=2).values("author_id").annotate(s=Sum("pages"))) == {"book.author_id=2"}


def test_pk_get_takes_the_state_path():
    p = plan(Book.objects.filter(pk=12))
    assert p.oid == "book:12" and p.deps == ("book:12",)
    assert plan(Book.objects.filter(pk=12).only("title")).oid is None
    assert plan(Book.objects.filter(pk=12).select_related("author")).oid is None
    assert plan(Book.objects.filter(pk=12).values("title")).oid is None


def test_unseeable_or_non_deterministic_sql_is_not_cached():
    assert plan(Book.objects.extra(where=["pages > 1"])) is None
    assert plan(Book.objects.annotate(x=RawSQL("SELECT 1", ()))) is None
    assert plan(Book.objects.order_by("?")) is None
    from django.db.models.functions import Now

    assert plan(Book.objects.filter(published__lte=Now())) is None


def test_excluded_tables_are_not_cached(settings):
    settings.CACHEDEPS = {"EXCLUDE": ["testapp.author"]}
    assert plan(Book.objects.filter(author__name="x")) is None
    assert deps(Book.objects.filter(pages=1)) == {"book.pages=1"}
    assert "book_tags" in cached_tables()


def test_models_list_limits_caching(settings):
    settings.CACHEDEPS = {"MODELS": ["testapp.Book"]}
    assert "book" in cached_tables() and "author" not in cached_tables()
    assert "book_tags" not in cached_tables()  # the tag end is not cached


@pytest.mark.parametrize(
    "sql, tables",
    [
        ('UPDATE "book" SET title = %s', ["book"]),
        ("update public.book set x=1", ["book"]),
        ("INSERT INTO book (a) VALUES (1)", ["book"]),
        ("INSERT OR REPLACE INTO `book` VALUES (1)", ["book"]),
        ("REPLACE INTO book VALUES (1)", ["book"]),
        ("  delete from book where id = 1", ["book"]),
        ('TRUNCATE "book", "author" RESTART IDENTITY', ["book", "author"]),
        ("SELECT * FROM book", []),
        ("WITH x AS (SELECT 1) SELECT * FROM x", []),
        ("UPDATE BOOK SET title = %s", ["book"]),
        ("/* tag */ UPDATE book SET title = %s", ["book"]),
        ("-- x\nDELETE FROM book", ["book"]),
        ("SELECT 1; UPDATE book SET title = 'x'", ["book"]),
        ("WITH d AS (DELETE FROM book RETURNING id) SELECT count(*) FROM d", ["book"]),
        ("DROP TABLE book", ["book"]),
        ("ALTER TABLE author ADD COLUMN x int", ["author"]),
        ("CREATE INDEX ix ON book (title)", ["book"]),
    ],
)
def test_raw_sql_write_parser(sql, tables):
    assert sorted(written_tables(sql)) == sorted(tables)


def test_raw_sql_write_parser_postgres():
    assert written_tables("TRUNCATE TABLE ONLY book", "postgresql") == ["book"]
    assert written_tables("UPDATE Book SET title = 'x'", "postgresql") == ["book"]
    assert written_tables('UPDATE "Book" SET title = \'x\'', "postgresql") == []  # another table


def test_row_codec_round_trips_driver_types():
    rows = [
        (1, "a", None, True, 1.5, b"\x00", 2**70),
        (datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc), datetime.date(2024, 5, 1),
         datetime.time(3, 4, 5), datetime.timedelta(days=1, seconds=2), decimal.Decimal("1.50"),
         uuid.UUID(int=5), [1, [2, "x"]], {"k": [1, None]}),
    ]
    import msgpack

    back = decode_rows(msgpack.unpackb(msgpack.packb(encode_rows(rows)), raw=False))
    assert back == rows
    assert back[1][0].tzinfo is not None


def test_row_codec_refuses_unknown_types():
    with pytest.raises(Unencodable):
        encode_rows([(object(),)])


def test_settings_parse_and_reject():
    conf = parse({"MODELS": ["testapp.Book"], "EXCLUDE": ["testapp.Tag"], "TIMEOUT": 10})
    assert conf.models == frozenset({"testapp.book"})
    assert conf.exclude == DEFAULT_EXCLUDE | {"testapp.tag"}
    assert conf.model_is_cached("testapp.book") and not conf.model_is_cached("testapp.author")
    assert not conf.model_is_cached("sessions.session")
    for bad, word in [
        ({"TIMEOUT": -1}, "TIMEOUT"),
        ({"MODELS": "testapp.Book"}, "MODELS"),
        ({"MODELS": ["Book"]}, "app_label.Model"),
        ({"ENABLED": "yes"}, "ENABLED"),
        ({"CACHE": ""}, "CACHE"),
        ({"TIMOUT": 3}, "TIMOUT"),
        ([], "dict"),
    ]:
        with pytest.raises(ImproperlyConfigured, match=word):
            parse(bad)
