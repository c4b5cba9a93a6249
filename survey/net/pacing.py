"""Pacing: a minimum spacing between events (DNS queries, new connections).

A rate of R per second means no two events closer than 1/R seconds, shared by
every task that paces through the same object: bursts are what remote
operators notice and what rate limits punish. Uses trio's clock, so tests with
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
        self._lock = trio.Lock()

    async def wait(self) -> None:
        """Return when the next event may happen (immediately when unpaced: without even
        a checkpoint, a wake-up per DNS query and connection that bought nothing; every
        caller goes on to wait for the network)."""
        if not self.interval:
            return
        async with self._lock:
            now = trio.current_time()
            start = max(now, self._next)
            self._next = start + self.interval
            await trio.sleep_until(start)


async def acquire(semaphore: trio.Semaphore) -> None:
    """``semaphore.acquire()`` without its wake-up when a unit is free (trio's acquire
    yields to the scheduler even then; a unit is free only when nobody waits, so this is
    as fair). Release with ``semaphore.release()``."""
    try:
        semaphore.acquire_nowait()
    except trio.WouldBlock:
        await semaphore.acquire()
