"""A validating stub: every lookup of a scan with its DNSSEC status, from a trust anchor.

Theory of operation
-------------------
``Validator.lookup(name, rdtype)`` has the Resolver's interface and returns
the same ``Lookup`` with ``dnssec`` (survey.dnssec.Status) and, when not
secure or insecure, ``dnssec_reason``. The query goes to the scan's
resolver with DO and CD set (net/dns.py ``lookup_dnssec``); the judgement
is made here, from the trust anchors down, with survey/dnssec.py:

* a signed RRset (each link of a CNAME chain, then the answer) is judged by
  the keys of the zone that signed it (the RRSIG's signer, which must
  enclose the owner);
* a zone's keys (``zone``) are trusted when its DNSKEY RRset matches the
  trust anchor, or the DS set its parent zone signed (the DS query's own
  RRSIG names the parent, whose keys are found the same way, up to an
  anchor); a signed denial of the DS at an unsigned delegation makes the
  zone ``insecure``;
* an unsigned RRset or denial is ``insecure`` only when a proof of an
  unsigned delegation lies between the anchor and the name
  (``_insecurity``: DS queries from the anchor down, one label at a time,
  until a delegation without DS is proven); otherwise it is ``bogus``
  (``no_rrsig``): a signed zone served it without its signatures;
* an RRset a wildcard expanded (its RRSIG counts fewer labels than its owner)
  also needs the signed NSEC/NSEC3 proof, in the authority section, that
  the name itself does not exist (RFC 4035 §5.3.4, RFC 5155 §8.8);
* negative answers are judged by their NSEC/NSEC3 records (signed by the
  zone) and what they prove (survey.dnssec; NSEC3 opt-out spans and NSEC3
  beyond 150 iterations prove only ``insecure``, as Unbound reads them);
* signature dates get Unbound's clock-skew allowance (survey.dnssec ``Skew``).

Every status is compared with Unbound's, lookup by lookup, on zones signed by
ldns-signzone (tests/interop/test_dnssec_generated.py, docs/dane.md).
``AdTrust`` (``--dnssec-trust-ad``) is the other way to get a status: the
AD bit of a validating resolver, nothing verified here.

Every DS and DNSKEY answer, every zone's judgement and every step of the
insecurity walk is computed once per scan (single flight; ``max_zones``
bounds the memory of a scan of millions of zones, least recently used
first), so the cost over plain lookups is the DS/DNSKEY queries of each zone
once, plus, for unsigned names, the DS queries down to their delegation.

A lookup that fails (timeout, SERVFAIL) is ``indeterminate``/``dns_error``;
so is one whose chain needs a lookup that failed. A resolver that strips
DNSSEC records (no RRSIG over the anchor zone's own DNSKEY) makes every
lookup ``indeterminate``/``no_dnssec_records``: that is how a researcher
tells a stripping resolver from bogus data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import dns.name
import dns.rdatatype
import dns.rrset
import trio

from survey.dnssec import (
    DEFAULT_SKEW,
    INSECURE,
    SECURE,
    Anchors,
    DsAbsence,
    Judgement,
    Proof,
    Reason,
    Skew,
    Status,
    bogus,
    check_dnskeys,
    check_rrset,
    denial_proof,
    denial_records,
    ds_absence,
    indeterminate,
    usable_ds,
    wildcard_encloser,
    wildcard_proof,
    worst,
)
from survey.net.dns import DnssecReply, Lookup, Resolver
from survey.net.singleflight import SingleFlight
from survey.proto import dnswire
from survey.proto.dnswire import DnsWireError
from survey.vocabulary import DnsStatus

DEFAULT_MAX_ZONES = 50_000
RRSIG = dns.rdatatype.RRSIG
CNAME_CODE = dnswire.TYPES["CNAME"]
_PROOF = {Proof.PROVEN: SECURE, Proof.INSECURE: INSECURE,
          Proof.UNPROVEN: bogus(Reason.DENIAL_UNPROVEN)}


@dataclass(frozen=True, slots=True)
class ZoneKeys:
    judgement: Judgement
    keys: tuple = ()                    # the zone's DNSKEYs when secure


class Validator:
    def __init__(self, resolver: Resolver, anchors: Anchors, *,
                 now: Callable[[], float] = time.time,
                 max_zones: int | None = DEFAULT_MAX_ZONES, skew: Skew = DEFAULT_SKEW) -> None:
        self.resolver = resolver
        self.anchors = anchors
        self.now = now
        self.skew = skew          # signature dates: Unbound's clock-skew allowance
        self._answers: SingleFlight[tuple[Lookup, Any]] = SingleFlight(max_zones)
        self.parsed = 0       # responses read into dnspython's model (signed data)
        self._zones: SingleFlight[ZoneKeys] = SingleFlight(max_zones)
        self._steps: SingleFlight[Judgement | DsAbsence] = SingleFlight(max_zones)

    @property
    def queries(self) -> int:
        return self.resolver.queries

    # -- the public interface: a Resolver's lookup, judged --------------------------------

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        lookup, reply = await self.resolver.lookup_dnssec(name, rdtype)
        if reply is None:
            judgement = indeterminate(Reason.DNS_ERROR)
        elif not reply.signed:
            judgement = await self._unsigned(name, rdtype, reply)
        else:
            try:
                message = reply.message
            except DnsWireError:
                judgement = indeterminate(Reason.DNS_ERROR)
            else:
                judgement = await self.judge(dns.name.from_text(name),
                                             dns.rdatatype.from_text(rdtype), message)
        return replace(lookup, dnssec=judgement.status.value,
                       dnssec_reason=judgement.reason.value if judgement.reason else None)

    async def _unsigned(self, name: str, rdtype: str, reply: DnssecReply) -> Judgement:
        """A response without any DNSSEC record: insecure where every owner on its CNAME
        chain (or the denied name) lies below a proven unsigned delegation, else bogus."""
        owners = [name.rstrip(".").lower()]
        code = dnswire.rdtype_code(rdtype)
        records = reply.fast.records
        for _ in range(dnswire.MAX_CNAME_HOPS):
            current = owners[-1]
            if any(r.rtype == code and r.owner == current for r in records):
                break
            alias = next((r.rdata.target for r in records
                          if isinstance(r.rdata, dnswire.CNAME) and r.owner == current), None)
            if alias is None or alias in owners:
                break
            owners.append(alias)
        parts = []
        for owner in owners:
            state = await self._insecurity(dns.name.from_text(owner))
            parts.append(bogus(Reason.NO_RRSIG) if state.secure else state)
        return worst(parts)

    async def judge(self, qname: dns.name.Name, qtype: int, message) -> Judgement:
        """The status of one response: its CNAME chain and answer, or its denial."""
        sigs = _signatures(message.answer)
        parts: list[Judgement] = []
        current = qname
        final = None
        for _ in range(17):
            rrset = _find(message.answer, current, qtype)
            if rrset is not None:
                parts.append(await self._positive(rrset, sigs, message))
                final = rrset
                break
            cname = _find(message.answer, current, dns.rdatatype.CNAME) \
                if qtype != dns.rdatatype.CNAME else None
            if cname is None:
                break
            parts.append(await self._positive(cname, sigs, message))
            current = cname[0].target
        if final is None:
            parts.append(await self._denial(current, qtype, message))
        return worst(parts)

    # -- positive data ----------------------------------------------------------------------

    async def _positive(self, rrset: dns.rrset.RRset, sigs: dict, message) -> Judgement:
        """An answer RRset; when a wildcard expanded it (RFC 4035 §5.3.4, RFC 5155 §8.8),
        also the signed proof in the authority section that the name itself is absent."""
        rrsigs = sigs.get((rrset.name, rrset.rdtype))
        judgement = await self._rrset(rrset, rrsigs)
        if not judgement.secure or not rrsigs:
            return judgement
        encloser = wildcard_encloser(rrset.name, rrsigs)
        if encloser is None:
            return judgement
        zone = await self.zone(rrsigs[0].signer)
        auth = _signatures(message.authority)
        proofs = [r for r in message.authority
                  if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]
        reason = self._unsigned_proof(proofs, auth, rrsigs[0].signer, zone.keys)
        if reason is not None:
            return bogus(reason)
        nsecs, nsec3s = denial_records(proofs)
        return _PROOF[wildcard_proof(rrset.name, encloser, nsecs, nsec3s)]

    async def _rrset(self, rrset: dns.rrset.RRset, sigs: list | None) -> Judgement:
        if not sigs:
            state = await self._insecurity(rrset.name)
            return bogus(Reason.NO_RRSIG) if state.secure else state
        signer = sigs[0].signer
        if not rrset.name.is_subdomain(signer):
            return bogus(Reason.WRONG_SIGNER)
        zone = await self.zone(signer)
        if not zone.judgement.secure:
            return zone.judgement
        reason = check_rrset(rrset, sigs, signer, zone.keys, self.now(), self.skew)
        return SECURE if reason is None else bogus(reason)

    # -- denial of existence ----------------------------------------------------------------

    async def _denial(self, qname: dns.name.Name, qtype: int, message) -> Judgement:
        authority = [r for r in message.authority if r.rdtype != RRSIG]
        sigs = _signatures(message.authority)
        proofs = [r for r in authority if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]
        signers = {s.signer for key, ss in sigs.items() for s in ss}
        if not signers:
            state = await self._insecurity(qname)
            return bogus(Reason.NO_RRSIG) if state.secure else state
        signer = max(signers, key=len)
        if not qname.is_subdomain(signer):
            return bogus(Reason.WRONG_SIGNER)
        zone = await self.zone(signer)
        if not zone.judgement.secure:
            return zone.judgement
        reason = self._unsigned_proof(proofs, sigs, signer, zone.keys)
        if reason is not None:
            return bogus(reason)
        nsecs, nsec3s = denial_records(proofs)
        proof = denial_proof(qname, qtype, nsecs, nsec3s, message.rcode() == 3)
        return _PROOF[proof]

    def _unsigned_proof(self, proofs: list[dns.rrset.RRset],
                        sigs: dict[tuple[dns.name.Name, int], list], signer: dns.name.Name,
                        keys: Any) -> Reason | None:
        """Why the first denial record whose signatures do not check fails, or None."""
        now = self.now()
        for rrset in proofs:
            reason = check_rrset(rrset, sigs.get((rrset.name, rrset.rdtype)), signer, keys, now,
                                 self.skew)
            if reason is not None:
                return reason
        return None

    # -- zones and their keys -------------------------------------------------------------

    async def _ask(self, name: dns.name.Name, rdtype: str) -> tuple[Lookup, Any]:
        """(lookup, dnspython message or None): the chain's DS and DNSKEY answers, once."""
        text = name.to_text()
        return await self._answers.get((text, rdtype), lambda: self._fetch(text, rdtype))

    async def _fetch(self, name: str, rdtype: str) -> tuple[Lookup, Any]:
        lookup, reply = await self.resolver.lookup_dnssec(name, rdtype)
        if reply is None:
            return lookup, None
        try:
            return lookup, reply.message
        except DnsWireError:
            return lookup, None

    async def zone(self, zone: dns.name.Name) -> ZoneKeys:
        """The judgement of a zone's keys (cached for the scan)."""
        return await self._zones.get(zone, lambda: self._zone(zone))

    async def _zone(self, zone: dns.name.Name) -> ZoneKeys:
        anchored = zone in self.anchors.zones
        ds: list = []
        if anchored:
            ds = list(self.anchors.ds.get(zone, ()))
            if self.anchors.ds.get(zone) and not usable_ds(ds) and not self.anchors.keys.get(zone):
                return ZoneKeys(indeterminate(Reason.NO_TRUST_ANCHOR))
        else:
            if self.anchors.closest(zone) is None:
                return ZoneKeys(indeterminate(Reason.NO_TRUST_ANCHOR))
            parent = await self._ds_set(zone)
            if isinstance(parent, Judgement):
                return ZoneKeys(parent)
            ds = usable_ds(parent)
            if not ds:
                return ZoneKeys(INSECURE)       # RFC 4035 §5.2: no DS it can check
        _lookup, message = await self._ask(zone, "DNSKEY")
        if message is None:
            return ZoneKeys(indeterminate(Reason.DNS_ERROR))
        rrset = _find(message.answer, zone, dns.rdatatype.DNSKEY)
        if rrset is None:
            return ZoneKeys(bogus(Reason.NO_DNSKEY))
        sigs = _signatures(message.answer).get((zone, dns.rdatatype.DNSKEY))
        if anchored and not sigs:
            return ZoneKeys(indeterminate(Reason.NO_DNSSEC_RECORDS))
        reason, keys = check_dnskeys(zone, rrset, sigs, self.now(), ds=ds,
                                     anchor_keys=self.anchors.keys.get(zone, ()),
                                     skew=self.skew)
        if reason is not None:
            return ZoneKeys(bogus(reason))
        return ZoneKeys(SECURE, tuple(keys))

    async def _ds_set(self, zone: dns.name.Name) -> list | Judgement:
        """The zone's DS records judged by its parent, or the judgement that ends the chain
        (INSECURE for a proven unsigned delegation)."""
        _lookup, message = await self._ask(zone, "DS")
        if message is None:
            return indeterminate(Reason.DNS_ERROR)
        rrset = _find(message.answer, zone, dns.rdatatype.DS)
        if rrset is not None:
            sigs = _signatures(message.answer).get((zone, dns.rdatatype.DS))
            if not sigs:
                state = await self._insecurity(zone.parent())
                return bogus(Reason.NO_RRSIG) if state.secure else state
            signer = sigs[0].signer
            if signer == zone or not zone.is_subdomain(signer):
                return bogus(Reason.WRONG_SIGNER)
            parent = await self.zone(signer)
            if not parent.judgement.secure:
                return parent.judgement
            reason = check_rrset(rrset, sigs, signer, parent.keys, self.now(), self.skew)
            return list(rrset) if reason is None else bogus(reason)
        step = await self._absence(zone, message)
        if isinstance(step, Judgement):
            return step
        if step is DsAbsence.UNSIGNED_DELEGATION:
            return INSECURE
        # No DS and no delegation here, yet records signed by this name as a zone:
        return bogus(Reason.DENIAL_UNPROVEN)

    async def _absence(self, name: dns.name.Name, message) -> Judgement | DsAbsence:
        """What the (signed) negative answer to a DS query at ``name`` proves."""
        sigs = _signatures(message.authority)
        signers = {s.signer for ss in sigs.values() for s in ss}
        if not signers:
            state = await self._insecurity(name.parent()) if len(name) > 1 else SECURE
            return bogus(Reason.NO_RRSIG) if state.secure else state
        signer = max(signers, key=len)
        if signer == name or not name.is_subdomain(signer):
            # a DS denial must come from the parent side of a cut
            if signer == name and message.rcode() == 0:
                return DsAbsence.NOT_A_CUT if signer in self.anchors.zones else \
                    bogus(Reason.WRONG_SIGNER)
            return bogus(Reason.WRONG_SIGNER)
        zone = await self.zone(signer)
        if not zone.judgement.secure:
            return zone.judgement
        proofs = [r for r in message.authority
                  if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]
        reason = self._unsigned_proof(proofs, sigs, signer, zone.keys)
        if reason is not None:
            return bogus(reason)
        nsecs, nsec3s = denial_records(proofs)
        result = ds_absence(name, nsecs, nsec3s, message.rcode() == 3)
        if result is DsAbsence.UNPROVEN:
            return bogus(Reason.DENIAL_UNPROVEN)
        return result

    # -- is an unsigned name insecure? ---------------------------------------------------

    async def _insecurity(self, name: dns.name.Name) -> Judgement:
        """SECURE when ``name`` lies in a signed zone (so unsigned data there is bogus),
        INSECURE when an unsigned delegation is proven above it, else why not known."""
        anchor = self.anchors.closest(name)
        if anchor is None:
            return indeterminate(Reason.NO_TRUST_ANCHOR)
        top = await self.zone(anchor)
        if not top.judgement.secure:
            return top.judgement
        for depth in range(len(anchor) + 1, len(name) + 1):
            step_name = dns.name.Name(name.labels[len(name) - depth:])
            step = await self._steps.get(step_name, _bind(self._step, step_name))
            if isinstance(step, Judgement):
                return step
            if step is DsAbsence.NO_NAME:
                return SECURE               # nothing below exists: the zone above is signed
        return SECURE

    async def _step(self, name: dns.name.Name) -> Judgement | DsAbsence:
        """One level of the walk: a secure cut (NOT_A_CUT: go on), an unsigned delegation
        (INSECURE), a name that does not exist, or a judgement that ends the walk."""
        _lookup, message = await self._ask(name, "DS")
        if message is None:
            return indeterminate(Reason.DNS_ERROR)
        if _find(message.answer, name, dns.rdatatype.DS) is not None:
            zone = await self.zone(name)
            return DsAbsence.NOT_A_CUT if zone.judgement.secure else zone.judgement
        if _find(message.answer, name, dns.rdatatype.CNAME) is not None:
            return DsAbsence.NOT_A_CUT      # an alias is no cut; its owner zone is signed
        result = await self._absence(name, message)
        if result is DsAbsence.UNSIGNED_DELEGATION:
            return INSECURE
        return result


class AdTrust:
    """``--dnssec-trust-ad``: the DNSSEC status of each lookup as the resolver's AD bit says,
    for a scan whose ``--resolver`` is a validating resolver on a trusted path (RFC 4035
    §4.9.3, RFC 6840 §5.7-5.8, RFC 7672 §1.3: a stub may trust AD only from a resolver it
    trusts, over a channel it trusts, typically one on the same machine).

    A lookup asks with AD set and without DO (so no RRSIG or NSEC record is carried, and
    nothing is verified here): AD in the answer is ``secure``; SERVFAIL is asked again
    with CD: the data then coming is ``bogus``/``resolver_bogus`` (the resolver does not
    say why), none is ``indeterminate``/``dns_error``; an answer without AD is ``insecure``
    only once the resolver has set AD on the trust anchor zone's own DNSKEY (asked once a
    scan): a resolver that does not validate, or a path that clears AD, would make every
    answer look insecure, so without that proof they are
    ``indeterminate``/``resolver_not_validating``. The resolver's own trust anchors decide;
    the scan's (``anchors``) only name the zone asked for that proof.
    """

    def __init__(self, resolver: Resolver, anchors: Anchors) -> None:
        self.resolver = resolver
        self.anchors = anchors
        self._validating: bool | None = None       # known once the anchor zone answered
        self._lock = trio.Lock()

    @property
    def queries(self) -> int:
        return self.resolver.queries

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        lookup, authentic = await self.resolver.lookup_ad(name, rdtype)
        if lookup.status == DnsStatus.SERVFAIL:
            checked, _ = await self.resolver.lookup_ad(name, rdtype, checking_disabled=True)
            if checked.status in _ANSWERED:
                return _judged(checked, bogus(Reason.RESOLVER_BOGUS))
            return _judged(lookup, indeterminate(Reason.DNS_ERROR))
        if lookup.status not in _ANSWERED:
            return _judged(lookup, indeterminate(Reason.DNS_ERROR))
        if authentic:
            return _judged(lookup, SECURE)
        validating = await self._validates()
        if validating is None:
            return _judged(lookup, indeterminate(Reason.DNS_ERROR))
        if not validating:
            return _judged(lookup, indeterminate(Reason.RESOLVER_NOT_VALIDATING))
        return _judged(lookup, INSECURE)

    async def _validates(self) -> bool | None:
        """Does the resolver set AD on a trust anchor zone's own DNSKEY RRset? Asked once a
        scan (None, and asked again next time, while no anchor zone has answered)."""
        async with self._lock:
            if self._validating is None:
                answered = False
                for zone in sorted(self.anchors.zones, key=len):
                    lookup, authentic = await self.resolver.lookup_ad(zone.to_text(),
                                                                      "DNSKEY")
                    answered = answered or lookup.ok
                    if lookup.ok and authentic:
                        self._validating = True
                        break
                else:
                    if answered:
                        self._validating = False
            return self._validating


_ANSWERED = (DnsStatus.OK, DnsStatus.NO_DATA, DnsStatus.NXDOMAIN)


def _judged(lookup: Lookup, judgement: Judgement) -> Lookup:
    return replace(lookup, dnssec=judgement.status.value,
                   dnssec_reason=judgement.reason.value if judgement.reason else None)


Lookups = Resolver | Validator | AdTrust     # what a scan's lookups go through


def _bind(fn, arg):
    return lambda: fn(arg)


def _find(section, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.rdtype == rdtype and rrset.name == name:
            return rrset
    return None


def _signatures(section) -> dict[tuple[dns.name.Name, int], list]:
    out: dict[tuple[dns.name.Name, int], list] = {}
    for rrset in section:
        if rrset.rdtype == RRSIG:
            for sig in rrset:
                out.setdefault((rrset.name, sig.type_covered), []).append(sig)
    return out


def status_of(*lookups: Lookup) -> tuple[str | None, str | None]:
    """The combined (status, reason) of several validated lookups (None: not validated)."""
    if any(lookup.dnssec is None for lookup in lookups) or not lookups:
        return None, None
    j = worst(Judgement(Status.of(lk.dnssec or ""),
                        Reason.of(lk.dnssec_reason) if lk.dnssec_reason else None)
              for lk in lookups)
    return j.status.value, j.reason.value if j.reason else None
