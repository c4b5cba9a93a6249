"""Single flight: the first caller for a key computes the value, later callers wait for it.

This is how a scan talks to each mail server once however many domains use it,
and resolves each MX host once however many domains name it. Results are kept
(for the scan's lifetime); a failure is a value too, never an exception, in
every caller here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self.results: dict[Hashable, V] = {}
        self._pending: dict[Hashable, trio.Event] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self.results

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        while key not in self.results:
            if (event := self._pending.get(key)) is not None:
                await event.wait()
                continue
            event = self._pending[key] = trio.Event()
            try:
                self.results[key] = await compute()
            finally:
                del self._pending[key]
                event.set()
        return self.results[key]
