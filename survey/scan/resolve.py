"""The DNS stage of a scan: one domain's MX targets, their addresses, and its TXT records.

Theory of operation
-------------------
For each domain (RFC 5321 §5.1, RFC 7505):
  MX query ok          -> ``mx`` targets in (preference, name) order, or
                          ``null_mx`` for the single record ``0 .``
  MX query NODATA      -> implicit MX: the domain itself, preference 0, when it
                          has A or AAAA records; ``none`` when it has neither
  MX query failed      -> no targets; the failure is the domain's dns_status
Each MX host's A and AAAA come from the scan's HostCache (once per name per
scan). With DNSSEC validation (net/dnssec.py: the scan's lookups go through a
Validator) every lookup carries its DNSSEC status: the MX lookup's, the TXT
lookups', and the worst of each host's A and AAAA. A CNAME'd MX host resolves to
its target's addresses but keeps the MX record's name for matching (docs/design.md
"Data flow of a scan", step 2). ``_mta-sts`` and ``_smtp._tls`` TXT RRsets are
read alongside and parsed by survey.proto.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import trio

from survey.dane import Tlsa, parse_tlsa, tlsa_name
from survey.net.dns import HostCache, Lookup
from survey.net.dnssec import Lookups, status_of
from survey.net.together import together
from survey.proto.txtrecords import (
    StsRecord,
    TlsrptRecord,
    parse_mta_sts_txt,
    parse_tlsrpt_txt,
    record_text,
    txt_status,
)
from survey.scan.targets import Target
from survey.vocabulary import DnsStatus, MxKind, TxtStatus


@dataclass(frozen=True)
class MxTarget:
    host: str
    preference: int
    status: DnsStatus           # mx_status: ok, or why the host has no address
    ips: tuple[str, ...]        # A then AAAA, each sorted, canonical text
    dnssec: str | None = None   # the worst DNSSEC status of the A and AAAA lookups
    dnssec_reason: str | None = None
    tlsa: Lookup | None = None  # the TLSA lookup (RFC 7672 §2.2.2), when one was made
    tlsa_base: str | None = None    # its base domain: the secure CNAME target or the host

    @property
    def tlsa_records(self) -> list[Tlsa] | None:
        if self.tlsa is None:
            return None
        if not self.tlsa.ok:
            return [] if self.tlsa.status in (DnsStatus.NXDOMAIN, DnsStatus.NO_DATA) else None
        return [t for t in (parse_tlsa(bytes(r)) for r in self.tlsa.records) if t is not None]


@dataclass(frozen=True)
class TxtResult:
    status: TxtStatus
    texts: list[str] | None     # every record, joined, sorted; None on a DNS error
    sts: StsRecord | None = None
    tlsrpt: TlsrptRecord | None = None
    dnssec: str | None = None
    dnssec_reason: str | None = None


@dataclass(frozen=True)
class DomainDns:
    target: Target
    dns_status: DnsStatus
    mx_kind: MxKind | None
    mx: tuple[MxTarget, ...]
    mta_sts: TxtResult
    tlsrpt: TxtResult
    mx_dnssec: str | None = None
    mx_dnssec_reason: str | None = None

    @property
    def mx_hosts(self) -> list[str] | None:
        if self.mx_kind is None:
            return None
        return [m.host for m in self.mx] if self.mx_kind == MxKind.MX else []


def canonical_ip(text: str) -> str:
    return ipaddress.ip_address(text).compressed  # RFC 5952 for IPv6


def _name(rdata_name) -> str:
    """An MX exchange: survey.proto.dnswire gives lower-case text without the final dot."""
    if isinstance(rdata_name, str):
        return rdata_name.rstrip(".").lower()
    return rdata_name.to_text(omit_final_dot=True).lower()


def host_status(a: Lookup, aaaa: Lookup) -> DnsStatus:
    """One mx_status from the two address lookups: ok if either has addresses."""
    if a.ok or aaaa.ok:
        return DnsStatus.OK
    for lookup in (a, aaaa):
        if lookup.status != DnsStatus.NO_DATA:
            return lookup.status
    return DnsStatus.NO_DATA


async def resolve_host(cache: HostCache, host: str, preference: int) -> MxTarget:
    a, aaaa = await cache.addresses(host)
    ips = tuple(sorted({canonical_ip(r.address) for r in a.records},
                       key=ipaddress.ip_address)) + tuple(
        sorted({canonical_ip(r.address) for r in aaaa.records}, key=ipaddress.ip_address))
    dnssec, reason = status_of(a, aaaa)
    tlsa, base = None, None
    if dnssec == "secure" and ips:
        tlsa, base = await lookup_tlsa(cache, host, a.canonical_name or aaaa.canonical_name)
    return MxTarget(host, preference, host_status(a, aaaa), ips, dnssec, reason, tlsa, base)


async def lookup_tlsa(cache: HostCache, host: str, canonical: str | None
                      ) -> tuple[Lookup, str]:
    """RFC 7672 §2.2.2: TLSA at the (secure) CNAME target first, then at the host name."""
    if canonical and canonical != host:
        lookup = await cache.get(tlsa_name(canonical), "TLSA")
        if lookup.status not in (DnsStatus.NXDOMAIN, DnsStatus.NO_DATA) \
                or lookup.dnssec != "secure":
            return lookup, canonical
    return await cache.get(tlsa_name(host), "TLSA"), host


async def read_txt(resolver: Lookups, name: str, kind: str) -> TxtResult:
    lookup = await resolver.lookup(name, "TXT")
    dnssec = status_of(lookup)
    if lookup.status in (DnsStatus.NXDOMAIN, DnsStatus.NO_DATA):
        records: list[bytes] = []
    elif lookup.ok:
        records = [b"".join(r.strings) for r in lookup.records]
    else:
        return TxtResult(TxtStatus.DNS_ERROR, None, None, None, *dnssec)
    texts = sorted(record_text(r) for r in records)
    if kind == "mta-sts":
        sts = parse_mta_sts_txt(records)
        return TxtResult(txt_status(sts), texts, sts, None, *dnssec)
    tlsrpt = parse_tlsrpt_txt(records)
    return TxtResult(txt_status(tlsrpt), texts, None, tlsrpt, *dnssec)


async def resolve_domain(target: Target, resolver: Lookups,
                         cache: HostCache) -> DomainDns:
    domain = target.domain
    results: dict[str, TxtResult] = {}

    async def txt(kind: str, name: str) -> None:
        results[kind] = await read_txt(resolver, name, kind)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(txt, "mta-sts", f"_mta-sts.{domain}")
        nursery.start_soon(txt, "tlsrpt", f"_smtp._tls.{domain}")
        mx_lookup = await resolver.lookup(domain, "MX")
        kind, refs = await _mx_targets(domain, mx_lookup, cache)
        hosts: list[MxTarget | None] = [None] * len(refs)

        def host(i: int, name: str, preference: int):
            async def job() -> None:
                hosts[i] = await resolve_host(cache, name, preference)
            return job

        await together([host(i, name, preference) for i, (name, preference) in enumerate(refs)])

    dns_status = mx_lookup.status
    resolved = tuple(h for h in hosts if h is not None)   # all of them: the nursery waited
    return DomainDns(target, dns_status, kind, resolved, results["mta-sts"],
                     results["tlsrpt"], *status_of(mx_lookup))


async def _mx_targets(domain: str, lookup: Lookup, cache: HostCache
                      ) -> tuple[MxKind | None, list[tuple[str, int]]]:
    """(mx_kind, [(host, preference)]) from the MX lookup."""
    if lookup.ok:
        refs = sorted({(int(r.preference), _name(r.exchange)) for r in lookup.records})
        real = [(name, pref) for pref, name in refs if name not in ("", ".")]
        if not real:
            return MxKind.NULL_MX, []      # RFC 7505: the single record "0 ."
        return MxKind.MX, real
    if lookup.status != DnsStatus.NO_DATA:
        return None, []
    a, aaaa = await cache.addresses(domain)
    if a.ok or aaaa.ok:
        return MxKind.IMPLICIT, [(domain, 0)]
    return MxKind.NONE, []
