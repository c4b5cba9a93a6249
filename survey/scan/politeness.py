"""Politeness: per-IP connection caps and spacing, and a global connection rate.

Every connection the scanner opens (SMTP and HTTPS alike) happens inside
``Politeness.slot(ip)``: at most ``per_ip`` connections to one address at a
time, at least ``spacing`` seconds between the end of one and the start of
the next to that address, and no more than ``rate`` new connections per second
overall. State is kept only for addresses in use, so a million-address scan
does not accumulate a million semaphores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from survey.net.pacing import Pacer


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
    _pacer: Pacer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.per_ip < 1:
            raise ValueError("per_ip must be at least 1")
        if self.spacing < 0:
            raise ValueError("spacing must not be negative")
        self._pacer = Pacer(self.rate)

    @asynccontextmanager
    async def slot(self, ip: str) -> AsyncIterator[None]:
        state = self._addresses.get(ip)
        if state is None:
            state = self._addresses[ip] = _Address(trio.Semaphore(self.per_ip))
        state.users += 1
        try:
            async with state.slots:
                await trio.sleep_until(state.free_at)
                await self._pacer.wait()
                self.connections += 1
                try:
                    yield
                finally:
                    state.free_at = trio.current_time() + self.spacing
        finally:
            state.users -= 1
            if not state.users:
                del self._addresses[ip]
