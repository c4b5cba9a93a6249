"""DNSSEC judgements (RFC 4033-4035, RFC 5155): signatures, keys and denial proofs, sans-IO.

Theory of operation
-------------------
A validating stub (survey/net/dnssec.py) asks a recursive resolver with the
DO and CD bits set, so it gets the records, their RRSIGs and the NSEC/NSEC3
proofs even when the data is bogus, and decides itself. This module holds
what it decides with, as pure functions on dnspython objects; the
signatures themselves are checked by ``dns.dnssec`` (with cryptography):
no cryptography is written here.

* ``Anchors`` — trust anchors: DS or DNSKEY records in zone-file form, the
  IANA root KSKs by default (``survey/data/root-anchors.zone``, with its
  source).
* ``check_rrset`` — does an RRset carry a valid RRSIG by the zone's keys? The
  reason when not: ``no_rrsig``, ``signature_expired``,
  ``signature_not_yet_valid``, ``bad_signature``. Signature dates are checked
  with Unbound's clock-skew allowance (``Skew``: a tenth of the validity
  period, between 1 and 24 hours by default).
* ``check_dnskeys`` — is a zone's DNSKEY RRset anchored by the DS set (or the
  trust anchor) and self-signed by a key that matches (``no_matching_dnskey``
  otherwise)? Returns the keys to trust for the zone.
* ``proves_nodata`` / ``proves_nxdomain`` / ``ds_absence`` — what the NSEC
  (RFC 4035 §5.4) or NSEC3 (RFC 5155 §8) records of a negative answer prove.
  ``ds_absence`` tells an unsigned delegation (NS and no DS at the name, or
  an NSEC3 opt-out span: the zone below is ``insecure``) from a name that is
  no zone cut at all (keep walking down) and from nothing proven.

Statuses follow RFC 4035 §4.3: ``secure`` (a chain of signatures from a
trust anchor), ``insecure`` (a signed proof that the chain ends at an
unsigned delegation), ``bogus`` (the chain should be there and is broken:
the reason says how) and ``indeterminate`` (no trust anchor covers the
name, the lookups the chain needs failed, or the resolver strips DNSSEC
records — ``no_dnssec_records``: the answer for the anchor's own DNSKEY had
no signature, which no signed zone sends).

Readings taken: zones whose DS records all use algorithms or digests this
validator cannot check are ``insecure`` (RFC 4035 §5.2, RFC 6840 §5.2);
NSEC3 with more than 150 iterations is treated as an unsigned span
(``insecure``, RFC 9276 §3.2, as Unbound does); names in canonical order are
compared by dnspython (RFC 4034 §6.1).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TypeVar

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.RRSIG import RRSIG

from survey.vocabulary import DnssecReason, DnssecStatus

NSEC3_MAX_ITERATIONS = 150       # RFC 9276 §3.2: above this, validators may treat as insecure
ZONE_KEY, SEP = 0x0100, 0x0001   # DNSKEY flags (RFC 4034 §2.1.1)
_POLICY = dns.dnssec.allow_all_policy   # what a zone signs with is measured, not judged here


# The vocabularies are the dataset's (survey/vocabulary.py); these are their names here.
Status = DnssecStatus
Reason = DnssecReason


@dataclass(frozen=True, slots=True)
class Judgement:
    status: Status
    reason: Reason | None = None

    @property
    def secure(self) -> bool:
        return self.status is Status.SECURE


SECURE = Judgement(Status.SECURE)
INSECURE = Judgement(Status.INSECURE)
_RANK = {Status.SECURE: 0, Status.INSECURE: 1, Status.INDETERMINATE: 2, Status.BOGUS: 3}


def worst(judgements: Iterable[Judgement]) -> Judgement:
    """Several lookups' statuses as one: bogus over indeterminate over insecure over secure."""
    out = SECURE
    for j in judgements:
        if _RANK[j.status] > _RANK[out.status]:
            out = j
    return out


def bogus(reason: Reason) -> Judgement:
    return Judgement(Status.BOGUS, reason)


def indeterminate(reason: Reason) -> Judgement:
    return Judgement(Status.INDETERMINATE, reason)


# -- trust anchors ----------------------------------------------------------------------

@dataclass
class Anchors:
    """Trust anchors by zone name: DS records and/or DNSKEY records."""

    ds: dict[dns.name.Name, list[DS]] = field(default_factory=dict)
    keys: dict[dns.name.Name, list[DNSKEY]] = field(default_factory=dict)
    source: str = ""

    @property
    def zones(self) -> set[dns.name.Name]:
        return set(self.ds) | set(self.keys)

    def closest(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest anchored zone at or above ``name``."""
        best = None
        for zone in self.zones:
            if name.is_subdomain(zone) and (best is None or len(zone) > len(best)):
                best = zone
        return best

    @classmethod
    def from_text(cls, text: str, source: str = "") -> Anchors:
        """DS and DNSKEY records in zone-file form (absolute owner names; ``;`` comments)."""
        anchors = cls(source=source)
        try:
            zone = dns.zone.from_text("$TTL 3600\n" + text, origin=dns.name.root,
                                      relativize=False, check_origin=False)
        except dns.exception.DNSException as exc:
            raise ValueError(f"trust anchors {source or ''}: {exc}") from None
        for name, rdataset in zone.iterate_rdatasets():
            if rdataset.rdtype == dns.rdatatype.DS:
                anchors.ds.setdefault(name, []).extend(rdataset)
            elif rdataset.rdtype == dns.rdatatype.DNSKEY:
                anchors.keys.setdefault(name, []).extend(rdataset)
            else:
                rtype = dns.rdatatype.to_text(rdataset.rdtype)
                raise ValueError(f"trust anchors {source}: {name} {rtype} is neither DS nor DNSKEY")
        if not anchors.zones:
            raise ValueError(f"trust anchors {source}: no DS or DNSKEY record")
        return anchors

    @classmethod
    def from_file(cls, path: str | Path) -> Anchors:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read trust anchors {path}: {exc.strerror}") from None
        return cls.from_text(text, source=str(path))

    @classmethod
    def iana(cls) -> Anchors:
        """The root zone's KSKs as IANA publishes them (package data, with its source)."""
        text = resources.files("survey").joinpath("data/root-anchors.zone").read_text("utf-8")
        return cls.from_text(text, source="IANA root-anchors.xml (survey/data/root-anchors.zone)")

    def to_text(self) -> str:
        lines = [f"{n} IN DS {ds.to_text()}" for n, dss in self.ds.items() for ds in dss]
        lines += [f"{n} IN DNSKEY {k.to_text()}" for n, ks in self.keys.items() for k in ks]
        return "\n".join(lines) + "\n"


# -- signatures -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Skew:
    """The clock-skew allowance of signature dates, as Unbound's ``val-sig-skew-min`` and
    ``val-sig-skew-max`` (validator/val_sigcrypt.c ``check_dates``): a tenth of the
    signature's validity period (expiration - inception), raised to ``minimum`` and capped
    at ``maximum`` seconds. A signature expired (or not yet valid) by no more than that is
    taken as valid; by more, it is bogus. The defaults are Unbound's (1 hour, 24 hours);
    ``Skew(0, 0)`` checks the dates exactly."""

    minimum: int = 3600
    maximum: int = 86400

    def allowance(self, sig: RRSIG) -> int:
        return min(max((sig.expiration - sig.inception) // 10, self.minimum), self.maximum)

    def date_problem(self, sig: RRSIG, now: float) -> Reason | None:
        """Why ``sig``'s dates fail at ``now`` (whole seconds, as Unbound), or None."""
        t = int(now)
        if sig.inception > sig.expiration:
            return Reason.BAD_SIGNATURE           # "signature inception after expiration"
        if t > sig.expiration and t - sig.expiration > self.allowance(sig):
            return Reason.SIGNATURE_EXPIRED
        if t < sig.inception and sig.inception - t > self.allowance(sig):
            return Reason.SIGNATURE_NOT_YET_VALID
        return None


DEFAULT_SKEW = Skew()


def check_rrset(rrset: dns.rrset.RRset, rrsigs: Sequence[RRSIG] | None, zone: dns.name.Name,
                keys: dns.rdataset.Rdataset | Sequence[DNSKEY], now: float,
                skew: Skew = DEFAULT_SKEW) -> Reason | None:
    """None when some RRSIG by ``zone`` over ``rrset`` verifies with ``keys`` and its dates
    hold at ``now`` within the ``skew`` allowance; else why not."""
    if not rrsigs:
        return Reason.NO_RRSIG
    keyset = _as_rdataset(keys)
    failures = []
    for sig in rrsigs:
        if sig.signer != zone or sig.type_covered != rrset.rdtype:
            failures.append(Reason.WRONG_SIGNER)
            continue
        problem = skew.date_problem(sig, now)
        if problem is not None:
            failures.append(problem)
            continue
        # within the allowance: dnspython checks the dates itself, so at a time inside them
        at = min(max(int(now), sig.inception), sig.expiration)
        try:
            dns.dnssec.validate_rrsig(rrset, sig, {zone: keyset}, now=at, policy=_POLICY)
            return None
        except (dns.dnssec.ValidationFailure, dns.dnssec.UnsupportedAlgorithm):
            failures.append(Reason.BAD_SIGNATURE)
    # The most telling failure: a time problem over a mere mismatch.
    for reason in (Reason.SIGNATURE_EXPIRED, Reason.SIGNATURE_NOT_YET_VALID,
                   Reason.BAD_SIGNATURE, Reason.WRONG_SIGNER):
        if reason in failures:
            return reason
    return Reason.BAD_SIGNATURE


def _as_rdataset(keys: dns.rdataset.Rdataset | Sequence[DNSKEY]) -> dns.rdataset.Rdataset:
    if isinstance(keys, dns.rdataset.Rdataset):
        return keys
    out = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    for k in keys:
        out.add(k, 0)
    return out


def ds_digest_supported(ds: DS) -> bool:
    return ds.digest_type in (1, 2, 4) and _algorithm_supported(ds.algorithm)


def _algorithm_supported(algorithm: int) -> bool:
    try:
        cls = dns.dnssec.get_algorithm_cls(algorithm)
    except dns.dnssec.UnsupportedAlgorithm:
        return False
    return cls is not None


def ds_matches(zone: dns.name.Name, key: DNSKEY, ds: DS) -> bool:
    if key.algorithm != ds.algorithm or dns.dnssec.key_id(key) != ds.key_tag:
        return False
    try:
        made = dns.dnssec.make_ds(zone, key, ds.digest_type, policy=_POLICY)
    except (dns.dnssec.UnsupportedAlgorithm, ValueError):
        return False
    return bool(made.digest == ds.digest)


def usable_ds(ds_set: Iterable[DS]) -> list[DS]:
    """The DS records this validator can check (RFC 4035 §5.2: none usable = unsigned)."""
    return [ds for ds in ds_set if ds_digest_supported(ds)]


def check_dnskeys(zone: dns.name.Name, dnskeys: dns.rrset.RRset, rrsigs: Sequence[RRSIG] | None,
                  now: float, *, ds: Sequence[DS] = (), anchor_keys: Sequence[DNSKEY] = (),
                  skew: Skew = DEFAULT_SKEW) -> tuple[Reason | None, list[DNSKEY]]:
    """(None, the zone's keys) when the DNSKEY RRset is anchored and self-signed; else (why, [])."""
    entry = [k for k in dnskeys if k.flags & ZONE_KEY
             and (any(ds_matches(zone, k, d) for d in ds) or k in anchor_keys)]
    if not entry:
        return Reason.NO_MATCHING_DNSKEY, []
    reason = check_rrset(dnskeys, rrsigs, zone, entry, now, skew)
    if reason is not None:
        return reason, []
    return None, [k for k in dnskeys if k.flags & ZONE_KEY]


# -- denial of existence ----------------------------------------------------------------

def type_bitmap(rdata: NSEC | NSEC3) -> set[int]:
    """The types an NSEC or NSEC3 record lists (RFC 4034 §4.1.2)."""
    types: set[int] = set()
    for window, bitmap in rdata.windows:
        for i, octet in enumerate(bitmap):
            for bit in range(8):
                if octet & (0x80 >> bit):
                    types.add(window * 256 + i * 8 + bit)
    return types


_Ordered = TypeVar("_Ordered", dns.name.Name, bytes)


def _covers(owner: _Ordered, nxt: _Ordered, target: _Ordered) -> bool:
    """owner < target < next in a circular order (the last record wraps to the first)."""
    if owner < nxt:
        return bool(owner < target < nxt)
    return bool(target > owner or target < nxt)


@dataclass(frozen=True)
class Nsec:
    owner: dns.name.Name
    next: dns.name.Name
    types: frozenset[int]

    def covers(self, name: dns.name.Name) -> bool:
        return _covers(self.owner, self.next, name)


@dataclass(frozen=True)
class Nsec3:
    zone: dns.name.Name
    hash: bytes                 # the owner's hash (decoded from its first label)
    next: bytes
    types: frozenset[int]
    opt_out: bool
    algorithm: int
    iterations: int
    salt: bytes

    def hash_of(self, name: dns.name.Name) -> bytes | None:
        try:
            text = dns.dnssec.nsec3_hash(name, self.salt, self.iterations, self.algorithm)
        except (ValueError, dns.dnssec.ValidationFailure):
            return None
        return base64.b32hexdecode(text.upper())

    def matches(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.zone) and self.hash_of(name) == self.hash

    def covers(self, name: dns.name.Name) -> bool:
        h = self.hash_of(name)
        return h is not None and name.is_subdomain(self.zone) and _covers(self.hash, self.next, h)


def denial_records(rrsets: Iterable[dns.rrset.RRset]) -> tuple[list[Nsec], list[Nsec3]]:
    nsecs, nsec3s = [], []
    for rrset in rrsets:
        if rrset.rdtype == dns.rdatatype.NSEC:
            for rd in rrset:
                nsecs.append(Nsec(rrset.name, rd.next, frozenset(type_bitmap(rd))))
        elif rrset.rdtype == dns.rdatatype.NSEC3:
            try:
                digest = base64.b32hexdecode(rrset.name[0].decode("ascii").upper())
            except (ValueError, UnicodeDecodeError):
                continue
            for rd in rrset:
                nsec3s.append(Nsec3(rrset.name.parent(), digest, rd.next,
                                    frozenset(type_bitmap(rd)), bool(rd.flags & 1),
                                    rd.algorithm, rd.iterations, rd.salt))
    return nsecs, nsec3s


def _closest_encloser_nsec(name: dns.name.Name, nsecs: Sequence[Nsec]) -> dns.name.Name | None:
    """RFC 4035 §5.4: the longest name shared by ``name`` and an NSEC that covers it."""
    best = None
    for n in nsecs:
        if not n.covers(name):
            continue
        for other in (n.owner, n.next):
            common = _common_ancestor(name, other)
            if best is None or len(common) > len(best):
                best = common
    return best


def _common_ancestor(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _, _, common = a.fullcompare(b)
    return dns.name.Name(a.labels[len(a.labels) - common:])


def _too_many_iterations(nsec3s: Sequence[Nsec3]) -> bool:
    return any(n.iterations > NSEC3_MAX_ITERATIONS for n in nsec3s)


def _wildcard(name: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"*",) + name.labels)


class Proof(StrEnum):
    """What a signed denial proves (the NSEC3 readings are RFC 5155 §8 as Unbound takes
    them, validator/val_nsec3.c)."""

    PROVEN = "proven"           # secure
    INSECURE = "insecure"       # an opt-out span (§9.2) or an unsigned delegation above
    UNPROVEN = "unproven"       # bogus


# -- NSEC3 (RFC 5155 §8) -------------------------------------------------------------------

def _nsec3_zone(name: dns.name.Name, nsec3s: Sequence[Nsec3]) -> list[Nsec3]:
    """The NSEC3 records of the deepest zone among them that encloses ``name``."""
    zones = [n.zone for n in nsec3s if name.is_subdomain(n.zone)]
    if not zones:
        return []
    zone = max(zones, key=len)
    return [n for n in nsec3s if n.zone == zone]


def _nsec3_match(name: dns.name.Name, nsec3s: Sequence[Nsec3]) -> Nsec3 | None:
    return next((n for n in nsec3s if n.matches(name)), None)


def _nsec3_cover(name: dns.name.Name, nsec3s: Sequence[Nsec3]) -> Nsec3 | None:
    return next((n for n in nsec3s if n.covers(name)), None)


def _next_closer(qname: dns.name.Name, encloser: dns.name.Name) -> dns.name.Name:
    return dns.name.Name(qname.labels[len(qname) - len(encloser) - 1:])


def nsec3_closest_encloser(qname: dns.name.Name, nsec3s: Sequence[Nsec3]
                           ) -> tuple[Proof, dns.name.Name | None, Nsec3 | None]:
    """RFC 5155 §8.3, for a name that must not exist: (PROVEN, the closest encloser, the
    NSEC3 covering the next closer name); INSECURE when the candidate encloser is a
    delegation without DS (an unsigned zone lies above the name); else UNPROVEN."""
    chain = _nsec3_zone(qname, nsec3s)
    if not chain:
        return Proof.UNPROVEN, None, None
    zone = chain[0].zone
    candidate = qname
    match = _nsec3_match(candidate, chain)
    while match is None and candidate != zone and len(candidate) > 1:
        candidate = candidate.parent()
        match = _nsec3_match(candidate, chain)
    if match is None or candidate == qname:
        return Proof.UNPROVEN, None, None
    if dns.rdatatype.NS in match.types and dns.rdatatype.SOA not in match.types:
        # the answer should have been a referral: to an unsigned zone, insecure
        proof = Proof.INSECURE if dns.rdatatype.DS not in match.types else Proof.UNPROVEN
        return proof, candidate, None
    if dns.rdatatype.DNAME in match.types:
        return Proof.UNPROVEN, None, None
    cover = _nsec3_cover(_next_closer(qname, candidate), chain)
    if cover is None:
        return Proof.UNPROVEN, None, None
    return Proof.PROVEN, candidate, cover


def nsec3_nxdomain(qname: dns.name.Name, nsec3s: Sequence[Nsec3]) -> Proof:
    """RFC 5155 §8.4: the closest encloser proven, the wildcard at it covered; an opt-out
    NSEC3 over the next closer name proves only that no signed name is there (§9.2)."""
    if _too_many_iterations(nsec3s):
        return Proof.INSECURE
    proof, encloser, cover = nsec3_closest_encloser(qname, nsec3s)
    if proof is not Proof.PROVEN or encloser is None or cover is None:
        return proof
    if _nsec3_cover(_wildcard(encloser), _nsec3_zone(qname, nsec3s)) is None:
        return Proof.UNPROVEN
    return Proof.INSECURE if cover.opt_out else Proof.PROVEN


def nsec3_nodata(qname: dns.name.Name, qtype: int, nsec3s: Sequence[Nsec3]) -> Proof:
    """RFC 5155 §8.5-8.7: an NSEC3 at the name without the type (nor a CNAME); a wildcard
    NODATA; or, with no NSEC3 at the name, an opt-out span over it (insecure)."""
    if _too_many_iterations(nsec3s):
        return Proof.INSECURE
    chain = _nsec3_zone(qname, nsec3s)
    ds = dns.rdatatype.DS
    at = _nsec3_match(qname, chain)
    if at is not None:
        if qtype in at.types or dns.rdatatype.CNAME in at.types:
            return Proof.UNPROVEN
        if qtype == ds and dns.rdatatype.SOA in at.types and len(qname) > 1:
            return Proof.UNPROVEN               # the child's apex, not the parent's cut
        if qtype != ds and dns.rdatatype.NS in at.types and dns.rdatatype.SOA not in at.types:
            return Proof.INSECURE if ds not in at.types else Proof.UNPROVEN
        return Proof.PROVEN
    proof, encloser, cover = nsec3_closest_encloser(qname, chain)
    if proof is Proof.UNPROVEN:
        return proof
    if proof is Proof.INSECURE and qtype != ds:
        return proof
    if encloser is not None:
        star = _nsec3_match(_wildcard(encloser), chain)     # §8.7: wildcard NODATA
        if star is not None:
            if qtype in star.types or dns.rdatatype.CNAME in star.types:
                return Proof.UNPROVEN
            if qtype == ds and dns.rdatatype.SOA in star.types:
                return Proof.UNPROVEN
            if qtype != ds and dns.rdatatype.NS in star.types \
                    and dns.rdatatype.SOA not in star.types:
                return Proof.UNPROVEN
            return Proof.INSECURE if cover is not None and cover.opt_out else Proof.PROVEN
    # §8.6: no NSEC3 at the name; only an opt-out span over it says it may be unsigned
    return Proof.INSECURE if cover is not None and cover.opt_out else Proof.UNPROVEN


def nsec3_wildcard(qname: dns.name.Name, encloser: dns.name.Name, nsec3s: Sequence[Nsec3]
                   ) -> Proof:
    """RFC 5155 §8.8: a wildcard answer for ``qname`` from ``*.encloser`` needs the next
    closer name covered (it does not exist); opt-out makes the answer insecure."""
    if _too_many_iterations(nsec3s):
        return Proof.INSECURE
    if not qname.is_subdomain(encloser) or len(qname) <= len(encloser):
        return Proof.UNPROVEN
    cover = _nsec3_cover(_next_closer(qname, encloser), _nsec3_zone(qname, nsec3s))
    if cover is None:
        return Proof.UNPROVEN
    return Proof.INSECURE if cover.opt_out else Proof.PROVEN


def _closest_encloser_nsec3(name: dns.name.Name, nsec3s: Sequence[Nsec3]
                            ) -> tuple[dns.name.Name, dns.name.Name, Nsec3] | None:
    """RFC 5155 §8.3: (closest encloser, next closer name, the NSEC3 covering the latter)."""
    proof, encloser, cover = nsec3_closest_encloser(name, nsec3s)
    if proof is not Proof.PROVEN or encloser is None or cover is None:
        return None
    return encloser, _next_closer(name, encloser), cover


# -- NSEC (RFC 4035 §5.4) and both ---------------------------------------------------------

def nsec_wildcard(qname: dns.name.Name, encloser: dns.name.Name, nsecs: Sequence[Nsec]
                  ) -> bool:
    """RFC 4035 §5.3.4: an answer expanded from ``*.encloser`` needs an NSEC that covers
    ``qname`` and whose closest encloser is ``encloser`` (no closer name exists)."""
    return any(n.covers(qname) and _closest_encloser_nsec(qname, [n]) == encloser
               for n in nsecs)


def wildcard_proof(qname: dns.name.Name, encloser: dns.name.Name, nsecs: Sequence[Nsec],
                   nsec3s: Sequence[Nsec3]) -> Proof:
    if nsecs:
        return Proof.PROVEN if nsec_wildcard(qname, encloser, nsecs) else Proof.UNPROVEN
    if nsec3s:
        return nsec3_wildcard(qname, encloser, nsec3s)
    return Proof.UNPROVEN


def wildcard_encloser(owner: dns.name.Name, rrsigs: Sequence[RRSIG]) -> dns.name.Name | None:
    """The closest encloser an RRset was expanded from (RFC 4035 §5.3.4: the RRSIG's label
    count is below the owner's), or None when it is no wildcard expansion."""
    labels = len(owner) - 1 - (1 if owner.labels and owner.labels[0] == b"*" else 0)
    counts = [sig.labels for sig in rrsigs]
    if not counts or min(counts) >= labels:
        return None
    return dns.name.Name(owner.labels[len(owner) - 1 - min(counts):])


def denial_proof(qname: dns.name.Name, qtype: int, nsecs: Sequence[Nsec],
                 nsec3s: Sequence[Nsec3], nxdomain: bool) -> Proof:
    """What the NSEC or NSEC3 records of a negative answer prove about ``qname``."""
    if nsecs:
        proven = (proves_nxdomain(qname, nsecs, ()) if nxdomain
                  else proves_nodata(qname, qtype, nsecs, ()))
        return Proof.PROVEN if proven else Proof.UNPROVEN
    if nsec3s:
        return nsec3_nxdomain(qname, nsec3s) if nxdomain else nsec3_nodata(qname, qtype, nsec3s)
    return Proof.UNPROVEN


def proves_nxdomain(qname: dns.name.Name, nsecs: Sequence[Nsec], nsec3s: Sequence[Nsec3]
                    ) -> bool:
    """The name does not exist, and no wildcard could have answered for it (for NSEC3:
    perhaps only among signed names, in an opt-out span)."""
    if nsecs:
        if any(n.owner == qname for n in nsecs):
            return False
        encloser = _closest_encloser_nsec(qname, nsecs)
        if encloser is None:
            return False
        star = _wildcard(encloser)
        return any(n.covers(star) for n in nsecs) and not any(n.owner == star for n in nsecs)
    if nsec3s:
        return nsec3_nxdomain(qname, nsec3s) is not Proof.UNPROVEN
    return False


def proves_nodata(qname: dns.name.Name, qtype: int, nsecs: Sequence[Nsec],
                  nsec3s: Sequence[Nsec3]) -> bool:
    """The name exists but has no record of ``qtype`` (nor a CNAME)."""
    unwanted = {qtype, dns.rdatatype.CNAME}
    if nsecs:
        for n in nsecs:
            if n.owner == qname:
                return not (n.types & unwanted)
        # an empty non-terminal: covered by an NSEC whose next name lies below it
        if any(n.covers(qname) and n.next.is_subdomain(qname) for n in nsecs):
            return True
        encloser = _closest_encloser_nsec(qname, nsecs)    # wildcard NODATA (§3.1.3.4)
        if encloser is not None:
            star = _wildcard(encloser)
            return any(n.owner == star and not (n.types & unwanted) for n in nsecs)
        return False
    if nsec3s:
        return nsec3_nodata(qname, qtype, nsec3s) is Proof.PROVEN
    return False


class DsAbsence(StrEnum):
    """What a signed negative answer to a DS query proves about the name."""

    UNSIGNED_DELEGATION = "unsigned_delegation"   # a zone cut without DS: insecure below
    NOT_A_CUT = "not_a_cut"                       # no delegation at the name: keep walking
    NO_NAME = "no_name"                           # the name does not exist at all
    UNPROVEN = "unproven"


def ds_absence(qname: dns.name.Name, nsecs: Sequence[Nsec], nsec3s: Sequence[Nsec3],
               nxdomain: bool) -> DsAbsence:
    if nsec3s and _too_many_iterations(nsec3s):
        return DsAbsence.UNSIGNED_DELEGATION
    if nxdomain:
        if nsecs or not nsec3s:
            return DsAbsence.NO_NAME if proves_nxdomain(qname, nsecs, ()) \
                else DsAbsence.UNPROVEN
        absent = nsec3_nxdomain(qname, nsec3s)    # opt-out: an unsigned cut may hide there
        return {Proof.PROVEN: DsAbsence.NO_NAME, Proof.INSECURE: DsAbsence.UNSIGNED_DELEGATION,
                Proof.UNPROVEN: DsAbsence.UNPROVEN}[absent]
    if nsecs:
        for n in nsecs:
            if n.owner == qname:
                if dns.rdatatype.DS in n.types or dns.rdatatype.CNAME in n.types:
                    return DsAbsence.UNPROVEN
                if dns.rdatatype.NS in n.types and dns.rdatatype.SOA not in n.types:
                    return DsAbsence.UNSIGNED_DELEGATION
                return DsAbsence.NOT_A_CUT
        if proves_nodata(qname, dns.rdatatype.DS, nsecs, ()):
            return DsAbsence.NOT_A_CUT      # an empty non-terminal
        return DsAbsence.UNPROVEN
    if nsec3s:
        for n3 in nsec3s:
            if n3.matches(qname):
                if dns.rdatatype.DS in n3.types or dns.rdatatype.CNAME in n3.types:
                    return DsAbsence.UNPROVEN
                if dns.rdatatype.NS in n3.types and dns.rdatatype.SOA not in n3.types:
                    return DsAbsence.UNSIGNED_DELEGATION
                return DsAbsence.NOT_A_CUT
        proof = _closest_encloser_nsec3(qname, nsec3s)
        if proof is not None and proof[2].opt_out:       # RFC 5155 §8.6: an opt-out span
            return DsAbsence.UNSIGNED_DELEGATION
        return DsAbsence.UNPROVEN
    return DsAbsence.UNPROVEN
