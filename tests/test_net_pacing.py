"""The pacer (net/pacing.py): spacing, one wake-up per paced event, cancellation."""

from __future__ import annotations

import pytest
import trio

from survey.net.pacing import Pacer


class Steps(trio.abc.Instrument):
    """Task steps (each a wake-up of a task by trio's scheduler), by task name."""

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] = self.steps.get(task.name, 0) + 1


async def paced(pacer: Pacer, log: list[float]) -> None:
    await pacer.wait()
    log.append(trio.current_time())


async def test_events_are_spaced_by_the_interval_in_arrival_order(autojump_clock):
    pacer, log = Pacer(rate=4), []
    async with trio.open_nursery() as nursery:
        for _ in range(9):
            nursery.start_soon(paced, pacer, log)
    assert len(log) == 9
    gaps = [b - a for a, b in zip(log, log[1:])]
    assert min(gaps) == pytest.approx(0.25) and max(gaps) == pytest.approx(0.25)


async def test_each_paced_event_costs_one_wake_up(autojump_clock):
    """A caller that must wait is woken once, when its time comes (waiting in turn for a
    lock cost each queued caller a second wake-up, the hand-over)."""
    pacer, log, steps = Pacer(rate=10), [], Steps()
    trio.lowlevel.add_instrument(steps)
    try:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(paced, pacer, log, name=f"paced-{i}")
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert len(log) == 20
    # a caller's first step runs it up to its sleep, the second wakes it at its time
    # (the first to arrive goes at once: one step)
    assert sorted(s for n, s in steps.steps.items() if n.startswith("paced-")) == [1] + [2] * 19


async def test_a_late_wake_up_does_not_push_later_events_back(autojump_clock):
    """A loaded machine wakes the scan late: the events whose times have passed go
    together, and the later ones keep their times (the rate over the whole run holds)."""
    pacer, log = Pacer(rate=10), []
    async with trio.open_nursery() as nursery:
        for _ in range(10):                    # times 0, 0.1, ..., 0.9 s from now
            nursery.start_soon(paced, pacer, log)
        await trio.sleep(0.05)
        autojump_clock.jump(0.5)               # the scan was not scheduled for 0.5 s
    start = log[0]
    assert [round(t - start, 6) for t in log] == [0, 0.55, 0.55, 0.55, 0.55, 0.55,
                                                  0.6, 0.7, 0.8, 0.9]


async def test_an_idle_pacer_lets_the_caller_through_without_waiting(autojump_clock):
    pacer = Pacer(rate=2)
    await pacer.wait()
    await trio.sleep(5)
    started = trio.current_time()
    await pacer.wait()
    assert trio.current_time() == started


async def test_a_cancelled_last_caller_gives_its_time_back(autojump_clock):
    pacer = Pacer(rate=1)
    await pacer.wait()                         # the pacer's next free time: 1 s from now
    start = trio.current_time()
    with trio.move_on_after(0.5):
        await pacer.wait()                     # reserved 1 s, cancelled at 0.5 s
    await pacer.wait()                         # takes the 1 s slot nobody used
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_a_cancelled_caller_with_others_behind_it_keeps_the_rate(autojump_clock):
    """A caller cancelled while others have reserved after it leaves its time unused:
    the rate is never exceeded (the later callers keep their times)."""
    pacer, log = Pacer(rate=1), []
    await pacer.wait()
    start = trio.current_time()
    doomed = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_in_scope, doomed, pacer)     # reserves 1 s from now
        await trio.sleep(0)
        nursery.start_soon(paced, pacer, log)            # reserves 2 s from now
        await trio.sleep(0.1)
        doomed.cancel()
    assert [t - start for t in log] == [pytest.approx(2.0)]


async def _in_scope(scope: trio.CancelScope, pacer: Pacer) -> None:
    with scope:
        await pacer.wait()


def test_a_rate_must_be_positive_and_finite():
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            Pacer(bad)
