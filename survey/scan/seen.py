"""Which names an input list already gave, in about 8 bytes per name.

A set of a million domain names costs over 100 MB (a str object and a hash
slot each); a top-1M or zone-sized list must not grow the scan by that much
(issue 10: the DNS stage's peak RSS at 1M names within 1.2 x its 100k
figure). ``SeenNames`` keeps a 64-bit BLAKE2b digest per name instead, sorted
in 2**14 small arrays chosen by the digest's top bits, so an insert moves a
few hundred bytes at most. Two different names share a digest with
probability about n**2 / 2**65 (3e-8 for a million names): the later one
would be taken for a duplicate.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left

BUCKET_BITS = 14


def name_digest(name: str) -> int:
    """The stable 64-bit digest of a name (also what ``--shard`` hashes)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "replace"),
                                          digest_size=8).digest(), "big")


class SeenNames:
    def __init__(self) -> None:
        self._buckets: list[array | None] = [None] * (1 << BUCKET_BITS)
        self.count = 0

    def add(self, digest: int) -> bool:
        """Record a name's digest; False when it was recorded before."""
        index = digest >> (64 - BUCKET_BITS)
        bucket = self._buckets[index]
        if bucket is None:
            self._buckets[index] = array("Q", (digest,))
        else:
            at = bisect_left(bucket, digest)
            if at < len(bucket) and bucket[at] == digest:
                return False
            bucket.insert(at, digest)
        self.count += 1
        return True
