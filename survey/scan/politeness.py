"""Politeness: per-IP connection caps and spacing, and a global connection rate.

Every connection the scanner opens (SMTP and HTTPS alike) happens inside
``Politeness.slot(ip)``: at most ``per_ip`` connections to one address at a
time, at least ``spacing`` seconds between the end of one and the start of
the next to that address, and no more than ``rate`` new connections per second
overall. The spacing holds between every pair of connections to an address,
the hellos of one server's enumeration included (one at a time, each a
moment after the last: an address's state outlives its last user until its
next-free time has passed, or the next hello would be let in at once).
State is kept only for addresses in use or still within their spacing, so
a million-address scan does not accumulate a million semaphores: idle
states are dropped, oldest first, as their next-free times pass.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from survey.net.pacing import Pacer, acquire


@dataclass
class _Address:
    slots: trio.Semaphore
    users: int = 0
    free_at: float = -1e18     # when the next connection may start (spacing)


@dataclass
class Politeness:
    per_ip: int = 1
    spacing: float = 0.0
    rate: float | None = None
    connections: int = 0
    _addresses: dict[str, _Address] = field(default_factory=dict, repr=False)
    _idle: list[tuple[float, str]] = field(default_factory=list, repr=False)  # heap
    _pacer: Pacer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.per_ip < 1:
            raise ValueError("per_ip must be at least 1")
        if self.spacing < 0:
            raise ValueError("spacing must not be negative")
        self._pacer = Pacer(self.rate)

    def _forget_idle(self, now: float) -> None:
        """Drop the states nobody uses whose next-free time has passed."""
        while self._idle and self._idle[0][0] <= now:
            free_at, ip = heapq.heappop(self._idle)
            state = self._addresses.get(ip)
            if state is not None and not state.users and state.free_at <= now:
                del self._addresses[ip]

    @asynccontextmanager
    async def slot(self, ip: str) -> AsyncIterator[None]:
        self._forget_idle(trio.current_time())
        state = self._addresses.get(ip)
        if state is None:
            state = self._addresses[ip] = _Address(trio.Semaphore(self.per_ip))
        state.users += 1
        try:
            await acquire(state.slots)
            try:
                if state.free_at > trio.current_time():   # (sleep_until costs a wake-up
                    await trio.sleep_until(state.free_at)   # and a timer even when past)
                await self._pacer.wait()
                self.connections += 1
                try:
                    yield
                finally:
                    state.free_at = trio.current_time() + self.spacing
            finally:
                state.slots.release()
        finally:
            state.users -= 1
            if not state.users:
                if state.free_at > trio.current_time():
                    heapq.heappush(self._idle, (state.free_at, ip))   # kept until then
                else:
                    del self._addresses[ip]

    @property
    def tracked(self) -> int:
        """Addresses with state now (in use, or idle within their spacing)."""
        return len(self._addresses)
