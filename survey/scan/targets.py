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

import codecs
import gzip
import hashlib
import io
import ipaddress
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

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


PEEK = 64 * 1024          # bytes checked up front for binary or non-UTF-8 content
BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
        b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def check_readable(path: Path | str) -> Path:
    """A list file that can be read as one: InputError saying what it is otherwise."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"cannot read input {_show(path)}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read input {_show(path)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"cannot read input {_show(path)}: it is a directory")
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot read input {_show(path)}: not a regular file (a FIFO, "
                         "socket or device); save the list to a file first")
    return path


def _show(path: Path) -> str:
    """A path for a message, whatever bytes its name holds."""
    return os.fsdecode(bytes(path)).encode("utf-8", "backslashreplace").decode("utf-8") \
        if isinstance(path, Path) else str(path)


class Lines:
    """The lines of a list (gunzipped when gzip), each capped at MAX_LINE as it is read.

    The first PEEK bytes are checked: NUL bytes (a binary file, or UTF-16 without a
    BOM), a UTF-16/32 byte order mark, or bytes that are not UTF-8 refuse the file with
    InputError. Beyond them an undecodable byte becomes U+FFFD and its name an
    ``invalid_input`` row. A UTF-8 BOM is skipped.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = check_readable(path)
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot read input {_show(self.path)}: "
                             f"{exc.strerror or exc}") from None
        magic = raw.peek(2)[:2]
        self.stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
        self.raw = raw
        try:
            head = self._read(PEEK)
        except (OSError, EOFError) as exc:
            self.close()
            raise InputError(f"cannot read input {_show(self.path)}: {exc}") from None
        try:
            self._check(head)
        except InputError:
            self.close()
            raise
        self.head = head[3:] if head.startswith(b"\xef\xbb\xbf") else head

    def _read(self, size: int) -> bytes:
        return self.stream.read(size)

    def _check(self, head: bytes) -> None:
        name = _show(self.path)
        for bom, encoding in BOMS.items():
            if head.startswith(bom):
                raise InputError(f"{name} is not a text list of domain names in UTF-8: it is "
                                 f"{encoding} text; save it as UTF-8")
        if b"\x00" in head:
            raise InputError(f"{name} is not a text list of domain names (it holds NUL "
                             "bytes: a binary file, or UTF-16 text)")
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError as exc:
            line = head[:exc.start].count(b"\n") + 1
            raise InputError(f"{name} is not a text list of domain names in UTF-8 (line "
                             f"{line} holds bytes that are not UTF-8); save it as UTF-8"
                             ) from None

    def __iter__(self) -> Iterator[str]:
        buffer = io.BufferedReader(_Chain(self.head, self.stream), buffer_size=PEEK)
        while True:
            line = buffer.readline(MAX_LINE + 1)
            if not line:
                return
            if not line.endswith(b"\n"):
                while True:                      # skip the rest of an overlong line
                    rest = buffer.readline(PEEK)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line[:MAX_LINE].decode("utf-8", "replace")

    def close(self) -> None:
        self.stream.close()
        self.raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Chain(io.RawIOBase):
    """Bytes already read, then the rest of a stream (for one BufferedReader over both)."""

    def __init__(self, head: bytes, stream) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if self.head:
            n = min(len(target), len(self.head))
            target[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(target))
        target[:len(data)] = data
        return len(data)


def open_text(path: Path | str) -> Lines:
    """Open a list, transparently gunzipping it (see ``Lines``)."""
    return Lines(path)


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
