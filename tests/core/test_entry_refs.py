"""Entries built from other entries are validated on those entries' keys (issue 9, break 16).

Before, an entry whose dependencies were only ``"@<key>"`` references was stored as a plain
value, valid forever; only the dependency trees could drop it, and on memcached an entry is
linked under at most ``MAX_EMULATED_LINKS`` parents, so a change behind the others never
reached it. Validation must not rely on the trees: with trees off, too.
"""

from __future__ import annotations

import os

import pytest

import cachedeps
from cachedeps.api import NO_VALUE
from cachedeps.cache import Cache
from cachedeps.deps import MAX_EMULATED_LINKS

from ._support import write


@pytest.fixture(params=["embedded", "memcached", "no-trees"])
def caches(request, embedded, db):
    conn, feed = db
    trees = request.param != "no-trees"
    if request.param == "memcached":
        store = cachedeps.open_store(request.getfixturevalue("memcached").url)
        ns = f"refs{os.getpid()}{id(request)}:"
    else:
        store, ns = embedded, ""
    a = Cache(store, feed=feed, namespace=ns, trees=trees)
    b = Cache(store, feed=feed, namespace=ns, trees=trees)
    a.poll(conn)
    b.poll(conn)
    yield conn, feed, a, b
    if request.param == "memcached":
        store.close()


def test_an_entry_of_only_references_follows_its_sources(caches):
    conn, feed, a, b = caches
    assert a.set("frag", "<li>A</li>", depends_on=["book:1"])
    assert a.set("page", "<ul><li>A</li></ul>", depends_on=["@frag"])
    assert b.get("page") == "<ul><li>A</li></ul>"
    write(conn, feed, ["book", "book:1"])  # another process's write: no purge in this one
    b.poll(conn)
    assert b.get("page") is NO_VALUE


def test_an_entry_with_more_parents_than_tree_links_follows_them_all(caches):
    conn, feed, a, b = caches
    n = MAX_EMULATED_LINKS + 6
    for i in range(n):
        assert a.set(f"frag{i}", f"<p>{i}</p>", depends_on=[f"book:{i}"])
    assert a.set("page", "all", depends_on=[f"@frag{i}" for i in range(n)])
    assert b.get("page") == "all"
    write(conn, feed, ["book", f"book:{n - 1}"], cache=a)  # the last parent: never linked
    b.poll(conn)
    assert a.get("page") is NO_VALUE and b.get("page") is NO_VALUE


def test_a_missing_or_stale_source_is_not_built_upon(caches):
    conn, feed, a, b = caches
    assert not a.set("page", "x", depends_on=["@nowhere"])
    stamp = a.current_tid
    assert a.set("frag", "old", depends_on=["book:1"])
    write(conn, feed, ["book", "book:1"], cache=a)
    assert not a.set("page", "built from old", depends_on=["@frag"], tid=stamp)
    assert a.get("page") is NO_VALUE


def test_recorded_references_keep_hitting(caches):
    conn, feed, a, b = caches
    assert a.set("frag", "f", depends_on=["book:1"])
    with a.recording() as rec:
        assert a.get("frag") == "f"
    assert "@frag" in rec.keys and "book:1" in rec.keys
    assert a.set("page", "p", depends_on=sorted(rec.keys))
    assert b.get("page") == "p"
    write(conn, feed, ["book", "book:2"], cache=a)
    b.poll(conn)
    assert b.get("page") == "p"
