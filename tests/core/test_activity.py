"""What the engine keeps for the dashboard: bounded records, hits per kind, writes, trees."""

from __future__ import annotations

from cachedeps import Cache
from cachedeps.activity import Activity, describe_key, describe_write, kind_of


def _cache() -> Cache:
    return Cache("embedded://activity?max_memory=8MB")


def test_hits_and_misses_are_counted_per_kind_of_entry():
    cache = _cache()
    cache.poll()
    for key in ("view.p.x", "frag.a.1", "q:1", "sqla:q:1", "mine"):
        assert cache.get(key) is not None  # a miss
        cache.set(key, "v", depends_on=["book:1"])
        assert cache.get(key) == "v"
    kinds = cache.kind_stats()
    assert kinds["pages"] == kinds["fragments"] == kinds["other"] == (1, 1)
    assert kinds["queries"] == (2, 2)
    assert kind_of("votes:1") == "other" and kind_of("view.h.x") == "pages"


def test_a_write_is_recorded_with_what_it_dropped_and_the_miss_is_explained():
    cache = _cache()
    cache.poll()
    cache.set("view.p.home", b"<html>", depends_on=["book:7"])
    cache.activity.page_stored("view.p.home", "/", "everyone", 6, cache.stamp(), ["book:7"])
    assert "first request" in cache.activity.page("view.p.home").last_miss
    cache.invalidate("book", "book:7", "book/title")
    write = cache.activity.writes()[0]
    assert write.dropped == 1 and write.local
    assert write.tables == ["book"] and write.rows == ["book:7"] and write.columns == ["book.title"]
    assert describe_write(write.keys) == "update in book, row 7 (changed title)"
    cache.poll()  # the store feed brings the change back: not listed twice
    assert len(cache.activity.writes()) == 1
    cache.activity.page_stored("view.p.home", "/", "everyone", 6, cache.stamp(), ["book:7"])
    why = cache.activity.page("view.p.home").last_miss
    assert "row 7 of book" in why and "this process" in why


def test_changes_of_other_processes_are_grouped_per_table_write():
    act = Activity()
    act.polled([(10, "book"), (11, "book:1"), (12, "book/title"), (13, "book"), (14, "book:2")])
    got = [(w.tid, w.keys, w.local, w.dropped) for w in act.writes()]
    assert got == [(14, ("book", "book:2"), False, None), (12, ("book", "book:1", "book/title"), False, None)]


def test_records_are_bounded():
    act = Activity(max_writes=3, max_pages=2, max_entries=2)
    for i in range(10):
        act.wrote(i, [f"t:{i}"], 0)
        act.page_hit(f"view.p.{i}", f"/{i}", "everyone", 1)
        act.built_from(f"view.p.{i}", [f"q:{i}"])
        act.describe(f"q:{i}", "SELECT 1")
    assert [w.tid for w in act.writes()] == [9, 8, 7]
    assert [p.path for p in act.pages()] == ["/9", "/8"]
    assert act.children("view.p.0") == () and act.children("view.p.9") == ("q:9",)
    assert act.sql("q:0") is None and act.sql("q:9") == "SELECT 1"


def test_children_are_the_entries_read_or_stored_directly_inside():
    cache = _cache()
    cache.poll()
    cache.set("q:1", [1], depends_on=["book:1"])
    with cache.recording() as page:
        with cache.recording() as frag:
            cache.get("q:1")
        cache.set("frag.f.1", "x", depends_on=sorted(frag.keys))
    assert frag.children == {"q:1"} and page.children == {"frag.f.1"}


def test_the_chart_puts_counts_in_their_stretch():
    act = Activity(bucket_seconds=10, buckets=6)
    act.sample({"hits": 0, "misses": 0}, now=1000.0)
    act.sample({"hits": 5, "misses": 1}, now=1031.0)
    buckets = act.series({"hits": 8, "misses": 1}, now=1055.0)
    assert [b.hits for b in buckets] == [0, 0, 0, 5, 0, 3] and sum(b.misses for b in buckets) == 1
    later = act.series({"hits": 9, "misses": 1}, now=1500.0)  # the span stops at six stretches
    assert len(later) == 6 and sum(b.hits for b in later) == 4  # since the last sample


def test_a_young_process_charts_only_its_own_stretch():
    act = Activity(bucket_seconds=10, buckets=60)
    act.sample({"hits": 0}, now=1000.0)
    buckets = act.series({"hits": 4}, now=1025.0)
    assert len(buckets) == 3 and [b.hits for b in buckets] == [0, 0, 4]


def test_keys_in_words():
    assert describe_key("book") == "table book (any write to it)"
    assert describe_key("book.author_id=7/title") == "column title of rows of book where author_id = 7"
    assert describe_key("book/*") == "rows added to or removed from book"


def test_a_local_write_seen_first_by_another_threads_poll_is_listed_once():
    act = Activity()
    act.polled([(20, "book"), (21, "book:1")])  # polled between the commit and committed()
    act.wrote(21, ["book", "book:1"], 2)
    assert [(w.tid, w.local, w.dropped) for w in act.writes()] == [(21, True, 2)]
