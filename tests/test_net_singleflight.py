"""SingleFlight: one computation per key, shared by concurrent callers; optional LRU bound."""

from __future__ import annotations

import pytest
import trio

from survey.net.singleflight import SingleFlight


async def test_concurrent_callers_share_one_computation():
    flight: SingleFlight[int] = SingleFlight()
    calls = []

    async def compute():
        calls.append(1)
        await trio.sleep(0.01)
        return 42

    got = []
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(lambda: _append(got, flight.get("k", compute)))
    assert got == [42] * 10 and calls == [1]


async def _append(out, awaitable):
    out.append(await awaitable)


async def test_a_bound_forgets_the_least_recently_used():
    flight: SingleFlight[str] = SingleFlight(max_results=2)
    calls: list[str] = []

    def compute(key):
        async def run():
            calls.append(key)
            return key.upper()
        return run

    for key in ["a", "b", "a", "c"]:       # "a" used again, so "b" is the oldest at "c"
        assert await flight.get(key, compute(key)) == key.upper()
    assert "a" in flight and "c" in flight and "b" not in flight and flight.evicted == 1
    assert await flight.get("b", compute("b")) == "B"      # forgotten: computed again
    assert calls == ["a", "b", "c", "b"]


def test_a_bound_must_be_positive():
    with pytest.raises(ValueError):
        SingleFlight(max_results=0)
