"""The four kinds of task of a distributed scan; each runs in one worker, idempotently.

Theory of operation
-------------------
1. ``dns_shard(s)``: resolves shard ``s``'s domains (MX, addresses, TXT,
   the MTA-STS policy host's addresses) and hands each address partition the
   (address, MX name) pairs and policy fetches that fall in it.
2. ``servers(r, p)``: owns every address of partition ``p``. Round 0 probes
   each of its servers once (the ServerProber of a single-process scan, the
   same SNI rule, names offered in input order so the first name is the
   one a single-process scan would most likely have used), writes the host
   rows, and fetches the MTA-STS policies whose first address is here. A
   fetch that could not connect moves to round ``r + 1`` in the partition of
   the policy host's next address (RFC 8461 §3.3 lets a sender try each).
3. ``certs(b)``: writes bucket ``b``'s certificates, each once.
4. ``join(s)``: shard ``s``'s mx and domain rows from its DNS and every
   partition's answers for it; mx part first, the domains part last.
Every connection a task makes goes through its own Politeness, and no two
tasks that run at once own the same address, so the per-IP caps hold for
the whole cluster.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

from survey import __version__
from survey.certs import CertError, facts
from survey.net.https import PolicyFetch
from survey.scan.cluster.stage import (
    Plan,
    mark_done,
    read_all,
    read_pickle,
    stage_dir,
    write_pickle,
)
from survey.scan.collector import scan_thresholds
from survey.scan.config import ScanConfig
from survey.scan.resolve import DomainDns, resolve_domain
from survey.scan.run import tool_stats
from survey.scan.servers import Attempted, trimmed
from survey.scan.targets import Target
from survey.scan.toolkit import (
    ServerOutcome,
    Toolkit,
    domain_rows,
    now,
    policy_addresses,
    tries_next_address,
)
from survey.scan.verdicts import host_row, invalid_input_row, sni_names
from survey.store.location import Location
from survey.store.writer import write_part
from survey.vocabulary import TxtStatus

Order = tuple[int, int]       # (shard, position in the shard): the input order


@dataclass(frozen=True)
class Resolved:
    """One domain after the DNS phase."""

    target: Target
    dns: DomainDns | None                   # None for invalid input
    fetch: PolicyFetch | FetchRequest | None = None   # settled already (no policy host
                                            # address, or none was fetched);
                                            # a FetchRequest until the task hands it on


@dataclass(frozen=True)
class FetchRequest:
    domain: str
    shard: int
    ips: tuple[str, ...]
    round: int = 0


async def run_bounded(limit: int, calls: Iterable[tuple[Callable, tuple]]) -> None:
    """Run the calls, ``limit`` at a time; a task starts only when a slot is free (so a
    shard's thousands of domains are never thousands of waiting tasks)."""
    slots = trio.Semaphore(limit)

    async def one(fn: Callable, args: tuple) -> None:
        try:
            await fn(*args)
        finally:
            slots.release()

    async with trio.open_nursery() as nursery:
        for fn, args in calls:
            await slots.acquire()
            nursery.start_soon(one, fn, args)


def survey_version() -> str:
    """Run on each worker: a cluster must run the driver's version of survey."""
    return __version__


def part_name(kind: str, number: int) -> str:
    return f"part-{kind}{number:05d}.parquet"


def input_path(out: Location, s: int) -> Location:
    return stage_dir(out) / "input" / f"s{s:05d}.pkl"


def _tools(config: ScanConfig, plan: Plan, **kwargs) -> Toolkit:
    return Toolkit(dataclasses.replace(config, concurrency=plan.concurrency,
                                       conversations=plan.conversations), share=plan.share,
                   **kwargs)


# -- 1. DNS, by domain shard ----------------------------------------------------------------

def dns_shard(config: ScanConfig, plan: Plan, s: int) -> dict:
    out = config.out
    targets: list[Target] = read_pickle(input_path(out, s))
    resolved: list[Resolved | None] = [None] * len(targets)
    tools = _tools(config, plan)

    async def one(i: int, target: Target) -> None:
        if not target.valid:
            resolved[i] = Resolved(target, None)
            return
        dns = await resolve_domain(target, tools.lookups, tools.cache)
        fetch: PolicyFetch | FetchRequest | None = None
        if dns.mta_sts.status == TxtStatus.VALID:
            ips, fetch = await policy_addresses(tools.cache, target.domain)
            if ips:
                fetch = FetchRequest(target.domain, s, tuple(ips))
        resolved[i] = Resolved(target, dns, fetch)

    with scan_thresholds():
        trio.run(run_bounded, plan.concurrency, ((one, (i, t)) for i, t in enumerate(targets)))
    pairs: list[list[tuple[str, str, Order]]] = [[] for _ in range(plan.partitions)]
    fetches: list[list[FetchRequest]] = [[] for _ in range(plan.partitions)]
    for i, item in enumerate(resolved):
        assert item is not None                 # every task filled its slot
        if isinstance(item.fetch, FetchRequest):
            fetches[plan.partition(item.fetch.ips[0])].append(item.fetch)
            resolved[i] = item = dataclasses.replace(item, fetch=None)
        if item.dns is None:                    # invalid input: no servers
            continue
        for mx in item.dns.mx:
            names = sni_names(item.dns, mx)      # the MX name, and a DANE sender's SNI
            for ip in mx.ips:
                for name in names:
                    pairs[plan.partition(ip)].append((ip, name, (s, i)))
    for p in range(plan.partitions):   # every partition's file, empty or not: see stage.py
        write_pickle(requests_dir(out, 0, p) / f"s{s:05d}.pkl", (pairs[p], fetches[p]))
    write_pickle(stage_dir(out) / "dns" / f"s{s:05d}.pkl", resolved)
    summary = {"domains": len(targets), "dns_queries": tools.resolver.queries}
    mark_done(out, f"dns-s{s:05d}", summary)
    return summary


def requests_dir(out: Location, round: int, p: int) -> Location:
    return stage_dir(out) / f"r{round}" / "requests" / f"p{p:05d}"


def answers_dir(out: Location, round: int, s: int) -> Location:
    return stage_dir(out) / f"r{round}" / "answers" / f"s{s:05d}"


# -- 2. servers and policy hosts, by address partition --------------------------------------

def servers(config: ScanConfig, plan: Plan, round: int, p: int, shards: int) -> dict:
    out = config.out
    names: dict[str, dict[str, Order]] = defaultdict(dict)   # address -> name -> first asker
    askers: dict[tuple[str, str], set[int]] = defaultdict(set)  # (name, address) -> shards
    fetches: list[FetchRequest] = []
    for pairs, requests in read_all(requests_dir(out, round, p)):
        for ip, name, order in pairs:
            known = names[ip].get(name)
            names[ip][name] = order if known is None else min(known, order)
            askers[(name, ip)].add(order[0])
        fetches.extend(requests)
    host_rows: list[dict] = []
    cert_rows: dict[int, dict[str, dict]] = defaultdict(dict)

    def write_certs(chain: list[bytes], shas: tuple[str, ...]) -> None:
        for der, sha in zip(chain, shas):
            try:
                cert_rows[plan.bucket(sha)][sha] = facts(der).row(now())
            except CertError:
                continue   # unparsable: its sha256 still appears in chain_sha256

    def host_done(attempted: Attempted) -> None:
        probe = attempted.probe
        shas = tools.judge(probe.chain)[0] if probe.chain else None
        host_rows.append(host_row(probe, attempted.connections, list(shas) if shas else None,
                                  now(), attempted.enumeration, attempted.attempts))

    tools = _tools(config, plan, on_base=host_done, on_new_chain=write_certs)
    outcomes: dict[tuple[str, str], ServerOutcome | None] = {}
    settled: dict[str, PolicyFetch] = {}
    pending: list[FetchRequest] = []

    async def ask(ip: str, name: str) -> None:
        outcome = tools.outcome(await tools.prober.for_name(ip, name))
        if outcome is not None:
            outcome = dataclasses.replace(outcome, probe=trimmed(outcome.probe))
        outcomes[(name, ip)] = outcome

    async def fetch(request: FetchRequest) -> None:
        result = await tools.fetch_at(request.domain, request.ips[request.round])
        settled[request.domain] = result
        if tries_next_address(result) and request.round + 1 < len(request.ips):
            pending.append(dataclasses.replace(request, round=request.round + 1))

    async def address(ip: str) -> None:
        """All work at one address in one task: one slot of concurrency, not one per
        connection waiting for the address's politeness slot."""
        if ip in names:
            ordered = sorted(names[ip], key=lambda name: names[ip][name])
            await ask(ip, ordered[0])
            async with trio.open_nursery() as nursery:
                for name in ordered[1:]:
                    nursery.start_soon(ask, ip, name)
        for request in fetches_at.get(ip, ()):
            await fetch(request)

    fetches_at: dict[str, list[FetchRequest]] = defaultdict(list)
    for request in fetches:
        fetches_at[request.ips[request.round]].append(request)
    # the longest chains first: a policy host serving a hundred domains takes a hundred
    # connections one after another, and must not start last
    busiest = sorted(set(names) | set(fetches_at),
                     key=lambda ip: (-len(names.get(ip, ())) - len(fetches_at.get(ip, ())), ip))

    with scan_thresholds():
        trio.run(run_bounded, plan.concurrency, ((address, (ip,)) for ip in busiest))
    if host_rows:
        write_part(out / "hosts", part_name(f"r{round}p", p), "hosts", host_rows)
    for b, rows in cert_rows.items():
        write_pickle(stage_dir(out) / "certs" / f"c{b:05d}" / f"r{round}p{p:05d}.pkl", rows)
    _hand_back(out, round, p, shards, askers, outcomes, fetches, settled)
    moved: list[list[FetchRequest]] = [[] for _ in range(plan.partitions)]
    for request in pending:
        moved[plan.partition(request.ips[request.round])].append(request)
    for q in range(plan.partitions):
        write_pickle(requests_dir(out, round + 1, q) / f"p{p:05d}.pkl", ([], moved[q]))
    summary = {**tool_stats(tools), "pending_fetches": len(pending), "hosts": len(host_rows)}
    mark_done(out, f"r{round}-p{p:05d}", summary)
    return summary


def _hand_back(out: Location, round: int, p: int, shards: int,
               askers: dict[tuple[str, str], set[int]],
               outcomes: dict[tuple[str, str], ServerOutcome | None],
               fetches: list[FetchRequest], settled: dict[str, PolicyFetch]) -> None:
    """Each shard's answers from this partition, one file per shard (empty ones too)."""
    per_shard: list[tuple[dict, dict]] = [({}, {}) for _ in range(shards)]
    for pair, shards_asking in askers.items():
        for s in shards_asking:
            per_shard[s][0][pair] = outcomes.get(pair)
    for request in fetches:
        per_shard[request.shard][1][request.domain] = settled[request.domain]
    for s, answer in enumerate(per_shard):
        write_pickle(answers_dir(out, round, s) / f"p{p:05d}.pkl", answer)


# -- 3. certificates, by hash bucket --------------------------------------------------------

def certs(config: ScanConfig, plan: Plan, b: int) -> dict:
    rows: dict[str, dict] = {}
    for found in read_all(stage_dir(config.out) / "certs" / f"c{b:05d}"):
        rows.update(found)
    if rows:
        write_part(config.out / "certs", part_name("c", b), "certs", list(rows.values()))
    summary = {"certs": len(rows)}
    mark_done(config.out, f"certs-c{b:05d}", summary)
    return summary


# -- 4. rows of domains, by domain shard ----------------------------------------------------

def join(config: ScanConfig, plan: Plan, s: int, rounds: int) -> dict:
    out = config.out
    resolved: list[Resolved] = read_pickle(stage_dir(out) / "dns" / f"s{s:05d}.pkl")
    outcomes: dict[tuple[str, str], ServerOutcome | None] = {}
    policies: dict[str, PolicyFetch] = {}
    for round in range(rounds):              # a later round's fetch supersedes an earlier one
        for servers_answered, fetched in read_all(answers_dir(out, round, s)):
            outcomes.update(servers_answered)
            policies.update(fetched)
    mx_rows: list[dict[str, Any]] = []
    domain_rows_: list[dict[str, Any]] = []
    for item in resolved:
        if item.dns is None:
            domain_rows_.append(invalid_input_row(item.target, now()))
            continue
        settled = item.fetch if isinstance(item.fetch, PolicyFetch) else None  # requests: None
        fetch = settled or policies.get(item.target.domain)
        for table, row in domain_rows(item.dns, outcomes, fetch, config.smtp_port):
            (mx_rows if table == "mx" else domain_rows_).append(row)
    name = part_name("s", s)
    if mx_rows:
        write_part(out / "mx", name, "mx", mx_rows)
    write_part(out / "domains", name, "domains", domain_rows_)
    summary = {"domains": len(domain_rows_), "mx": len(mx_rows)}
    mark_done(out, f"join-s{s:05d}", summary)
    return summary
