"""The derived-entry layout: header first, bytes payloads as they are, validation on the fast path."""

from __future__ import annotations

import pytest

from cachedeps import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.entries import ENTRY_TAG, HEADER_SIZE, decode_entry, encode_entry
from cachedeps.errors import CorruptValue, InvalidKey
from cachedeps.serde import MsgpackSerializer, SignedPickleSerializer

from ._support import write


@pytest.mark.parametrize("serializer", [MsgpackSerializer(), SignedPickleSerializer("s3cret")])
def test_layout_round_trips_values_and_bytes(serializer):
    for value in ({"rows": [1, 2]}, None, "text", b"<p>page</p>", b""):
        raw = encode_entry(42, ["book:1", "book:*", "book.title=a b"], value, serializer)
        assert raw[0] == ENTRY_TAG
        assert decode_entry(raw, serializer) == (42, ["book:1", "book:*", "book.title=a b"], value)
    raw = encode_entry(7, [], b"page", serializer)
    assert raw[HEADER_SIZE:] == b"page"  # a bytes value is stored as it is, after the header
    assert decode_entry(raw, serializer) == (7, [], b"page")


def test_bad_bytes_and_bad_dependency_keys_are_refused():
    serde = MsgpackSerializer()
    for bad in (b"", b"\xd1\x00", serde.dumps([1, [], "old layout"]), b"\xd1" + b"\x00" * 8 + b"z\x00\x00\x00\x00"):
        with pytest.raises(CorruptValue):
            decode_entry(bad, serde)
    with pytest.raises(InvalidKey, match="NUL"):
        encode_entry(1, ["a\x00b"], 1, serde)
    with pytest.raises(InvalidKey):
        encode_entry(1, [""], 1, serde)


def test_bytes_value_hits_as_bytes_and_follows_changes(pair):
    conn, feed, a, b = pair
    page = b"<ul>" + b"<li>x</li>" * 200 + b"</ul>"
    assert a.set("view:/", page, depends_on=["book:1"])
    assert b.get("view:/") == page and type(b.get("view:/")) is bytes
    write(conn, feed, ["book:1"], a)
    assert a.get("view:/") is NO_VALUE
    b.poll(conn)
    assert b.get("view:/") is NO_VALUE


def test_fast_path_still_rejects_entries_older_than_a_known_change(pair):
    conn, feed, a, b = pair
    stamp = a.current_tid
    write(conn, feed, ["author:9"], a)  # unrelated
    assert a.set("q", [1], depends_on=["book:1"], tid=stamp)  # stamped before the change
    assert a.get("q") == [1]  # validated through the dependency keys: still current
    write(conn, feed, ["book:1"], a)
    assert a.get("q") is NO_VALUE
    a.poll(conn)
    # an entry stamped after every known change is current without reading its keys...
    assert a.set("q", [2], depends_on=["book:1"])
    assert a.get("q") == [2]
    # ...until a later change to one of them
    write(conn, feed, ["book:1"], a)
    assert a.get("q") is NO_VALUE
    # a process that polled nothing yet (blind maps) never trusts an entry with dependencies
    fresh = Cache(a.store, feed=feed)
    a.poll(conn)
    assert a.set("q", [3], depends_on=["book:1"])
    assert fresh.get("q") is NO_VALUE
    fresh.poll(conn)
    assert fresh.get("q") == [3]


def test_entries_of_the_previous_layout_read_as_misses(pair, embedded):
    _, _, a, _ = pair
    embedded.set("d:old", a.serializer.dumps([a.current_tid, ["book:1"], {"v": 1}]))
    assert a.get("old") is NO_VALUE
    assert a.stats()["misses"] == 1


def test_a_hit_on_the_fast_path_records_the_dependencies(pair):
    _, _, a, _ = pair
    a.set("frag", b"<b>x</b>", depends_on=["book:1", "author:2"])
    with a.recording() as rec:
        assert a.get("frag") == b"<b>x</b>"
    assert {"book:1", "book:*", "author:2", "author:*", "@frag"} <= rec.keys


def test_an_entry_kept_under_the_callers_key_is_validated_and_purged(pair):
    conn, feed, a, b = pair
    assert a.set("page", b"v1", depends_on=["book:1"], store_key="app:page") is True
    raw = a.store.get("app:page")
    assert raw is not None and raw[0] == ENTRY_TAG
    assert a.store.get(a._entry_key("page")) is None  # nothing under the engine's own key
    assert b.load_entry("page", b.store.get("app:page")) == b"v1"
    write(conn, feed, ["book:2"])  # an unrelated row
    b.poll(conn)
    assert b.load_entry("page", b.store.get("app:page")) == b"v1"
    tid = write(conn, feed, ["book:1"])
    a.committed(["book:1"], tid)
    b.poll(conn)
    # Purged by the dependency tree, and invalid even where the bytes survive.
    assert a.store.get("app:page") is None
    assert b.load_entry("page", raw) is NO_VALUE
    assert b.load_entry("page", None, default="d") == "d"
    assert b.load_entry("page", b"P not an entry") is NO_VALUE
