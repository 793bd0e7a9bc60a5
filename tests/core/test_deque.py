"""The deque: collections.deque semantics, large values, lost elements, crashes, expiry."""

from __future__ import annotations

import collections
import random
import threading
import time
import uuid

import pytest

from cachedeps.deque import Deque, DequeExists, DequeNotFound
from cachedeps.errors import ConfigurationError, InvalidKey
from cachedeps.mcas import DESCRIPTOR_PREFIX

from ._mcas_support import STORE_KINDS, Crash, CrashingStore, DictStore, make_store, mcas_serve  # noqa: F401 (fixture)


@pytest.fixture(params=STORE_KINDS)
def store(request):
    return make_store(request.param, request)


@pytest.fixture
def name():
    return f"q{uuid.uuid4().hex[:10]}"


def test_create_bind_and_names(store, name):
    deque = Deque.create(store, name)
    assert deque.name == name and len(deque) == 0
    with pytest.raises(DequeExists, match="Deque.bind"):
        Deque.create(store, name)
    other = Deque.bind(store, name)
    other.append(1)
    assert len(deque) == 1 and deque.pop() == 1
    with pytest.raises(DequeNotFound, match="Deque.create"):
        Deque.bind(store, name + "x")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 240])
def test_bad_names_are_refused(bad):
    with pytest.raises((ConfigurationError, InvalidKey)):
        Deque.create(DictStore(), bad)


def test_bad_options_are_refused(name):
    with pytest.raises(ConfigurationError, match="ttl"):
        Deque.create(DictStore(), name, ttl=0)
    with pytest.raises(ConfigurationError, match="inline_limit"):
        Deque.create(DictStore(), name, inline_limit=-1)


def test_empty_pops_raise_index_error(store, name):
    deque = Deque.create(store, name)
    with pytest.raises(IndexError):
        deque.pop()
    with pytest.raises(IndexError):
        deque.popleft()
    deque.appendleft("a")
    assert deque.pop() == "a"
    with pytest.raises(IndexError):
        deque.popleft()


def test_matches_collections_deque(store, name):
    rng = random.Random(7)
    deque = Deque.create(store, name, inline_limit=16)
    model: collections.deque = collections.deque()
    for step in range(160):
        op = rng.choice(["append", "appendleft", "pop", "popleft"])
        if op.startswith("append"):
            # Values on both sides of the inline limit.
            value = {"step": step, "pad": "p" * rng.choice([0, 40])}
            getattr(deque, op)(value)
            getattr(model, op)(value)
        elif model:
            assert getattr(deque, op)() == getattr(model, op)()
        else:
            with pytest.raises(IndexError):
                getattr(deque, op)()
        assert len(deque) == len(model)
    while model:
        assert deque.popleft() == model.popleft()


def test_popped_elements_leave_nothing_behind():
    store = DictStore()
    deque = Deque.create(store, "jobs", inline_limit=8)
    for i in range(10):
        deque.append("large value %d" % i)  # stored apart from its slot
        deque.appendleft(i)
    assert len([k for k in store.keys() if ":v:" in k]) == 10
    while True:
        try:
            deque.pop()
        except IndexError:
            break
    assert store.keys() == ["deque:jobs"]


def test_values_nearly_as_large_as_an_item(memcached, name):
    from ._mcas_support import open_store

    store = open_store([memcached.address])
    deque = Deque.create(store, name)
    big = bytes(range(256)) * 3900  # ~1,000,000 bytes, under memcached's 1 MiB item
    deque.append(big)
    deque.appendleft(b"small")
    assert deque.pop() == big
    assert deque.pop() == b"small"


def test_lost_elements_are_skipped_never_duplicated():
    store = DictStore()
    deque = Deque.create(store, "lossy", inline_limit=8)
    for i in range(6):
        deque.append(f"element {i}")
    store.delete("deque:lossy:1")  # a slot evicted
    value_keys = sorted(k for k in store.keys() if ":v:" in k)
    slot3 = store.get("deque:lossy:3")
    victim = next(k for k in value_keys if k.encode() in slot3)
    store.delete(victim)  # a separate value evicted
    got = []
    while True:
        try:
            got.append(deque.popleft())
        except IndexError:
            break
    assert got == ["element 0", "element 2", "element 4", "element 5"]


def test_elements_and_abandoned_deques_expire():
    store = DictStore()
    deque = Deque.create(store, "short", ttl=0.05)
    deque.append("soon gone")
    time.sleep(0.1)
    with pytest.raises(DequeNotFound):
        deque.pop()
    assert store.keys() == []
    deque = Deque.create(store, "short", ttl=0.2)  # the name is free again
    deque.append("old")
    time.sleep(0.12)
    deque.append("new")  # refreshes the anchor, not the old element
    time.sleep(0.12)
    assert deque.popleft() == "new"
    with pytest.raises(IndexError):
        deque.popleft()


@pytest.mark.parametrize("op", ["append", "appendleft", "pop", "popleft"])
def test_dying_mid_operation_keeps_the_deque_consistent(op):
    """Stop a caller before each of its writes in turn; no element is lost or doubled."""
    for point in range(1, 40):
        store = DictStore()
        deque = Deque.create(store, "d", inline_limit=8)
        for i in range(3):
            deque.append(f"value {i}")
        dying = Deque.bind(CrashingStore(store, point), "d", inline_limit=8)
        try:
            result = getattr(dying, op)("value 3") if op.startswith("append") else getattr(dying, op)()
            finished = True
        except Crash:
            finished = False
        remaining = []
        while True:
            try:
                remaining.append(deque.popleft())
            except IndexError:
                break
        everything = [f"value {i}" for i in range(3)]
        if op == "append":
            allowed = [everything, everything + ["value 3"]]
        elif op == "appendleft":
            allowed = [everything, ["value 3"] + everything]
        elif op == "pop":
            allowed = [everything, everything[:2]]
            if finished:
                assert result == "value 2"
        else:
            allowed = [everything, everything[1:]]
            if finished:
                assert result == "value 0"
        assert remaining in allowed, f"{op} dying at write {point}: {remaining}"
        if finished:
            assert remaining == allowed[1]
            # Drained after a clean run, only the anchor (and descriptors of operations that
            # failed, kept briefly) may remain.
            leftovers = [k for k in store.keys() if k != "deque:d" and not k.startswith(DESCRIPTOR_PREFIX)]
            assert leftovers == []
            assert point > 3, "the operation made several writes, each a crash point"
            break
    else:
        pytest.fail(f"{op} never finished")


def test_threads_produce_and_consume_each_element_once(store, name):
    if store.name.startswith("memcache://"):
        pytest.skip("network stores are stressed with processes in test_mcas_stress")
    Deque.create(store, name)
    produced = [list(range(i, 400, 4)) for i in range(2)]
    consumed: list[list] = [[], []]
    done = threading.Event()

    def produce(ids):
        deque = Deque.bind(store, name)
        for i in ids:
            (deque.append if i % 3 else deque.appendleft)(i)

    def consume(out):
        deque = Deque.bind(store, name)
        while True:
            try:
                out.append(deque.popleft() if len(out) % 2 else deque.pop())
            except IndexError:
                if done.is_set():
                    return
                time.sleep(0.0005)

    producers = [threading.Thread(target=produce, args=(ids,)) for ids in produced]
    consumers = [threading.Thread(target=consume, args=(out,)) for out in consumed]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join()
    done.set()
    for t in consumers:
        t.join()
    everything = consumed[0] + consumed[1]
    assert sorted(everything) == sorted(produced[0] + produced[1])
