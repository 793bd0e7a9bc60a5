"""``cachedeps.unit_of_work()`` in the engine: one poll per unit per cache, nested units poll
afresh, a change another process records between units is seen by the next one."""

from __future__ import annotations

import asyncio

import cachedeps
from cachedeps import Cache
from cachedeps.work import in_unit_of_work


def _polls(cache: Cache) -> int:
    return cache.stats()["polls"]


def test_one_poll_per_unit(dictstore):
    cache = Cache(dictstore)
    with cachedeps.unit_of_work():
        assert in_unit_of_work()
        first = cache.ensure_polled()
        assert all(cache.ensure_polled() == first for _ in range(9))
        assert cache.polled_in_unit()
    assert _polls(cache) == 1
    assert not in_unit_of_work() and not cache.polled_in_unit()
    cache.ensure_polled()
    cache.ensure_polled()
    assert _polls(cache) == 3  # outside a unit every call polls


def test_each_cache_polls_once_in_a_unit(dictstore):
    a, b = Cache(dictstore, namespace="a:"), Cache(dictstore, namespace="b:")
    with cachedeps.unit_of_work():
        for _ in range(3):
            a.ensure_polled()
            b.ensure_polled()
    assert (_polls(a), _polls(b)) == (1, 1)


def test_a_nested_unit_polls_afresh(dictstore):
    cache = Cache(dictstore)
    with cachedeps.unit_of_work():
        cache.ensure_polled()
        with cachedeps.unit_of_work():
            cache.ensure_polled()
            cache.ensure_polled()
        cache.ensure_polled()
    assert _polls(cache) == 2


def test_another_process_changes_between_units(dictstore):
    reader, writer = Cache(dictstore), Cache(dictstore)  # two processes, one store feed
    writer.poll()
    with cachedeps.unit_of_work():
        reader.ensure_polled()
        reader.set("page", "old", depends_on=["book:1"])
        assert reader.get("page") == "old"
    writer.invalidate("book:1")
    with cachedeps.unit_of_work():
        reader.ensure_polled()
        assert reader.get("page", None) is None


def test_own_writes_are_seen_inside_the_unit(dictstore):
    cache = Cache(dictstore)
    with cachedeps.unit_of_work():
        cache.ensure_polled()
        cache.set("page", "old", depends_on=["book:1"])
        cache.invalidate("book:1")
        cache.ensure_polled()
        assert cache.get("page", None) is None
    assert _polls(cache) == 1


def test_concurrent_tasks_have_units_of_their_own(dictstore):
    cache = Cache(dictstore)

    async def task() -> None:
        with cachedeps.unit_of_work():
            cache.ensure_polled()
            await asyncio.sleep(0)
            cache.ensure_polled()

    async def main() -> None:
        await asyncio.gather(*(task() for _ in range(4)))

    asyncio.run(main())
    assert _polls(cache) == 4
