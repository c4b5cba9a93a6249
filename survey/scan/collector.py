"""Python's cyclic garbage collector, set for a scan.

Theory of operation
-------------------
Reference counting frees almost everything a scan discards (DNS messages, SMTP
replies, finished tasks); the cyclic collector only finds reference cycles.
With CPython's default thresholds (700, 10, 10) it runs whenever 700 more
container objects are alive, and every so often a full collection walks every
object the scan keeps: each server's result for the domains still to come, the
caches, the trust store. That set grows with the scan, so each full collection
costs more (session 8, ``survey scan --world`` of the default world, starttls,
concurrency 200, the collector's own CPU counted by ``gc.callbacks``):

  =========  =======================  ===============  ======================
  domains    collector CPU / domain   full collections  cyclic garbage found
  =========  =======================  ===============  ======================
  10,000     1.00 ms (15% of 6.6 ms)  29 (0.20 s each)  about 5,000 objects
  50,000     1.63 ms (22% of 7.3 ms)  96 (0.62 s each)  about 16,000 objects
  =========  =======================  ===============  ======================

The rest of the scanner's CPU per domain stayed flat (5.6 and 5.7 ms): the
collector was why the CPU per domain grew with the size of a scan, and it
found almost nothing. ``SCAN_THRESHOLDS`` collects the young generation every
100,000 objects and the older ones rarely, so a full collection almost never
runs inside a scan; the cycles a scan makes (a few per thousand domains) are
still collected when young, and the few that grow old wait until the scan ends.

The thresholds are the process's, so ``scan_thresholds`` restores what it found:
a notebook or test that runs a scan keeps its own settings afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

SCAN_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def scan_thresholds() -> Iterator[None]:
    """Inside: the collector runs at ``SCAN_THRESHOLDS``; after: as before."""
    before = gc.get_threshold()
    gc.set_threshold(*SCAN_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
