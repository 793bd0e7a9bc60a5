"""MCAS: atomicity, conflicts, eviction, callers that die half-way, and descriptor expiry."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from cachedeps import mcas as mcas_module
from cachedeps.errors import SerializationError, ValueTooLarge
from cachedeps.mcas import (
    DESCRIPTOR_PREFIX,
    Entry,
    McasFormatError,
    McasOutcomeUnknown,
    decode_value,
    encode_value,
    mcas,
    mcas_add,
    mcas_get,
    mcas_get_many,
)

from ._mcas_support import STORE_KINDS, Crash, CrashingStore, DictStore, make_store, mcas_serve  # noqa: F401 (fixture)


@pytest.fixture(params=STORE_KINDS)
def store(request):
    return make_store(request.param, request)


@pytest.fixture
def keys():
    prefix = uuid.uuid4().hex[:12]
    return [f"t{prefix}:{c}" for c in "abcd"]


def _values(store, keys):
    got = mcas_get_many(store, keys)
    return [got[k].value if k in got else None for k in keys]


def _raw_refs(store, keys):
    """Return the keys whose stored bytes are still a reference to a descriptor."""
    return [k for k in keys if (g := store.gets(k)) is not None and g[0][:1] == b"M"]


def test_add_get_round_trips_values(store, keys):
    value = {"s": "é", "n": [1, 2.5, None, True], "b": b"\x00\xff", 7: "int key", "t": (1, "x")}
    assert mcas_add(store, keys[0], value)
    assert not mcas_add(store, keys[0], "other"), "add must not overwrite"
    entry = mcas_get(store, keys[0])
    assert entry.key == keys[0] and entry.value == value and isinstance(entry.cas, int)
    assert mcas_get(store, keys[1]) is None
    assert set(mcas_get_many(store, keys)) == {keys[0]}


def test_mcas_changes_every_entry(store, keys):
    for i, k in enumerate(keys):
        mcas_add(store, k, i)
    entries = [mcas_get(store, k) for k in keys]
    assert mcas(store, [(e, e.value * 10) for e in entries])
    assert _values(store, keys) == [0, 10, 20, 30]
    assert not _raw_refs(store, keys)


def test_mcas_fails_whole_when_one_entry_changed(store, keys):
    for k in keys:
        mcas_add(store, k, 1)
    entries = [mcas_get(store, k) for k in keys]
    # Another writer changes the third entry after our snapshot.
    changed = mcas_get(store, keys[2])
    assert mcas(store, [(changed, 99)])
    assert not mcas(store, [(e, 2) for e in entries])
    assert _values(store, keys) == [1, 1, 99, 1]
    assert not _raw_refs(store, keys)
    # With fresh snapshots it goes through.
    entries = [mcas_get(store, k) for k in keys]
    assert mcas(store, [(e, 3) for e in entries])
    assert _values(store, keys) == [3, 3, 3, 3]


def test_entry_that_vanished_fails_the_operation(store, keys):
    # Deletion stands in for eviction: the operation fails and changes nothing else.
    for k in keys:
        mcas_add(store, k, 5)
    entries = [mcas_get(store, k) for k in keys]
    store.delete(keys[1])
    assert not mcas(store, [(e, 6) for e in entries])
    assert _values(store, keys) == [5, None, 5, 5]


def test_single_entry_is_a_plain_cas_without_descriptor():
    store = DictStore()
    mcas_add(store, "k", 1)
    entry = mcas_get(store, "k")
    assert mcas(store, [(entry, 2)])
    assert not mcas(store, [(entry, 3)]), "a spent snapshot must not apply"
    assert mcas_get(store, "k").value == 2
    assert store.keys() == ["k"]


def test_successful_operation_leaves_no_descriptor():
    store = DictStore()
    for k in "xyz":
        mcas_add(store, k, 0)
    assert mcas(store, [(mcas_get(store, k), 1) for k in "xyz"])
    assert sorted(store.keys()) == ["x", "y", "z"]


def test_malformed_operations_are_rejected(keys):
    store = DictStore()
    mcas_add(store, keys[0], 1)
    entry = mcas_get(store, keys[0])
    assert mcas(store, []) is True
    with pytest.raises(McasFormatError, match="appears twice"):
        mcas(store, [(entry, 2), (entry, 3)])
    with pytest.raises(McasFormatError, match=r"\(Entry, new_value\) pair"):
        mcas(store, [(keys[0], 2)])
    with pytest.raises(SerializationError, match="msgpack"):
        mcas(store, [(entry, object())])
    assert mcas_get(store, keys[0]).value == 1


def test_foreign_value_is_reported_with_the_fix():
    store = DictStore()
    store.set("plain", b"not mcas")
    with pytest.raises(McasFormatError, match="mcas_add"):
        mcas_get(store, "plain")
    assert decode_value("k", encode_value([1, "a"])) == [1, "a"]


@pytest.mark.parametrize("kind", ["dict", "embedded", "memcached"])
def test_caller_dying_at_any_point_never_tears_an_operation(kind, request):
    """Stop the caller before each of its writes in turn; readers always see all-old or all-new."""
    store = make_store(kind, request)
    point = 1
    while True:
        prefix = uuid.uuid4().hex[:8]
        keys = [f"crash{prefix}:{i}" for i in range(3)]
        for k in keys:
            mcas_add(store, k, "old")
        entries = [mcas_get(store, k) for k in keys]
        try:
            finished = mcas(CrashingStore(store, point), [(e, "new") for e in entries])
        except Crash:
            finished = None
        seen = _values(store, keys)
        assert seen in (["old"] * 3, ["new"] * 3), f"torn state {seen} after a crash at write {point}"
        assert not _raw_refs(store, keys)
        if finished is not None:
            assert seen == ["new"] * 3
            break
        # The entries stay usable.
        fresh = [mcas_get(store, k) for k in keys]
        assert mcas(store, [(e, "next") for e in fresh])
        point += 1
    assert point > 8, "every write of a three-entry operation was a crash point"


def test_reader_completes_a_claimed_operation_and_rolls_back_a_broken_one():
    store = DictStore()
    for k in "abc":
        mcas_add(store, k, 0)
    # Claimed every entry, then died: the next reader carries it to success.
    entries = [mcas_get(store, k) for k in "abc"]
    with pytest.raises(Crash):
        mcas(CrashingStore(store, 5), [(e, 1) for e in entries])  # add + 3 claims, dies deciding
    assert len(_raw_refs(store, "abc")) == 3
    assert mcas_get(store, "b").value == 1
    assert _values(store, "abc") == [1, 1, 1]
    # Claimed one entry, died; meanwhile another entry changed: readers roll it back.
    entries = [mcas_get(store, k) for k in "abc"]
    with pytest.raises(Crash):
        mcas(CrashingStore(store, 3), [(e, 2) for e in entries])  # add + 1 claim
    assert _raw_refs(store, "abc") == ["a"]
    assert mcas(store, [(mcas_get(store, "c"), 9)])
    assert _values(store, "abc") == [1, 1, 9]
    assert not _raw_refs(store, "abc")


def test_late_helper_puts_the_old_value_back():
    """A helper that read the descriptor before a failure claims an untouched entry late."""
    store = DictStore()
    for k in "ab":
        mcas_add(store, k, "old")
    a, b = mcas_get(store, "a"), mcas_get(store, "b")
    assert mcas(store, [(mcas_get(store, "a"), "changed")])
    # Capture the descriptor as a slow helper would, while the operation is undecided.
    captured = {}
    original = store.add

    def spying_add(key, value, expire=0, flags=0):
        if key.startswith(DESCRIPTOR_PREFIX):
            captured["key"], captured["raw"] = key, value
        return original(key, value, expire, flags)

    store.add = spying_add
    assert not mcas(store, [(a, "new"), (b, "new")])  # fails at "a", never touches "b"
    store.add = original
    record = mcas_module._Record.unpack(captured["key"], captured["raw"])
    # The slow helper wakes up, claims "b" with its still-valid CAS id, then finishes.
    mcas_module._help(store, captured["key"], record)
    assert _values(store, "ab") == ["changed", "old"]
    assert not _raw_refs(store, "ab")


@pytest.mark.parametrize("kind", ["dict", "embedded"])
def test_expired_descriptor_drops_its_entries_instead_of_guessing(kind, request):
    store = make_store(kind, request)
    for k in "ab":
        mcas_add(store, k, "old")
    entries = [mcas_get(store, k) for k in "ab"]
    with pytest.raises(Crash):
        mcas(CrashingStore(store, 4), [(e, "new") for e in entries], descriptor_ttl=0.05)
    time.sleep(0.1)
    assert store.get_many(["a", "b"]).keys() == {"a", "b"}, "both entries were claimed"
    assert mcas_get(store, "a") is None and mcas_get(store, "b") is None
    assert store.get_many(["a", "b"]) == {}, "entries pointing at an expired descriptor are removed"
    assert mcas_add(store, "a", "fresh")


def test_expired_descriptor_on_memcached(memcached):
    from ._mcas_support import open_store

    store = open_store([memcached.address])
    prefix = uuid.uuid4().hex[:8]
    keys = [f"exp{prefix}:{i}" for i in range(2)]
    for k in keys:
        mcas_add(store, k, 1)
    entries = [mcas_get(store, k) for k in keys]
    with pytest.raises(Crash):
        mcas(CrashingStore(store, 3), [(e, 2) for e in entries], descriptor_ttl=1)
    time.sleep(2.1)
    # The claimed entry is dropped; the one the caller never reached keeps its value.
    assert {k: e.value for k, e in mcas_get_many(store, keys).items()} == {keys[1]: 1}
    assert store.gets(keys[0]) is None, "the stale reference was deleted from memcached"


def test_reference_to_an_unrelated_descriptor_reads_as_missing():
    store = DictStore()
    for k in "ab":
        mcas_add(store, k, 0)
    entries = [mcas_get(store, k) for k in "ab"]
    with pytest.raises(Crash):
        mcas(CrashingStore(store, 2), [(e, 1) for e in entries])  # wrote the descriptor only
    (dkey,) = [k for k in store.keys() if k.startswith(DESCRIPTOR_PREFIX)]
    store.set("c", b"M" + dkey.encode())
    assert mcas_get(store, "c") is None
    assert _values(store, "ab") == [0, 0]


def test_outcome_unknown_when_descriptor_vanishes_midway():
    store = DictStore()
    for k in "ab":
        mcas_add(store, k, 0)
    entries = [mcas_get(store, k) for k in "ab"]
    original_cas = store.cas

    def evicting_cas(key, value, cas, expire=0, flags=0):
        if key.startswith(DESCRIPTOR_PREFIX):
            store.delete(key)  # evicted just before the decision
        return original_cas(key, value, cas, expire, flags)

    store.cas = evicting_cas
    with pytest.raises(McasOutcomeUnknown, match="vanished"):
        mcas(store, [(e, 1) for e in entries])
    store.cas = original_cas
    assert mcas_get_many(store, "ab") == {}


def test_descriptor_too_large_is_refused_before_anything_changes(memcached):
    from ._mcas_support import open_store

    store = open_store([memcached.address])
    prefix = uuid.uuid4().hex[:8]
    keys = [f"big{prefix}:{i}" for i in range(2)]
    for k in keys:
        mcas_add(store, k, b"x" * 300_000)
    entries = [mcas_get(store, k) for k in keys]
    with pytest.raises(ValueTooLarge, match="separate entries"):
        mcas(store, [(e, b"y" * 300_000) for e in entries])
    assert [v[:1] for v in _values(store, keys)] == [b"x", b"x"]


def test_eviction_by_memory_pressure_fails_rather_than_corrupts(memcached_factory):
    """The later entry (in key order) is evicted: the earlier one, already claimed, is put back."""
    from ._mcas_support import open_store

    server = memcached_factory(memory_mb=2)
    store = open_store([server.address])
    for k in ("acct:a", "acct:z"):
        mcas_add(store, k, 50)
    entries = mcas_get_many(store, ["acct:a", "acct:z"])
    # memcached evicts within a slab class: fill 2.5 times its memory with items of the
    # entries' size, reading acct:a (only) as we go so that acct:z alone falls out.
    for batch in range(100):
        store.set_many({f"fill:{batch}:{i}": b"f" * 20 for i in range(500)})
        assert store.gets("acct:a") is not None
    assert store.get("acct:z") is None, "memcached did not evict acct:z; fill more"
    assert not mcas(store, [(entries["acct:a"], 0), (entries["acct:z"], 100)])
    assert store.get("acct:a") == encode_value(50), "the caller put the claimed entry back"
    assert mcas_get(store, "acct:z") is None


def test_threads_moving_money_keep_the_total():
    store = DictStore()
    accounts = [f"acct:{i}" for i in range(5)]
    for k in accounts:
        mcas_add(store, k, 100)
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(150):
                src, dst = rng.sample(accounts, 2)
                got = mcas_get_many(store, [src, dst])
                amount = min(got[src].value, rng.randint(1, 30))
                mcas(store, [(got[src], got[src].value - amount), (got[dst], got[dst].value + amount)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    balances = _values(store, accounts)
    assert sum(balances) == 500 and min(balances) >= 0
    assert isinstance(mcas_get(store, accounts[0]), Entry)
