"""SeenNames: the exact de-duplication of input lists, in memory that does not grow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from survey.scan.seen import SeenNames
from survey.scan.targets import targets_from_lines


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=200))
def test_it_answers_like_a_set(names):
    reference = set()
    with SeenNames() as seen:
        for name in names:
            assert seen.add(name) == (name not in reference)
            reference.add(name)
        assert seen.count == len(reference)


def test_it_answers_membership_without_recording():
    with SeenNames() as seen:
        seen.add("a.example")
        assert "a.example" in seen and "b.example" not in seen
        assert len(seen) == 1 and "b.example" not in seen


def test_names_that_do_not_encode_are_kept_apart():
    with SeenNames() as seen:
        assert [seen.add(n) for n in ("a\udc80", "a\udc81", "a\udc80", "a")] == [
            True, True, False, True]


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def test_memory_stays_flat_as_names_grow():
    """300k more names move the process's RSS by under 1 MiB (the page cache is 256 KiB);
    a set of them would take over 30 MB, 8-byte digests 2.4 MB."""
    with SeenNames(cache_kib=256) as seen:
        for i in range(100_000):
            seen.add(f"d{i}.example")
        before = rss_kib()
        for i in range(100_000, 400_000):
            seen.add(f"d{i}.example")
        grown = rss_kib() - before
        assert seen.count == 400_000
    assert grown < 1024, f"RSS grew by {grown} KiB"


def test_a_list_keeps_the_first_rank_of_a_repeated_name():
    lines = ["1,a.example", "2,b.example", "3,A.example.", "4,b.example"]
    assert [(t.domain, t.rank) for t in targets_from_lines(lines)] == [
        ("a.example", 1), ("b.example", 2)]
