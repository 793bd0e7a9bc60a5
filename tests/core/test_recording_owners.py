"""Keys recorded for one cache reach only that cache's recorders (and plain ones): each
cache validates keys against its own database's feed, so a computation of cache A that reads
through cache B is poisoned, never stored with B's keys."""

from __future__ import annotations

from cachedeps import recording as rec


def test_keys_of_another_owner_poison_the_recorder():
    a, b = object(), object()
    with rec.recording(a) as outer, rec.recording() as plain, rec.recording(b) as inner:
        rec.record("t:1", owner=b)
        rec.record_many(["t.x=1"], b)
    assert inner.keys == {"t:1", "t.x=1"} and inner.poisoned is None
    assert plain.keys == {"t:1", "t.x=1"} and plain.poisoned is None
    assert outer.keys == set() and outer.poisoned is not None


def test_keys_without_an_owner_reach_every_recorder():
    a = object()
    with rec.recording(a) as owned, rec.recording() as plain:
        rec.record("t:1")
    assert owned.keys == plain.keys == {"t:1"} and owned.poisoned is None


def test_a_cache_records_for_itself(tmp_path):
    import cachedeps

    one = cachedeps.Cache(cachedeps.open_store("embedded://"))
    two = cachedeps.Cache(cachedeps.open_store("embedded://"))
    with one.recording() as r1:
        one.record("t:1")
        assert r1.poisoned is None
        two.record("t:2")
    assert r1.keys == {"t:1"} and r1.poisoned is not None
    computed = []
    assert one.get_or_compute("k", lambda: computed.append(1) or two.record("t:2") or "v") == "v"
    assert one.get_or_compute("k", lambda: computed.append(1) or "v") == "v"
    assert len(computed) == 2  # the first value read through another cache: not stored
