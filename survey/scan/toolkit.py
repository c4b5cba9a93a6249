"""The connected parts of a scan, built once from its config, shared by both ways to run it.

A single-process scan (scan/run.py) and each task of a distributed scan
(scan/cluster/) need the same things: the destination policy, the trust
store, a resolver with its host cache, the politeness slots, the server prober
with its enumerator, the chain judgements, and the MTA-STS fetch that walks a
policy host's addresses. ``Toolkit`` builds them from one ``ScanConfig``;
``domain_rows`` turns what was learnt about one domain into its rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from survey import dane
from survey.certs import ChainJudgement, TrustStore, judge_chain, verdict_for
from survey.dnssec import Anchors
from survey.net.dns import DEFAULT_OUTSTANDING, SILENT_AFTER, HostCache, Resolver
from survey.net.dnssec import AdTrust, Lookups, Validator
from survey.net.guard import DestinationPolicy, load_blocklist
from survey.net.https import PolicyFetch, failed, fetch_policy
from survey.net.smtp import SmtpProbe
from survey.scan.access import ServerAccess
from survey.scan.config import CONVERSATIONS_PER_PROCESS, ScanConfig
from survey.scan.enumeration import Enumerator
from survey.scan.politeness import Politeness
from survey.scan.resolve import DomainDns, canonical_ip
from survey.scan.servers import Attempted, ServerProber
from survey.scan.verdicts import dane_columns, dane_sni, domain_row, mx_row
from survey.vocabulary import HostStatus, StsPolicyError, TxtStatus


def now() -> datetime:
    return datetime.now(UTC)


def chain_key(chain: list[bytes]) -> tuple[str, ...]:
    return tuple(hashlib.sha256(der).hexdigest() for der in chain)


@dataclass(frozen=True)
class ServerOutcome:
    """What an (MX host, address) pair's rows need from its probe: the probe and its chain."""

    probe: SmtpProbe
    chain_sha256: tuple[str, ...] | None
    judgement: ChainJudgement | None


class Toolkit:
    """Policy, trust, DNS, politeness and the prober of one scan process.

    ``on_new_chain(chain, hashes)`` runs the first time this process judges a chain
    (where its certificates' rows get written). ``share`` divides the global
    rates (connections and DNS queries per second) and the DNS lookups
    outstanding at once (net/dns.py) when several processes scan at once, so
    their sum stays within what the user allowed and the resolver can take.
    """

    def __init__(self, config: ScanConfig, *, on_base: Callable[[Attempted], None] | None = None,
                 on_new_chain: Callable[[list[bytes], tuple[str, ...]], None] | None = None,
                 share: int = 1) -> None:
        self.config = config
        self.on_new_chain = on_new_chain
        blocklist = load_blocklist(config.blocklist) if config.blocklist else ()
        self.policy = DestinationPolicy(config.mode, blocklist,
                                        routable=config.routable_versions(),
                                        included=config.included_versions())
        self.store = TrustStore.load(config.ca_files, mozilla=config.mozilla_roots)
        self.resolver = Resolver(config.resolvers, timeout=config.dns_timeout,
                                 lifetime=config.dns_lifetime,
                                 rate=config.dns_rate / share if config.dns_rate else None,
                                 # a total for the resolver, as the rate: one share each
                                 outstanding=max(1, DEFAULT_OUTSTANDING // share),
                                 silent_after=SILENT_AFTER)
        # Every lookup of the scan goes through ``lookups``: the resolver itself, or the
        # validating stub over it when DNSSEC is measured (the resolver counts the queries).
        self.anchors = load_anchors(config)
        self.lookups: Lookups = self.resolver
        if self.anchors is not None:
            self.lookups = (AdTrust(self.resolver, self.anchors) if config.dnssec_trust_ad
                            else Validator(self.resolver, self.anchors))
        self.cache = HostCache(self.lookups)
        self.politeness = Politeness(per_ip=config.per_ip, spacing=config.per_ip_spacing,
                                     rate=config.rate / share if config.rate else None)
        assert config.ehlo_name is not None, "ScanConfig.check() sets the EHLO name"
        access = ServerAccess(port=config.smtp_port, policy=self.policy,
                              politeness=self.politeness, ehlo_name=config.ehlo_name,
                              timeouts=config.timeouts, retries=config.retries,
                              retry_delay=config.retry_delay,
                              turns=trio.Semaphore(config.conversations
                                                   or CONVERSATIONS_PER_PROCESS))
        self.enumerator = Enumerator(profile=config.profile, access=access,
                                     budget=config.budget)
        self.prober = ServerProber(access, on_base=on_base, enumerator=self.enumerator)
        self.judgements: dict[tuple[str, ...], ChainJudgement | None] = {}
        self.policy_fetches = 0

    def judge(self, chain: list[bytes]) -> tuple[tuple[str, ...], ChainJudgement | None]:
        """(chain hashes, judgement): judged once per distinct chain in this process."""
        key = chain_key(chain)
        if key not in self.judgements:
            self.judgements[key] = judge_chain(chain, now(), self.store)
            if self.on_new_chain is not None:
                self.on_new_chain(chain, key)
        return key, self.judgements[key]

    def outcome(self, probe: SmtpProbe | None) -> ServerOutcome | None:
        if probe is None:
            return None
        if probe.status != HostStatus.OK:
            return ServerOutcome(probe, None, None)
        key, judgement = self.judge(probe.chain)
        return ServerOutcome(probe, key, judgement)

    async def fetch_at(self, domain: str, ip: str) -> PolicyFetch:
        """One fetch attempt at one address, inside its politeness slot."""
        if reason := self.policy.check(ip):
            return failed(StsPolicyError.BLOCKED, reason, ip=ip)
        self.policy_fetches += 1
        async with self.politeness.slot(ip):
            return await fetch_policy(domain, ip, self.config.https_port, policy=self.policy,
                                      store=self.store, probed_at=now(),
                                      timeout=self.config.policy_timeout,
                                      user_agent=self.config.user_agent)

    async def fetch_policy(self, dns: DomainDns) -> PolicyFetch | None:
        """RFC 8461 §3.3 fetch from the first address of ``mta-sts.<domain>`` that connects."""
        if dns.mta_sts.status != TxtStatus.VALID:
            return None
        ips, fetch = await policy_addresses(self.cache, dns.target.domain)
        for ip in ips:
            fetch = await self.fetch_at(dns.target.domain, ip)
            if not tries_next_address(fetch):
                break
        return fetch


def load_anchors(config: ScanConfig) -> Anchors | None:
    """The scan's DNSSEC trust anchors (None: DNSSEC not measured)."""
    if not config.dnssec:
        return None
    if config.dnssec_anchor is not None:
        return Anchors.from_file(config.dnssec_anchor)
    return Anchors.iana()


async def policy_addresses(cache: HostCache, domain: str) -> tuple[list[str], PolicyFetch]:
    """The addresses of ``mta-sts.<domain>``, and the failure to report if none works."""
    host = f"mta-sts.{domain}"
    a, aaaa = await cache.addresses(host)
    ips = [canonical_ip(r.address) for r in a.records + aaaa.records]
    return ips, failed(StsPolicyError.DNS, f"{host}: A {a.status}, AAAA {aaaa.status}")


def tries_next_address(fetch: PolicyFetch) -> bool:
    """After this result, is the policy host's next address worth a try?"""
    return fetch.error in ("connect", "blocked")


def domain_rows(dns: DomainDns, outcomes: Mapping[tuple[str, str], ServerOutcome | None],
                policy_fetch: PolicyFetch | None, port: int) -> list[tuple[str, dict]]:
    """A domain's mx rows and its domain row (last), from its DNS, servers and policy."""
    rows, sessions = [], []
    for mx in dns.mx:
        for ip in mx.ips or (None,):
            outcome = outcomes.get((mx.host, ip)) if ip else None
            verdict = shas = None
            if outcome is not None and outcome.chain_sha256 is not None:
                verdict, shas = verdict_for(outcome.judgement, mx.host), list(outcome.chain_sha256)
            row, ok = mx_row(dns, mx.host, mx.preference, mx.status, ip, port,
                             outcome.probe if outcome else None, verdict, shas, policy_fetch,
                             now(), address_dnssec=mx.dnssec,
                             address_dnssec_reason=mx.dnssec_reason)
            # a DANE sender's handshake: SNI = the TLSA base domain (RFC 7672 §8.1)
            dane_name = dane_sni(dns, mx) or mx.host
            dane_outcome = outcomes.get((dane_name, ip)) if ip else None
            row.update(dane_columns(
                dns, mx, ip, dane_outcome.probe if dane_outcome else None, now(),
                list(dane_outcome.chain_sha256) if dane_outcome and dane_outcome.chain_sha256
                else None))
            row["dane_result_type"] = dane.DANE_RESULT_TYPES.get(row["dane"])
            row["sender"] = dane.sender(row["dane"], row["sts_verdict"])
            rows.append(("mx", row))
            sessions.append(ok)
    rows.append(("domains", domain_row(dns, policy_fetch, sessions, now())))
    return rows
