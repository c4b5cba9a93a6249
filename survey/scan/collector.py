"""Python's cyclic garbage collector, set for a scan.

Theory of operation
-------------------
Reference counting frees almost everything a scan discards (DNS messages, SMTP
replies, finished tasks); the cyclic collector only finds reference cycles.
With CPython's default thresholds (700, 10, 10) it runs whenever 700 more
container objects are alive, and every so often a full collection walks every
object the scan keeps: each server's result for the domains still to come, the
caches, the trust store. That set grows with the scan, so each full collection
costs more. Counted with ``gc.callbacks`` (``survey scan --world``, default
world, starttls, concurrency 200): 29 full collections of 0.20 s each at 10,000
domains, 96 of 0.62 s at 50,000; the collector took 15% and 22% of the
scanner's CPU, and all its collections together found about 5,000 and 16,000
objects of garbage. It was why the CPU per domain grew with the size of a scan.

``SCAN_THRESHOLDS`` collects the young generation every 100,000 objects and the
older ones rarely, so a full collection almost never runs inside a scan; the
few cycles a scan makes are still collected when young. Before and after, in one
run each (benchmarks/scale.py ``--compare-rev``): 5.83 -> 5.14 ms of CPU per
domain at 10,000 domains, 6.98 -> 5.15 at 50,000; peak RSS 226 -> 226 MB and
441 -> 437 MB.

The thresholds are the process's, so ``scan_thresholds`` restores what it found:
a notebook or test that runs a scan keeps its own settings afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

SCAN_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def thresholds(values: tuple[int, ...]) -> Iterator[None]:
    """Inside: the collector runs at ``values``; after: as before."""
    before = gc.get_threshold()
    gc.set_threshold(*values)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def scan_thresholds() -> contextlib.AbstractContextManager[None]:
    """Inside: the collector runs at ``SCAN_THRESHOLDS``; after: as before."""
    return thresholds(SCAN_THRESHOLDS)
