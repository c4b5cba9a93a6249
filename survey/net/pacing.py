"""Pacing: a minimum spacing between events (DNS queries, new connections).

A rate of R per second means events scheduled 1/R seconds apart, shared by
every task that paces through the same object: bursts are what remote
operators notice and what rate limits punish. A scan the machine wakes late
(a loaded machine) lets the events whose times have passed go together and
keeps the later ones' times. No event goes before its time, so at most 1 + R x t
go in the t seconds after the first. Uses trio's clock, so tests with
``autojump_clock`` run instantly.
"""

from __future__ import annotations

import math

import trio


class Pacer:
    def __init__(self, rate: float | None) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"a rate must be a positive number per second, not {rate!r}")
        self.interval = 0.0 if rate is None else 1.0 / rate
        self._next = -math.inf

    async def wait(self) -> None:
        """Return when the next event may happen (immediately when unpaced or when the
        pacer is idle: without even a checkpoint, a wake-up per DNS query and connection
        that bought nothing; every caller goes on to wait for the network).

        Each caller reserves the next free time when it arrives (first come, first
        served) and sleeps until then: one wake-up per paced event. Waiting in turn for a
        lock instead cost a second one, the hand-over to the next waiter, and let a late
        wake-up on a loaded machine push every later event back (benchmarks/README.md).
        A cancelled caller gives its time back when nobody reserved after it."""
        if not self.interval:
            return
        now = trio.current_time()
        start = max(now, self._next)
        self._next = start + self.interval
        if start <= now:
            return
        try:
            await trio.sleep_until(start)
        except BaseException:
            if self._next == start + self.interval:
                self._next = start
            raise


async def acquire(semaphore: trio.Semaphore) -> None:
    """``semaphore.acquire()`` without its wake-up when a unit is free (trio's acquire
    yields to the scheduler even then; a unit is free only when nobody waits, so this is
    as fair). Release with ``semaphore.release()``."""
    try:
        semaphore.acquire_nowait()
    except trio.WouldBlock:
        await semaphore.acquire()
