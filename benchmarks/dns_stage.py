"""DNS stage against its ceiling (issue 10, item 3).

The scan's DNS stage (``survey.scan.resolve.resolve_domain`` over
``survey.net.dns``, as ``survey scan`` runs it: ``--concurrency`` domains in
flight, one HostCache) against a bare dnspython loop issuing the very same
queries at the same concurrency, both against a real NSD serving the world's
exported zone (survey/testbed/zones.py) on 127.77.0.1 and a free high port.

The bare loop is the ceiling: dnspython's async resolver and nothing else —
no statuses, no records kept, no TXT parsing, no cache. Rates are queries per
second; the target is the stage's rate over the bare loop's (>= 0.7).
Rounds alternate (bare, stage, bare, stage, ...) and the medians are
compared, so a noisy neighbour hurts both alike.

    python benchmarks/dns_stage.py [--domains 20000] [--concurrency 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def build_zone(domains: int, seed: int, directory: Path) -> tuple[Path, list[str]]:
    from survey.testbed import zones
    from survey.testbed.generator import generate

    world = generate(domains, seed, "default", scale="fast")
    zones.write_zones(world, directory)
    return directory / zones.ZONE_FILE, [d.name for d in world.domains]


class RecordingResolver:
    """Wraps the stage's Resolver and notes every (name, type) it asks, for the bare loop."""

    def __init__(self, resolver, asked: list) -> None:
        self._resolver = resolver
        self.asked = asked

    def __getattr__(self, name):
        return getattr(self._resolver, name)

    async def lookup(self, name: str, rdtype: str):
        self.asked.append((name, rdtype))
        return await self._resolver.lookup(name, rdtype)


def run_stage(domains: list[str], server: tuple[str, int], concurrency: int,
              record: list | None = None) -> dict:
    import trio

    from survey.net.dns import HostCache, Resolver
    from survey.scan.resolve import resolve_domain
    from survey.scan.targets import Target

    resolver = Resolver([server], timeout=2.0, lifetime=6.0, rate=None)
    if record is not None:
        resolver = RecordingResolver(resolver, record)
    cache = HostCache(resolver)
    statuses: dict[str, int] = {}

    async def one(target, limiter) -> None:
        try:
            result = await resolve_domain(target, resolver, cache)
            statuses[result.dns_status] = statuses.get(result.dns_status, 0) + 1
        finally:
            limiter.release_on_behalf_of(target)

    async def main() -> None:
        limiter = trio.CapacityLimiter(concurrency)
        async with trio.open_nursery() as nursery:
            for rank, name in enumerate(domains, 1):
                target = Target(name, name, rank)
                await limiter.acquire_on_behalf_of(target)
                nursery.start_soon(one, target, limiter)

    cpu, wall = time.process_time(), time.perf_counter()
    trio.run(main)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    queries = resolver.queries
    return {"wall_s": wall, "cpu_s": cpu, "queries": queries, "qps": queries / wall,
            "cpu_us_per_query": 1e6 * cpu / queries, "domains_per_s": len(domains) / wall,
            "dns_status": statuses}


def run_bare(queries: list[tuple[str, str]], server: tuple[str, int], concurrency: int) -> dict:
    import dns.asyncresolver
    import dns.exception
    import dns.nameserver
    import trio

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(*server)]
    resolver.timeout, resolver.lifetime, resolver.cache = 2.0, 6.0, None
    resolver.use_edns(0, 0, 1232)
    failures = 0

    async def worker(items) -> None:
        nonlocal failures
        for name, rdtype in items:
            try:
                await resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            except dns.exception.DNSException:
                failures += 1      # NXDOMAIN and the like: an answer all the same

    async def main() -> None:
        iterator = iter(queries)
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker, iterator)

    cpu, wall = time.process_time(), time.perf_counter()
    trio.run(main)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "queries": len(queries),
            "qps": len(queries) / wall, "cpu_us_per_query": 1e6 * cpu / len(queries),
            "exceptions": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="domains in flight (survey scan's default) = bare workers")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        started = time.monotonic()
        zone, domains = build_zone(args.domains, args.seed, Path(tmp))
        c.log(f"zone of {len(domains)} domains in {time.monotonic() - started:.1f} s")
        with c.nsd(zone) as server:
            c.log(f"nsd on {server[0]}:{server[1]}")
            asked: list[tuple[str, str]] = []
            warm = run_stage(domains[: min(2000, len(domains))], server, args.concurrency)
            c.log(f"warm-up: {warm['qps']:.0f} q/s")
            stage_runs, bare_runs = [], []
            for i in range(args.rounds):
                stage = run_stage(domains, server, args.concurrency,
                                  record=asked if i == 0 else None)
                if i == 0:
                    queries = list(asked)
                bare = run_bare(queries, server, args.concurrency)
                c.log(f"round {i + 1}: stage {stage['qps']:.0f} q/s "
                      f"({stage['cpu_us_per_query']:.0f} us CPU/q), bare {bare['qps']:.0f} q/s "
                      f"({bare['cpu_us_per_query']:.0f} us CPU/q)")
                stage_runs.append(stage)
                bare_runs.append(bare)
    stage_qps = c.median([r["qps"] for r in stage_runs])
    bare_qps = c.median([r["qps"] for r in bare_runs])
    ratio = stage_qps / bare_qps
    c.emit("dns_stage", settings={"domains": len(domains), "concurrency": args.concurrency,
                                  "rounds": args.rounds, "server": "nsd (Debian)",
                                  "queries_per_round": len(queries)},
           stage={"qps_median": stage_qps,
                  "cpu_us_per_query_median": c.median([r["cpu_us_per_query"]
                                                       for r in stage_runs]),
                  "runs": stage_runs},
           bare_dnspython={"qps_median": bare_qps,
                           "cpu_us_per_query_median": c.median([r["cpu_us_per_query"]
                                                                for r in bare_runs]),
                           "runs": bare_runs},
           targets={"stage_rate_over_bare_loop": c.target(ratio, ">=", 0.7)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
