"""DNS messages on the wire (RFC 1035 §4), just what a scan asks and reads: sans-IO.

Theory of operation
-------------------
A scan asks five kinds of question (MX, A, AAAA, TXT, and follows CNAME) a
few million times, and dnspython builds a full object model for each message
(names, rdata classes, enums), which was most of a scan's CPU. This module
does the same job on bytes, with the standard library only:

* ``build_query(qid, name, rdtype)`` — a recursive query (RD set) with an EDNS0
  OPT record (RFC 6891) advertising a fragmentation-safe 1232-byte buffer.
  Names are text in presentation form (``\\.`` and ``\\DDD`` escapes
  understood); a label over 63 octets or a name over 255 is ``DnsWireError``.
* ``parse_response(data, qid, qname, rdtype)`` — the header, the question
  (which must echo ours: id, QR, opcode, name case-insensitively, type, class
  IN — RFC 5452 §9.1), and the answer section. Authority and additional
  sections are not read (nothing in them changes a plain lookup's result),
  except with ``sections=True``: then the authority section is read too,
  for the validating stub (net/dnssec.py), which only needs to know whether
  the response carries DNSSEC records before it pays for dnspython's model.
* ``Response.answer(qname, rdtype)`` — follows the CNAME chain in the answer
  section from the question name (at most ``MAX_CNAME_HOPS`` hops, loops end
  it) and returns the canonical name and the records of the asked type
  there, as small immutable values: ``A(address)``, ``AAAA(address)`` (RFC
  5952 text), ``MX(preference, exchange)``, ``TXT(strings)`` (a tuple of
  bytes: join them with ``b""``) and ``CNAME(target)``.

Names read from the wire are lower-case text without the trailing dot (the
root is ``""``); octets outside letters, digits, ``-``, ``_`` and ``*`` are
escaped the way dnspython does (``\\.``, ``\\DDD``), so a hostile label can
neither smuggle a dot nor a control character into a name.

Everything a server sends is hostile: compression pointers must point
backwards (which also rules out loops), names are capped at 255 octets,
every length is checked against the message, and any inconsistency raises
``DnsWireError`` — the only exception this module raises on bad input.
Extended RCODEs (RFC 6891 §6.1.3) live in the OPT record of the additional
section, which is not read; only a server answering our EDNS version 0
with BADVERS would need them.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

MAX_NAME = 255             # octets on the wire, RFC 1035 §2.3.4
MAX_LABEL = 63
MAX_CNAME_HOPS = 16
MAX_MESSAGE = 65535
EDNS_PAYLOAD = 1232        # the DNS flag day 2020 figure: no IP fragmentation

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
         "AAAA": 28, "SRV": 33, "DS": 43, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50,
         "TLSA": 52, "CAA": 257}
CLASS_IN = 1
TYPE_OPT = 41

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN = 0, 1, 2, 3, 4, 5, 6

_HEADER = struct.Struct("!HHHHHH")
_U16 = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")     # type, class, ttl, rdlength
_FLAG_QR, _FLAG_TC, _FLAG_RD, _FLAG_CD = 0x8000, 0x0200, 0x0100, 0x0010
_FLAG_AD = 0x0020          # Authentic Data (RFC 4035 §3.2.3; in a query: RFC 6840 §5.7)
_DO = 0x8000               # in the OPT record's TTL field


class DnsWireError(ValueError):
    """A malformed name or message (the peer's fault, or an unusable name of ours)."""


class A(NamedTuple):
    address: str


class AAAA(NamedTuple):
    address: str


class MX(NamedTuple):
    preference: int
    exchange: str


class TXT(NamedTuple):
    strings: tuple[bytes, ...]


class CNAME(NamedTuple):
    target: str


def rdtype_code(rdtype: str | int) -> int:
    if isinstance(rdtype, int):
        if not 0 <= rdtype <= 0xFFFF:
            raise DnsWireError(f"bad type {rdtype}")
        return rdtype
    try:
        return TYPES[rdtype.upper()]
    except KeyError:
        raise DnsWireError(f"unknown type {rdtype!r}") from None


# -- names: text <-> wire -------------------------------------------------------------

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_*")
_ESCAPED = frozenset(b'"().;\\@$')
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def _label_text(label: bytes) -> str:
    label = label.translate(_LOWER)
    if _PLAIN.issuperset(label):
        return label.decode("ascii")
    out = []
    for octet in label:
        if octet in _PLAIN:
            out.append(chr(octet))
        elif octet in _ESCAPED:
            out.append("\\" + chr(octet))
        elif 0x20 < octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


def name_to_wire(name: str) -> bytes:
    """Presentation text (absolute or not, ``\\`` escapes allowed) -> wire labels."""
    text = name[:-1] if name.endswith(".") and not name.endswith("\\.") else name
    if not text or text == ".":
        return b"\x00"
    if "\\" not in text:
        try:
            raw = [label.encode("ascii") for label in text.split(".")]
        except UnicodeEncodeError:
            raise DnsWireError(f"not an ASCII name: {name!r}") from None
    else:
        raw = _unescape_labels(text)
    out = bytearray()
    for label in raw:
        if not label:
            raise DnsWireError(f"empty label in {name!r}")
        if len(label) > MAX_LABEL:
            raise DnsWireError(f"label longer than {MAX_LABEL} octets in {name!r}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsWireError(f"name longer than {MAX_NAME} octets: {name[:80]!r}...")
    return bytes(out)


def _unescape_labels(text: str) -> list[bytes]:
    labels, label, i = [], bytearray(), 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3:
                value = int(text[i + 1:i + 4])
                if value > 255:
                    raise DnsWireError(f"bad escape in {text!r}")
                label.append(value)
                i += 4
                continue
            if i + 1 >= len(text):
                raise DnsWireError(f"dangling escape in {text!r}")
            ch = text[i + 1]
            i += 1
        elif ch == ".":
            labels.append(bytes(label))
            label = bytearray()
            i += 1
            continue
        if ord(ch) > 0x7F:
            raise DnsWireError(f"not an ASCII name: {text!r}")
        label.append(ord(ch))
        i += 1
    labels.append(bytes(label))
    return labels


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (following compression) and the offset just after it."""
    labels: list[str] = []
    end = -1                  # where the name ends in the original position
    length = 1                # wire octets, the final root label included
    limit = offset            # a pointer must point before the name it appears in
    size = len(data)
    while True:
        if offset >= size:
            raise DnsWireError("name runs past the message")
        n = data[offset]
        if n == 0:
            if end < 0:
                end = offset + 1
            return ".".join(labels), end
        if n & 0xC0 == 0xC0:
            if offset + 1 >= size:
                raise DnsWireError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | data[offset + 1]
            if target >= limit:
                raise DnsWireError("compression pointer does not point backwards")
            if end < 0:
                end = offset + 2
            offset = limit = target
            continue
        if n & 0xC0:
            raise DnsWireError("unknown label type")
        length += n + 1
        if length > MAX_NAME:
            raise DnsWireError("name longer than 255 octets")
        if offset + 1 + n > size:
            raise DnsWireError("label runs past the message")
        labels.append(_label_text(data[offset + 1:offset + 1 + n]))
        offset += 1 + n


# -- messages -------------------------------------------------------------------------

def build_query(qid: int, name: str, rdtype: str | int, *, edns: bool = True,
                payload: int = EDNS_PAYLOAD, dnssec: bool = False, ad: bool = False,
                cd: bool = False) -> bytes:
    """One recursive query for ``name``/``rdtype``, class IN, with EDNS0 unless told not to.

    ``dnssec``: set DO in the OPT record (RFC 3225: send DNSSEC records) and CD in the
    header (RFC 4035 §3.2.2: hand over data a validating resolver finds bogus).
    ``ad``: set AD (RFC 6840 §5.7: the client understands AD in the answer, without asking
    for the DNSSEC records); ``cd``: set CD alone.
    """
    if not 0 <= qid <= 0xFFFF:
        raise DnsWireError(f"bad query id {qid}")
    if dnssec and not edns:
        raise DnsWireError("DNSSEC records need EDNS (the DO bit)")
    flags = _FLAG_RD | (_FLAG_CD if dnssec or cd else 0) | (_FLAG_AD if ad else 0)
    header = _HEADER.pack(qid, flags, 1, 0, 0, 1 if edns else 0)
    question = name_to_wire(name) + struct.pack("!HH", rdtype_code(rdtype), CLASS_IN)
    if not edns:
        return header + question
    # OPT RR (RFC 6891 §6.1.2): root owner, type 41, class = payload size, ttl = extended
    # rcode 0, version 0, the DO bit (RFC 3225 §3) when asked; no options.
    return header + question + b"\x00" + struct.pack("!HHIH", TYPE_OPT, payload,
                                                     _DO if dnssec else 0, 0)


RData = A | AAAA | MX | TXT | CNAME | bytes   # raw bytes for the other types


class Record(NamedTuple):
    owner: str
    rtype: int
    ttl: int
    rdata: RData


class Response(NamedTuple):
    qid: int
    rcode: int
    truncated: bool
    authoritative: bool
    qname: str
    qtype: int
    records: tuple[Record, ...]   # the answer section
    authority: tuple[Record, ...] = ()   # read only with sections=True
    authentic: bool = False       # the AD bit (RFC 4035 §3.2.3)

    def answer(self, qname: str, rdtype: str | int) -> tuple[str, tuple]:
        """(canonical name, rdata of ``rdtype`` there) following CNAMEs from ``qname``."""
        code = rdtype_code(rdtype)
        current = qname.rstrip(".").lower()
        for _ in range(MAX_CNAME_HOPS + 1):
            found = tuple(r.rdata for r in self.records
                          if r.rtype == code and r.owner == current)
            if found or code == TYPES["CNAME"]:
                return current, found
            alias = next((r.rdata.target for r in self.records
                          if isinstance(r.rdata, CNAME) and r.owner == current), None)
            if alias is None:
                return current, ()
            current = alias
        return current, ()


def response_id(data: bytes) -> int | None:
    """The id of a datagram, or None if it is too short to be a DNS message."""
    return _U16.unpack_from(data)[0] if len(data) >= 12 else None


def parse_response(data: bytes, qid: int | None = None, qname: str | None = None,
                   rdtype: str | int | None = None, *, sections: bool = False) -> Response:
    """A response's header, question and answer section; DnsWireError if malformed.

    With ``qid``/``qname``/``rdtype`` given, a response that does not echo that
    question is also a DnsWireError (a stray or forged datagram).
    """
    if len(data) > MAX_MESSAGE:
        raise DnsWireError("message longer than 65535 octets")
    if len(data) < 12:
        raise DnsWireError("shorter than a DNS header")
    rid, flags, qdcount, ancount, nscount, _arcount = _HEADER.unpack_from(data)
    if not flags & _FLAG_QR:
        raise DnsWireError("not a response (QR clear)")
    if (flags >> 11) & 0xF:
        raise DnsWireError("not a standard query response (opcode)")
    if qid is not None and rid != qid:
        raise DnsWireError("response id does not match the query")
    truncated = bool(flags & _FLAG_TC)
    rcode = flags & 0xF
    if qdcount != 1:
        # An error answer may omit the question (dnspython accepts these too).
        if qdcount == 0 and rcode in (FORMERR, SERVFAIL, NOTIMP, REFUSED):
            return Response(rid, rcode, truncated, bool(flags & 0x0400), "", 0, ())
        raise DnsWireError(f"{qdcount} questions in a response")
    name, offset = read_name(data, 12)
    if offset + 4 > len(data):
        raise DnsWireError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    if qname is not None and (name != qname.rstrip(".").lower()
                              and name != _canonical_text(qname)):
        raise DnsWireError("response question does not match the query")
    if rdtype is not None and (qtype != rdtype_code(rdtype) or qclass != CLASS_IN):
        raise DnsWireError("response question type does not match the query")
    records = []
    authority = []
    if not truncated:      # a truncated answer section is retried over TCP, not read
        for _ in range(ancount):
            record, offset = _read_record(data, offset)
            if record is not None:
                records.append(record)
        for _ in range(nscount if sections else 0):
            record, offset = _read_record(data, offset)
            if record is not None:
                authority.append(record)
    return Response(rid, rcode, truncated, bool(flags & 0x0400), name, qtype, tuple(records),
                    tuple(authority), bool(flags & _FLAG_AD))


def _canonical_text(name: str) -> str:
    """A query name's text as read_name would render it (escapes normalised)."""
    wire = name_to_wire(name)
    return read_name(wire, 0)[0]


def _read_record(data: bytes, offset: int) -> tuple[Record | None, int]:
    owner, offset = read_name(data, offset)
    if offset + 10 > len(data):
        raise DnsWireError("truncated resource record")
    rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
    start = offset + 10
    end = start + rdlength
    if end > len(data):
        raise DnsWireError("rdata runs past the message")
    if rclass != CLASS_IN:
        return None, end
    if rtype == 1:
        if rdlength != 4:
            raise DnsWireError("A rdata is not 4 octets")
        rdata: RData = A(".".join(map(str, data[start:end])))
    elif rtype == 28:
        if rdlength != 16:
            raise DnsWireError("AAAA rdata is not 16 octets")
        rdata = AAAA(ipaddress.IPv6Address(data[start:end]).compressed)
    elif rtype == 15:
        if rdlength < 3:
            raise DnsWireError("MX rdata too short")
        exchange, after = read_name(data, start + 2)
        if after != end:
            raise DnsWireError("MX rdata length mismatch")
        rdata = MX(_U16.unpack_from(data, start)[0], exchange)
    elif rtype == 5:
        target, after = read_name(data, start)
        if after != end:
            raise DnsWireError("CNAME rdata length mismatch")
        rdata = CNAME(target)
    elif rtype == 16:
        strings, i = [], start
        while i < end:
            n = data[i]
            if i + 1 + n > end:
                raise DnsWireError("TXT string runs past its rdata")
            strings.append(data[i + 1:i + 1 + n])
            i += 1 + n
        if not strings:
            raise DnsWireError("empty TXT rdata")
        rdata = TXT(tuple(strings))
    else:
        rdata = data[start:end]
    return Record(owner, rtype, ttl, rdata), end
