"""Single flight: the first caller for a key computes the value, later callers wait for it.

This is how a scan talks to each mail server once however many domains use it,
and resolves each MX host once however many domains name it. Results are kept
(for the scan's lifetime); a failure is a value too, never an exception, in
every caller here.

``max_results`` bounds what is kept, for scans whose keys grow with the input
(a million domains name a million MX hosts): the least recently used result
is forgotten first, so the keys that many callers share (a provider's MX
hosts) stay while one-off keys make room. A forgotten key is computed again
if asked for again — one more query, never a wrong answer. ``None`` (the
default) keeps everything, which is what "each server once" needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self, max_results: int | None = None) -> None:
        if max_results is not None and max_results < 1:
            raise ValueError("max_results must be at least 1")
        self.max_results = max_results
        self.results: dict[Hashable, V] = {}
        self._pending: dict[Hashable, trio.Event] = {}
        self.evicted = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self.results

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        results = self.results
        while key not in results:
            if (event := self._pending.get(key)) is not None:
                await event.wait()
                if key in results:
                    return results[key]   # (if it was already evicted, compute it again)
                continue
            event = self._pending[key] = trio.Event()
            try:
                value = results[key] = await compute()
            finally:
                del self._pending[key]
                event.set()
            if self.max_results is not None and len(results) > self.max_results:
                del results[next(iter(results))]      # the least recently used
                self.evicted += 1
            return value
        if self.max_results is not None:
            results[key] = results.pop(key)           # now the most recently used
        return results[key]
