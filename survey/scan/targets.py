"""Scan input: domain lists in the forms researchers have, normalised once.

Accepted: plain lists (one name per line), Tranco-style ``rank,domain`` CSV
(a header line is skipped), either of them gzip-compressed (detected by the
magic bytes, not the file name); ``#`` comments and blank lines are ignored.
Names are normalised to lower-case A-labels with IDNA2008 and the UTS-46
mapping (the ``idna`` package; Python's own codec is IDNA2003) and lose one
trailing dot. A line that is not a host name becomes a target with status
``invalid_input`` (it is a row in the dataset, not a silent drop); a name seen
before is dropped, keeping its first rank.

``--shard K/N`` keeps the names whose stable hash falls in shard K (1-based):
the same name lands in the same shard on every machine and every run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import idna

from survey.scan.seen import SeenNames

MAX_LINE = 1024            # longer lines are not domain names; read no more of them
MAX_NAME = 253             # RFC 1035 §2.3.4 (text form without the trailing dot)


class InputError(ValueError):
    """The input list as a whole cannot be read (one clear line for the user)."""


@dataclass(frozen=True)
class Target:
    domain: str             # the A-label form, or the raw text for invalid input
    input: str              # the text as it appeared in the list
    rank: int | None
    error: str | None = None  # why the input is invalid; None for a valid name

    @property
    def valid(self) -> bool:
        return self.error is None


def normalize_domain(text: str) -> str:
    """A name -> lower-case A-labels without the trailing dot; ValueError if not a host name."""
    name = text.strip()
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    if not name:
        raise ValueError("empty name")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError("an IP address, not a domain name")
    try:
        alabel = idna.encode(name, uts46=True, transitional=False, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(str(exc)) from None
    if len(alabel) > MAX_NAME:
        raise ValueError(f"longer than {MAX_NAME} octets")
    return alabel.lower()


def parse_line(line: str) -> tuple[int | None, str] | None:
    """One input line -> (rank, name), or None for blank lines, comments and CSV headers."""
    text = line.split("#", 1)[0].strip()  # "#" never occurs in a host name
    if not text:
        return None
    if "," in text:
        first, _, rest = text.partition(",")
        first, rest = first.strip(), rest.strip()
        if first.isdigit():
            return int(first), rest.split(",", 1)[0].strip()
        if first.lower() == "rank":
            return None  # header
        return None, text
    return None, text


def open_text(path: Path | str) -> io.TextIOBase:
    """Open a list, transparently gunzipping it; undecodable bytes become U+FFFD."""
    path = Path(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raw.close()
        raise InputError(f"cannot read input {path}: it is a directory")
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)


def shard_of(domain: str, shards: int) -> int:
    """Stable shard number in 1..shards for a name: the same on every machine and run."""
    digest = hashlib.blake2b(domain.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 1 <= K <= N; ValueError with a clear message otherwise."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"--shard wants K/N such as 1/4, not {text!r}")
    k_, n_ = int(k), int(n)
    if not 1 <= k_ <= n_:
        raise ValueError(f"--shard {text}: K must be between 1 and N")
    return k_, n_


def targets_from_lines(lines: Iterable[str], *, shard: tuple[int, int] | None = None,
                       limit: int | None = None) -> Iterator[Target]:
    with SeenNames() as seen:
        emitted = 0
        for line in lines:
            if limit is not None and emitted >= limit:
                return
            parsed = parse_line(line[:MAX_LINE])
            if parsed is None:
                continue
            rank, text = parsed
            try:
                target = Target(normalize_domain(text), text, rank)
            except ValueError as exc:
                target = Target(text, text, rank, error=str(exc))
            if shard is not None and shard_of(target.domain, shard[1]) != shard[0]:
                continue
            if not seen.add(target.domain):
                continue
            emitted += 1
            yield target


def estimate_count(path: Path | str, *, shard: tuple[int, int] | None = None,
                   limit: int | None = None) -> int:
    """How many targets a list holds, for the progress total: a cheap pass that skips the
    IDNA work and the dedup of ``read_targets`` (duplicates and a shard's share make it
    an estimate; the scan itself never depends on it)."""
    with open_text(path) as fh:
        try:
            count = sum(1 for line in fh if parse_line(line[:MAX_LINE]) is not None)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot read input {path}: {exc}") from None
    if shard is not None:
        count = -(-count // shard[1])
    return count if limit is None else min(count, limit)


def read_targets(path: Path | str, *, shard: tuple[int, int] | None = None,
                 limit: int | None = None) -> Iterator[Target]:
    """Targets from a list file, streamed (a top-1M list never sits in memory as text)."""
    with open_text(path) as fh:
        try:
            yield from targets_from_lines(fh, shard=shard, limit=limit)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot read input {path}: {exc}") from None
