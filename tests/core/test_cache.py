"""Cache: derived entries, object states, writes, recording, events, corrupt values."""

from __future__ import annotations

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.errors import ConfigurationError

from ._support import write


def test_hit_until_a_dependency_changes_in_another_process(pair):
    conn, feed, a, b = pair
    assert a.set("q", [1, 2], depends_on=["book.author_id=7"])
    assert b.get("q") == [1, 2]
    write(conn, feed, ["book", "book:3", "book.author_id=7"], cache=a)
    assert a.get("q") is NO_VALUE  # the writer sees its write at once
    b.poll(conn)
    assert b.get("q") is NO_VALUE
    assert b.stats()["stale"] + b.stats()["misses"] >= 1


def test_unrelated_change_keeps_the_entry(pair):
    conn, feed, a, b = pair
    a.set("q", "v", depends_on=["book:1"])
    write(conn, feed, ["book:2", "author"], cache=a)
    b.poll(conn)
    assert a.get("q") == "v" and b.get("q") == "v"


def test_all_rows_key_invalidates_oid_and_field_dependents(pair):
    conn, feed, a, b = pair
    a.set("row", 1, depends_on=["book:1"])
    a.set("field", 2, depends_on=["book.author_id=7"])
    a.set("other", 3, depends_on=["author:1"])
    write(conn, feed, ["book:*", "book"])
    b.poll(conn)
    assert b.get("row") is NO_VALUE and b.get("field") is NO_VALUE and b.get("other") == 3


def test_value_computed_before_a_change_is_never_served(pair):
    """A fill that read the database before a write, stored after it, is rejected."""
    conn, feed, a, b = pair
    stamp = a.current_tid  # read before the "database read"
    write(conn, feed, ["book:1"], cache=b)
    a.set("q", "old", depends_on=["book:1"], tid=stamp)  # a has not polled the write yet
    b.poll(conn)
    assert b.get("q") is NO_VALUE
    a.poll(conn)
    assert a.get("q") is NO_VALUE


def test_plain_value_without_dependencies_survives_everything(pair):
    conn, feed, a, b = pair
    a.set("plain", {"x": 1})
    write(conn, feed, ["book:1"], cache=a)
    a.maps.reset(10**9)
    assert a.get("plain") == {"x": 1}


def test_get_default_delete_and_depends_on_string(pair):
    _, _, a, _ = pair
    assert a.get("nothing", default="d") == "d"
    a.set("k", None, depends_on=["x:1"])
    assert a.get("k", default="d") is None  # a cached None is a hit
    a.delete("k")
    assert a.get("k") is NO_VALUE
    with pytest.raises(TypeError, match="collection"):
        a.set("k", 1, depends_on="x:1")


def test_corrupt_entry_is_a_miss(pair, embedded):
    _, _, a, _ = pair
    embedded.set("d:bad", b"\xc1\xc1not msgpack")
    assert a.get("bad") is NO_VALUE
    embedded.set("d:bad2", a.serializer.dumps({"not": "a list"}))
    assert a.get("bad2") is NO_VALUE
    embedded.set("d:bad3", a.serializer.dumps({"three": 1, "keys": 2, "here": 3}))
    assert a.get("bad3") is NO_VALUE
    embedded.set("s:0:x:1", a.serializer.dumps(["x", "y"]))
    assert a.get_state("x:1") is NO_VALUE


def test_long_and_odd_keys_are_hashed(pair):
    _, _, a, b = pair
    key = "view /a path with spaces?" + "x" * 400
    a.set(key, "v", depends_on=["t:1"])
    assert b.get(key) == "v"


def test_recording_nests_and_hits_record_dependencies(pair):
    _, _, a, _ = pair
    a.set("query", [1], depends_on=["book:1", "book.author_id=7"])
    with a.recording() as outer:
        a.record("page")
        with a.recording() as inner:
            assert a.get("query") == [1]
        a.record("author:2")
    assert {"book:1", "book:*", "book.author_id=7", "@query"} <= inner.keys
    assert "page" not in inner.keys and "author:2" not in inner.keys
    assert inner.keys | {"page", "author:2"} == outer.keys


def test_get_or_compute_records_and_stores_the_dependencies_read(pair):
    conn, feed, a, b = pair
    calls = []

    def fragment():
        calls.append(1)
        a.record("book:1")
        return "html"

    assert a.get_or_compute("frag", fragment) == "html"
    assert a.get_or_compute("frag", fragment) == "html"
    assert len(calls) == 1
    with a.recording() as rec:
        view = a.get_or_compute("view", lambda: a.get_or_compute("frag", fragment) + "!")
    assert view == "html!" and {"book:1", "@frag"} <= rec.keys
    write(conn, feed, ["book:1"], cache=b)
    a.poll(conn)
    assert a.get("frag") is NO_VALUE and a.get("view") is NO_VALUE


def test_invalidate_with_store_feed_reaches_other_processes(embedded):
    a = Cache(embedded)
    b = Cache(embedded)
    a.poll()
    b.poll()
    a.set("q", 1, depends_on=["cfg:1"])
    assert b.get("q") == 1
    tid = b.invalidate("cfg:1")
    assert tid > a.current_tid
    a.poll()
    assert a.current_tid == tid and a.get("q") is NO_VALUE


def test_invalidate_refuses_a_database_feed(pair):
    _, _, a, _ = pair
    with pytest.raises(ConfigurationError, match="committed"):
        a.invalidate("x:1")


def test_dependents_are_purged_from_the_store_on_commit(pair, embedded):
    conn, feed, a, _ = pair
    a.set("frag", "f", depends_on=["book:1"])
    a.set("view", "v", depends_on=["@frag", "author:1"])
    assert embedded.get("d:view") is not None
    write(conn, feed, ["book:1"], cache=a)
    assert embedded.get("d:frag") is None and embedded.get("d:view") is None
    assert a.stats()["purges"] >= 2


def test_listeners_see_events(pair):
    conn, feed, a, _ = pair
    events = []

    def listen(event, key, **detail):
        events.append((event, key))

    a.add_listener(listen)
    a.get("q")
    a.set("q", 1, depends_on=["b:1"])
    a.get("q")
    write(conn, feed, ["b:1"], cache=a)
    a.get("q")
    a.poll(conn)
    a.remove_listener(listen)
    a.get("q")
    assert [e for e, _ in events] == ["miss", "set", "hit", "commit", "invalidate", "purge", "miss", "poll"]


# -- object states ----------------------------------------------------------------------------


def test_state_hit_is_one_round_trip_and_follows_changes(db, dictstore):
    conn, feed = db
    a = Cache(dictstore, feed=feed)
    b = Cache(dictstore, feed=feed)
    a.poll(conn)
    b.poll(conn)
    assert a.load_state("book:1", lambda: {"v": 1}) == {"v": 1}
    before = dictstore.calls
    assert b.get_state("book:1") == {"v": 1}
    assert dictstore.calls - before == 1
    write(conn, feed, ["book:1", "book"], cache=a)
    assert a.get_state("book:1") is NO_VALUE
    b.poll(conn)
    assert b.get_state("book:1") is NO_VALUE
    assert b.load_state("book:1", lambda: {"v": 2}) == {"v": 2}
    a.poll(conn)
    before = dictstore.calls
    assert a.get_state("book:1") == {"v": 2}
    assert dictstore.calls - before == 1


def test_stale_state_fill_is_never_read(db, embedded):
    conn, feed = db
    a = Cache(embedded, feed=feed)
    b = Cache(embedded, feed=feed)
    a.poll(conn)
    b.poll(conn)
    stamp = a.current_tid  # a starts loading book:1
    write(conn, feed, ["book:1"], cache=b)
    b.poll(conn)
    a.set_state("book:1", {"v": "old"}, tid=stamp)  # a's late fill of old data
    assert b.get_state("book:1") is NO_VALUE
    a.poll(conn)
    assert a.get_state("book:1") is NO_VALUE


def test_get_states_many_in_one_round_trip_and_missing_row_marker(db, dictstore):
    conn, feed = db
    a = Cache(dictstore, feed=feed)
    a.poll(conn)
    a.set_state("book:1", {"v": 1})
    a.set_state("book:2", None)  # the row does not exist
    before = dictstore.calls
    got = a.get_states(["book:1", "book:2", "book:3"])
    assert dictstore.calls - before == 1
    assert got == {"book:1": {"v": 1}, "book:2": None}


def test_table_wide_write_invalidates_states(db, embedded):
    conn, feed = db
    a = Cache(embedded, feed=feed)
    a.poll(conn)
    a.set_state("book:1", {"v": 1})
    write(conn, feed, ["book:*", "book"], cache=a)
    a.poll(conn)
    assert a.get_state("book:1") is NO_VALUE


def test_bad_configuration_is_rejected(embedded):
    with pytest.raises(ConfigurationError, match="max_delta"):
        Cache(embedded, max_delta=0)
    with pytest.raises(ConfigurationError, match="namespace"):
        Cache(embedded, namespace="has space")
