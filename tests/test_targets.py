"""Scan input: formats, IDNA2008/UTS-46 normalisation, invalid rows, dedup, shards."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survey.scan.targets import (
    MAX_LINE,
    InputError,
    estimate_count,
    normalize_domain,
    parse_shard,
    read_targets,
    shard_of,
    targets_from_lines,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),                # one trailing dot stripped
    ("Bücher.de", "xn--bcher-kva.de"),              # UTS-46 mapping, then A-label
    ("faß.de", "xn--fa-hia.de"),                    # IDNA2008 non-transitional: ß kept
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("ドメイン.テスト", "xn--eckwd4c7c.xn--zckzah"),
    ("  mail.example.org  ", "mail.example.org"),
])
def test_names_become_lowercase_a_labels(text, expected):
    assert normalize_domain(text) == expected


@pytest.mark.parametrize("text", ["", ".", "a..b", "-a.com", "x" * 64 + ".com", "1.2.3.4",
                                  "2001:db8::1", "exa mple.com", "_dmarc.example.com",
                                  "example.com..", ("a" * 60 + ".") * 5 + "com"])
def test_non_host_names_are_rejected(text):
    with pytest.raises(ValueError):
        normalize_domain(text)


def test_plain_list_with_comments_blank_lines_and_duplicates():
    lines = ["# top sites\n", "\n", "Example.com\n", "example.com.\n", "bad name\n",
             "EXAMPLE.ORG  # a trailing comment\n"]
    targets = list(targets_from_lines(lines))
    assert [t.domain for t in targets] == ["example.com", "bad name", "example.org"]
    assert [t.valid for t in targets] == [True, False, True]
    assert targets[1].error


def test_tranco_csv_keeps_rank_and_first_occurrence():
    lines = ["rank,domain\n", "1,google.com\n", "2,Google.com\n", "3,bücher.de\n", "4,\n"]
    targets = list(targets_from_lines(lines))
    assert [(t.rank, t.domain, t.valid) for t in targets] == [
        (1, "google.com", True), (3, "xn--bcher-kva.de", True), (4, "", False)]


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "list.txt"   # no .gz suffix on purpose
    path.write_bytes(gzip.compress(b"1,a.test\n2,b.test\n"))
    assert [t.domain for t in read_targets(path)] == ["a.test", "b.test"]


def test_a_list_that_is_not_utf8_is_refused_up_front(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"ok.test\n\xff\xfe.test\n")
    with pytest.raises(InputError, match="line 2 holds bytes that are not UTF-8"):
        list(read_targets(path))
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    with pytest.raises(InputError, match="NUL bytes"):
        list(read_targets(path))
    path.write_bytes("a.test\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16 text"):
        list(read_targets(path))
    path.write_bytes(gzip.compress(b"a.test\n\x00\n"))       # checked after gunzip
    with pytest.raises(InputError, match="NUL bytes"):
        list(read_targets(path))


def test_undecodable_bytes_far_into_a_list_become_an_invalid_row_with_its_reason(tmp_path):
    path = tmp_path / "list.txt"
    filler = b"".join(b"n%d.test\n" % i for i in range(20_000))     # beyond the checked head
    path.write_bytes("\ufeff".encode() + filler + b"\xff\xfe.test\nlast.test\n")
    targets = list(read_targets(path))
    assert targets[0].domain == "n0.test" and targets[-1].domain == "last.test"
    bad = targets[-2]
    assert not bad.valid and "\ufffd" in bad.input and bad.error


def test_an_overlong_line_is_capped_as_it_is_read(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"a.test\n" + b"x" * 5_000_000 + b"\nb.test\n")
    targets = list(read_targets(path))
    assert [t.domain for t in targets if t.valid] == ["a.test", "b.test"]
    assert len(targets[1].input) <= MAX_LINE


def test_a_fifo_or_directory_is_named_for_what_it_is(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="not a regular file"):
        list(read_targets(tmp_path / "fifo"))
    with pytest.raises(InputError, match="it is a directory"):
        list(read_targets(tmp_path))


def test_unreadable_input_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot read input"):
        list(read_targets(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="directory"):
        list(read_targets(tmp_path))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"a.test\n" * 1000)[:40])
    with pytest.raises(InputError):
        list(read_targets(broken))


def test_limit_counts_kept_targets():
    lines = [f"d{i}.test\n" for i in range(10)]
    assert len(list(targets_from_lines(lines, limit=3))) == 3


def test_shards_partition_the_input():
    lines = [f"d{i}.test\n" for i in range(1000)]
    shards = [[t.domain for t in targets_from_lines(lines, shard=(k, 4))] for k in range(1, 5)]
    assert sorted(sum(shards, [])) == sorted(f"d{i}.test" for i in range(1000))
    assert all(150 < len(s) < 350 for s in shards)
    assert shard_of("example.com", 7) == shard_of("example.com", 7)


@pytest.mark.parametrize("text", ["0/4", "5/4", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_specs_are_rejected(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_good_shard_spec():
    assert parse_shard("2/8") == (2, 8)


@given(st.lists(st.text(max_size=80), max_size=30))
def test_any_lines_give_targets_and_never_raise(lines):
    targets = list(targets_from_lines(line + "\n" for line in lines))
    domains = [t.domain for t in targets]
    assert len(domains) == len(set(domains))
    for t in targets:
        if t.valid:
            assert t.domain == t.domain.lower() and t.domain.isascii()
            assert not t.domain.endswith(".")


def test_estimate_count_is_cheap_and_close(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("rank,domain\n" + "".join(f"{i},d{i}.test\n" for i in range(1, 101))
                    + "# comment\n\n")
    assert estimate_count(path) == 100
    assert estimate_count(path, limit=7) == 7
    assert estimate_count(path, shard=(1, 4)) == 25
    with pytest.raises(InputError):
        estimate_count(tmp_path / "missing.txt")
