"""The DNS TXT record sets of MTA-STS (``_mta-sts.<d>``) and TLSRPT (``_smtp._tls.<d>``).

Theory of operation
-------------------
Both records are the same tag-value shape (RFC 8461 §3.1, RFC 8460 §3)::

    record      = version 1*(field-delim field) [field-delim]
    field-delim = *WSP ";" *WSP
    field       = <the required field> / extension
    extension   = ext-name "=" ext-value
    ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)

so the mechanics live here once and the two public parsers differ only in the
version token and the one required field (``id=`` or ``rua=``).

1. **Join.** A TXT record is one or more character-strings; they are
   concatenated with nothing in between (dnspython keeps them as a tuple of
   bytes). Bytes are read one octet per character (latin-1), so every octet
   survives and a non-ASCII octet is simply a character the grammar rejects:
   bad bytes give a ``syntax`` error value, never a decode traceback.
2. **Select.** A record is a candidate when it begins with the version token
   followed by ``*WSP ";"`` (README decision 1; RFC 8461 erratum 6285, same
   text in RFC 8460). Everything else is discarded and counted. Zero
   candidates is ``no_record``, more than one is ``multiple_records``: both
   RFCs say a sender then has no policy / no reporting address, whatever the
   candidates contain (RFC 8461 §3.1, RFC 8460 §3).
3. **Tokenise.** ``;`` cannot occur inside any field (ext-value excludes it,
   and a raw ``;`` inside a ``rua`` URI is a field delimiter), so the rest of
   the record is split on ``;``. WSP may only sit next to a ``;`` (or, inside
   ``rua``, next to a ``,``): WSP after the last field with no ``;`` after it,
   an empty field (``;;``), a field without ``=`` or with a bad name is
   ``syntax``.
4. **Fields.** Names and values are case-sensitive (``%s`` in the ABNF,
   RFC 7405), so ``ID=`` is an extension, not the id. The first ``id`` wins
   and later copies are not validated (README decision 3, from RFC 8461 §3.2's
   last paragraph); the ``rua`` lists of repeated ``rua`` fields are combined.
   Extensions keep their first value, and every copy must match the grammar.
5. **Errors**, most fundamental first: ``syntax`` (the record does not match
   the ABNF, or holds a non-ASCII or control character: "MTA-STS TXT records
   MUST be US-ASCII") > ``invalid_id`` / ``invalid_rua`` > ``missing_id`` /
   ``missing_rua``.

Every step is a split, a set test or an anchored regex over one character
class, so parsing is linear in the input; records past ``MAX_RECORD_OCTETS``
are refused without being joined.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Union

from survey.vocabulary import TxtStatus

__all__ = [
    "MAX_RECORD_OCTETS",
    "NO_RECORD",
    "MULTIPLE_RECORDS",
    "SYNTAX",
    "MISSING_ID",
    "INVALID_ID",
    "MISSING_RUA",
    "INVALID_RUA",
    "SUPPORTED_RUA_SCHEMES",
    "StsRecord",
    "TlsrptRecord",
    "TxtInputError",
    "TxtStatus",
    "is_uri",
    "parse_mta_sts_txt",
    "parse_tlsrpt_txt",
    "record_text",
    "txt_status",
]

# A TXT RDATA is at most 65535 octets (RFC 1035 §3.2.1: RDLENGTH is 16 bits), and
# its character-strings carry a length octet each, so no real record is longer.
MAX_RECORD_OCTETS = 65535

# Error values (the vectors README vocabulary).
NO_RECORD = "no_record"
MULTIPLE_RECORDS = "multiple_records"
SYNTAX = "syntax"
MISSING_ID = "missing_id"
INVALID_ID = "invalid_id"
MISSING_RUA = "missing_rua"
INVALID_RUA = "invalid_rua"

# RFC 8460 §3: "supported schemes" for rua are mailto and https.
SUPPORTED_RUA_SCHEMES = frozenset({"mailto", "https"})


# One TXT record: already joined, or its character-strings in order.
Chunk = Union[bytes, bytearray, memoryview, str]
RecordInput = Union[Chunk, Sequence[Chunk]]


class TxtInputError(TypeError):
    """The caller passed something that is not a TXT RRset (our bug, not the peer's)."""


@dataclass(frozen=True)
class StsRecord:
    """The MTA-STS TXT RRset at ``_mta-sts.<domain>`` as a sender reads it (RFC 8461 §3.1)."""

    valid: bool
    id: str | None
    extensions: dict[str, str] = field(default_factory=dict)  # first value wins; read-only
    discarded: int = 0  # records that did not begin with "v=STSv1" *WSP ";"
    error: str | None = None
    record: str | None = None  # the one candidate record, as text (see record_text)
    detail: str | None = None  # why, for humans; never echoes the record's bytes


@dataclass(frozen=True)
class TlsrptRecord:
    """The TLSRPT TXT RRset at ``_smtp._tls.<domain>`` (RFC 8460 §3)."""

    valid: bool
    rua: tuple[str, ...] = ()  # every URI of every rua field, in order, as written
    rua_supported: tuple[str, ...] = ()  # those with a scheme a reporter can use
    extensions: dict[str, str] = field(default_factory=dict)
    discarded: int = 0
    error: str | None = None
    record: str | None = None
    detail: str | None = None


def txt_status(result: StsRecord | TlsrptRecord) -> TxtStatus:
    """Map a parse result onto the dataset's ``*_txt_status`` vocabulary (docs/schema.md).

    ``dns_error`` is not decided here: only the I/O layer knows the lookup failed.
    """
    if result.valid:
        return TxtStatus.VALID
    if result.error == NO_RECORD:
        return TxtStatus.ABSENT
    if result.error == MULTIPLE_RECORDS:
        return TxtStatus.MULTIPLE
    return TxtStatus.INVALID


# --------------------------------------------------------------------------- joining


def _chunks(record: RecordInput) -> list[Chunk]:
    if isinstance(record, (bytes, bytearray, memoryview, str)):
        return [record]
    if isinstance(record, (list, tuple)):
        for chunk in record:
            if not isinstance(chunk, (bytes, bytearray, memoryview, str)):
                raise TxtInputError("TXT character-string must be bytes or str, "
                                    f"not {type(chunk).__name__}")
        return list(record)
    raise TxtInputError("TXT record must be bytes, str or a list of them, "
                        f"not {type(record).__name__}")


def _as_text(chunk: Chunk) -> str:
    # One character per octet: lossless, and anything >= 0x80 fails the ASCII grammar.
    return chunk if isinstance(chunk, str) else bytes(chunk).decode("latin-1")


def _join(record: RecordInput, limit: int = MAX_RECORD_OCTETS) -> tuple[str, bool]:
    """The record's text (joined with no separator) and whether it was over ``limit``.

    An oversized record is not joined: only enough of its start to test the version.
    """
    chunks = _chunks(record)
    if sum(len(c) for c in chunks) <= limit:
        return "".join(_as_text(c) for c in chunks), False
    head: list[str] = []
    size = 0
    for chunk in chunks:
        head.append(_as_text(chunk[:64]))
        size += len(head[-1])
        if size >= 64:
            break
    return "".join(head)[:64], True


def record_text(record: RecordInput) -> str:
    """One TXT record as text for storage: strings joined with no separator, UTF-8
    where valid and ``\\xNN`` escapes for other octets (so nothing is silently lost,
    and the result always encodes, lone surrogates in text input included)."""
    chunks = _chunks(record)
    raw = b"".join(c.encode("utf-8", "surrogatepass") if isinstance(c, str) else bytes(c)
                   for c in chunks)
    return raw.decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- grammar

_WSP = " \t"
# Characters a record may hold at all: WSP and visible US-ASCII (RFC 8461 §3.1
# "MTA-STS TXT records MUST be US-ASCII"; the RFC 8460 §3 ABNF is ASCII too).
_RECORD_CHARS = re.compile(r"[\t\x20-\x7e]*")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")


class _Invalid(Exception):
    """Internal: the candidate record is invalid with ``error``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(error, detail)
        self.error = error
        self.detail = detail


def _candidates(
    records: Iterable[RecordInput], version: str
) -> tuple[list[tuple[str, bool, RecordInput]], int]:
    """Split an RRset into candidates (text, oversized, original) and a discard count."""
    prefix = re.compile(re.escape(version) + r"[ \t]*;")
    if isinstance(records, (bytes, bytearray, memoryview, str)):
        raise TxtInputError("an RRset is a list of records, not a single record")
    try:
        items = list(records)
    except TypeError:
        raise TxtInputError(
            f"an RRset is a list of records, not {type(records).__name__}") from None
    found: list[tuple[str, bool, RecordInput]] = []
    discarded = 0
    for record in items:
        text, oversized = _join(record)
        if prefix.match(text):
            found.append((text, oversized, record))
        else:
            discarded += 1
    return found, discarded


def _fields(text: str, version: str, list_fields: frozenset[str]) -> list[tuple[str, str]]:
    """The (name, value) fields of a candidate record, in order, or raise _Invalid(syntax).

    ``list_fields`` names fields whose value is a comma list that may hold WSP
    next to its commas; their values are returned with that WSP intact.
    """
    if _RECORD_CHARS.fullmatch(text) is None:
        bad = next(i for i, ch in enumerate(text) if not (ch == "\t" or " " <= ch <= "~"))
        raise _Invalid(SYNTAX, f"non-ASCII or control character at offset {bad}")
    segments = text[len(version):].split(";")
    # segments[0] is the WSP between the version and the first ";" (the candidate test
    # guaranteed it). Every segment but the last is followed by ";", so its WSP on both
    # sides belongs to delimiters; the last one's trailing WSP has no ";" to belong to.
    fields: list[tuple[str, str]] = []
    last = len(segments) - 1
    for index in range(1, len(segments)):
        segment = segments[index]
        if index == last:
            body = segment.lstrip(_WSP)
            if not body:
                break  # the optional trailing field-delim
            trimmed = body.rstrip(_WSP)
            list_comma = trimmed.endswith(",") and trimmed.partition("=")[0] in list_fields
            if trimmed != body and not list_comma:
                # (WSP after a list's ',' belongs to the list: "rua=a , " lacks a URI.)
                raise _Invalid(SYNTAX, f"whitespace after field {index} without a ';'")
        else:
            body = segment.strip(_WSP)
            if not body:
                raise _Invalid(SYNTAX, f"empty field {index} (';;')")
        name, equals, value = body.partition("=")
        if not equals:
            raise _Invalid(SYNTAX, f"field {index} has no '='")
        if _EXT_NAME.fullmatch(name) is None:
            raise _Invalid(SYNTAX, f"field {index} has an invalid name")
        if name not in list_fields and any(ch in _WSP for ch in value):
            raise _Invalid(SYNTAX, f"whitespace inside field {index}")
        fields.append((name, value))
    return fields


def _check_extension(index: int, value: str) -> None:
    if _EXT_VALUE.fullmatch(value) is None:
        raise _Invalid(SYNTAX, f"field {index}: extension value outside %x21-3A / %x3C / %x3E-7E")


# --------------------------------------------------------------------------- URIs (RFC 3986)

_ALPHA_DIGIT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNRESERVED = frozenset(_ALPHA_DIGIT + "-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PCHAR = _UNRESERVED | _SUB_DELIMS | frozenset(":@%")  # '%' checked as pct-encoded below
_PATH = _PCHAR | frozenset("/")
_QUERY = _PCHAR | frozenset("/?")  # fragment has the same set
_USERINFO = _UNRESERVED | _SUB_DELIMS | frozenset(":%")
_REG_NAME = _UNRESERVED | _SUB_DELIMS | frozenset("%")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_IPV_FUTURE = re.compile(r"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")


def _only(text: str, allowed: frozenset[str]) -> bool:
    return all(ch in allowed for ch in text)


def _is_host(host: str) -> bool:
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        literal = host[1:-1]
        if literal[:1] in ("v", "V"):
            return _IPV_FUTURE.fullmatch(literal) is not None
        if not literal or "%" in literal or len(literal) > 45:  # no zone ids in RFC 3986
            return False
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
        return True
    return _only(host, _REG_NAME)  # IPv4address is a subset of reg-name


def is_uri(text: str) -> bool:
    """Whether ``text`` is an absolute URI per RFC 3986 §3 (``URI``, not a reference)."""
    if not text or _BAD_PERCENT.search(text):
        return False
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME.fullmatch(scheme) is None:
        return False
    rest, hash_, fragment = rest.partition("#")
    if hash_ and not _only(fragment, _QUERY):
        return False
    hier, question, query = rest.partition("?")
    if question and not _only(query, _QUERY):
        return False
    if hier.startswith("//"):
        authority, slash, path = hier[2:].partition("/")
        if not _only(slash + path, _PATH):
            return False
        userinfo, at, hostport = authority.rpartition("@")
        if at and not _only(userinfo, _USERINFO):
            return False
        if hostport.startswith("["):
            host, bracket, port = hostport.partition("]")
            host += bracket
            if port and not port.startswith(":"):
                return False
            port = port[1:]
        else:
            host, _, port = hostport.partition(":")
        return _is_host(host) and port.isascii() and (port == "" or port.isdigit())
    # path-absolute / path-rootless / path-empty: pchars and slashes ("//" handled above)
    return _only(hier, _PATH)


def _the_record(found: list[tuple[str, bool, RecordInput]], version: str) -> tuple[str, str]:
    """The one record that begins with ``version`` (RFC 8461 §3.1, RFC 8460 §3): its text
    to parse and its ``record_text``; ``_Invalid`` when there is none, several, or it is
    longer than ``MAX_RECORD_OCTETS``."""
    if not found:
        raise _Invalid(NO_RECORD, f"no record begins with {version};")
    if len(found) > 1:
        raise _Invalid(MULTIPLE_RECORDS, f"{len(found)} records begin with {version};")
    text, oversized, original = found[0]
    if oversized:
        raise _Invalid(SYNTAX, f"record longer than {MAX_RECORD_OCTETS} octets")
    return text, record_text(original)


# --------------------------------------------------------------------------- MTA-STS


def parse_mta_sts_txt(records: Iterable[RecordInput]) -> StsRecord:
    """Evaluate the TXT RRset at ``_mta-sts.<domain>`` (RFC 8461 §3.1).

    Never raises for any bytes or text; raises TxtInputError only for values that
    are not records at all (say, an int).
    """
    version = "v=STSv1"
    found, discarded = _candidates(records, version)
    raw: str | None = None
    try:
        text, raw = _the_record(found, version)
        sts_id: str | None = None
        extensions: dict[str, str] = {}
        for index, (name, value) in enumerate(_fields(text, version, frozenset()), start=1):
            if name == "id":
                if sts_id is None:
                    sts_id = value  # validated below, after any syntax error elsewhere
                # later copies: ignored and not validated (RFC 8461 §3.2, decision 3)
            else:
                _check_extension(index, value)
                extensions.setdefault(name, value)
        if sts_id is None:
            raise _Invalid(MISSING_ID, "no id= field")
        if _STS_ID.fullmatch(sts_id) is None:
            raise _Invalid(INVALID_ID, "id is not 1*32(ALPHA / DIGIT)")
    except _Invalid as invalid:
        return StsRecord(False, None, {}, discarded, invalid.error, raw, invalid.detail)
    return StsRecord(True, sts_id, extensions, discarded, None, raw)


# --------------------------------------------------------------------------- TLSRPT


def _split_rua(index: int, value: str) -> list[str]:
    """Split ``tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)`` (RFC 8460 §3), or raise _Invalid(syntax).

    Only WSP next to a comma is allowed: in "mailto:a b@x" the URI is "mailto:a",
    followed by text that is not a field delimiter, so the record does not parse.
    """
    parts = value.split(",")
    uris: list[str] = []
    for position, part in enumerate(parts):
        if position > 0:
            part = part.lstrip(_WSP)
        if position < len(parts) - 1:
            part = part.rstrip(_WSP)
        if any(ch in _WSP for ch in part):
            raise _Invalid(SYNTAX, f"field {index}: whitespace inside a rua URI")
        uris.append(part)
    return uris


def _check_rua(index: int, uris: list[str]) -> None:
    for position, uri in enumerate(uris, start=1):
        if not uri:
            raise _Invalid(INVALID_RUA, f"field {index}: rua URI {position} is empty")
        if "!" in uri:
            raise _Invalid(INVALID_RUA,
                           f"field {index}: rua URI {position} has a raw '!' (MUST be %21)")
        if not is_uri(uri):
            raise _Invalid(INVALID_RUA, f"field {index}: rua URI {position} is not an RFC 3986 URI")


def _supported(uri: str) -> bool:
    return uri.partition(":")[0].lower() in SUPPORTED_RUA_SCHEMES  # schemes are case-insensitive


def parse_tlsrpt_txt(records: Iterable[RecordInput]) -> TlsrptRecord:
    """Evaluate the TXT RRset at ``_smtp._tls.<domain>`` (RFC 8460 §3).

    Never raises for any bytes or text; raises TxtInputError only for values that
    are not records at all.
    """
    version = "v=TLSRPTv1"
    found, discarded = _candidates(records, version)
    raw: str | None = None
    try:
        text, raw = _the_record(found, version)
        fields = _fields(text, version, frozenset({"rua"}))
        # Grammar first (every field), then the rua contents: syntax > invalid_rua.
        rua_fields: list[tuple[int, list[str]]] = []
        extensions: dict[str, str] = {}
        for index, (name, value) in enumerate(fields, start=1):
            if name == "rua":
                rua_fields.append((index, _split_rua(index, value)))
            else:
                _check_extension(index, value)
                extensions.setdefault(name, value)
        rua: list[str] = []
        for index, uris in rua_fields:
            _check_rua(index, uris)
            rua.extend(uris)  # a repeated rua: the URIs are combined (decision 3)
        if not rua_fields:
            raise _Invalid(MISSING_RUA, "no rua= field")
    except _Invalid as invalid:
        return TlsrptRecord(False, discarded=discarded, error=invalid.error, record=raw,
                            detail=invalid.detail)
    return TlsrptRecord(True, tuple(rua), tuple(u for u in rua if _supported(u)), extensions,
                        discarded, None, raw)
