"""SeenNames: the de-duplication of input lists, exact for distinct digests, and small."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from survey.scan.seen import SeenNames, name_digest


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=200))
def test_it_answers_like_a_set(names):
    seen, reference = SeenNames(), set()
    for name in names:
        assert seen.add(name_digest(name)) == (name not in reference)
        reference.add(name)
    assert seen.count == len(reference)


def test_digests_that_share_a_bucket_stay_apart():
    seen = SeenNames()
    same_bucket = [(5 << 50) + i for i in (7, 3, 9, 3, 0, 7)]
    assert [seen.add(d) for d in same_bucket] == [True, True, True, False, True, False]


def test_a_hundred_thousand_names_cost_about_twenty_bytes_each():
    tracemalloc.start()
    seen = SeenNames()
    for i in range(100_000):
        seen.add(name_digest(f"d{i}.example"))
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen.count == 100_000
    assert size / 100_000 < 30       # a set of the names: over 100 bytes each
