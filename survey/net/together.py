"""Run a few jobs concurrently, without a nursery when there is only one (or none).

A scan runs millions of small jobs; each trio task costs a spawn, a first
scheduling and a nursery's bookkeeping, a measurable share of a scan's CPU
per domain (benchmarks/profile.py, scheduler). Most domains have one MX
address and no MTA-STS policy to fetch, so their "concurrent" jobs are a
single job: it runs in the caller's task. Exceptions propagate as a
nursery's would (a group from two or more jobs; callers look inside groups
with survey.interrupts.leaf).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio


async def together(jobs: Sequence[Callable[[], Awaitable[object]]]) -> None:
    """Await every job: one inline, several in a nursery."""
    if len(jobs) == 1:
        await jobs[0]()
    elif jobs:
        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(job)
