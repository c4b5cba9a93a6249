"""End to end at scale (issue 10, item 4).

1. A ``default`` world of ``--domains`` (100,000) domains, ``--scale fast``,
   served by ``survey world --serve``; ``survey scan --world`` with the
   ``starttls`` profile runs as a child process, and ``os.wait4`` gives that
   process's own CPU and peak RSS (the world's server, NSD and the benchmark
   itself are not counted). Reported: wall, scanner CPU per domain and per
   server (servers = distinct (ip, port) probed, from the manifest), peak RSS.
2. The DNS-only stage (``survey.scan.resolve`` over ``survey.net.dns`` at the
   scan's concurrency, as ``survey scan`` runs it) in a child process against
   NSD serving the world's zone, at ``--domains`` and at ``--dns-domains``
   (1,000,000): the full world does not fit a 2-core, 24 GB machine next to
   its own servers, and the DNS stage is where a scan's memory could grow
   with its input. Target: peak RSS at 1M at most 1.2x the figure at 100k.

``--compare-rev REV`` (repeatable) also runs part 1 with the scanner of
another git revision (``git archive REV``), side by side against the same
running world: the before/after figures of an optimisation, measured in one
run. Before the first scan the world is asked every lookup once (unmeasured):
it signs its DNS answers lazily, and the first scan would otherwise pay for
that (on a loaded machine with timeouts, so less work at less CPU).
``--skip-tree`` leaves out the working tree's scanner (compare two commits
while others edit the tree). ``--rounds N`` scans with every scanner in turn
N times and reports each one's median run (and every run's CPU per domain):
CPU time grows with the machine's load (two cores shared, caches and
hyperthreads contended), which can change more between two runs than an
optimisation does.

``--world-profile realistic --world-scale default`` scans a realistic-latency
world (benchmarks/realistic.py's) instead, and ``--politeness internet`` scans
with the Internet politeness realistic.py gives explicitly (``--rate 50
--dns-rate 200 --per-ip-spacing 1 --retry-delay 30``; ``--world`` alone relaxes
it for a lab, ``lab``, the default): the same comparisons, like with like.
``--politeness lab,dns-rate,rate,internet`` scans with each set in turn (each
scanner, each round), so what one politeness setting costs is measured in one
run; ``dns-rate`` and ``rate`` are ``--dns-rate 200`` and ``--rate 50`` alone.
Every scan also reports ``sleeps`` (the child's voluntary context switches:
how often it waited for the network or a timer) per domain.

Targets: scanner CPU <= 2 ms per domain; peak RSS <= 500 MB; RSS(1M DNS) <=
1.2 x RSS(100k DNS).

    python benchmarks/scale.py [--domains 100000] [--dns-domains 1000000]
                               [--skip-dns] [--skip-scan] [--compare-rev REV]
                               [--world-profile realistic --world-scale default]
                               [--politeness lab,internet]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

# Politeness flags by name. internet: benchmarks/realistic.py's ``defaults`` less the
# concurrency, survey scan's Internet politeness, which ``--world`` relaxes for a
# loopback lab (``lab``) unless it is given; dns-rate and rate: one of them alone.
POLITENESS: dict[str, tuple[str, ...]] = {
    "lab": (),
    "internet": ("--rate", "50", "--dns-rate", "200", "--per-ip-spacing", "1",
                 "--retry-delay", "30"),
    "dns-rate": ("--dns-rate", "200"),
    "rate": ("--rate", "50"),
}


def world_dir(domains: int, seed: int, profile: str = "default", scale: str = "fast") -> Path:
    """Build (once; cached across runs) a world: by default a fast-scale default world."""
    name = f"world-{domains}-{seed}"
    if (profile, scale) != ("default", "fast"):
        name += f"-{profile}-{scale}"
    return c.cached_world(name, domains, seed, "--scale", scale, "--profile", profile)


def scan_command(directory: Path, out: Path, concurrency: int,
                 politeness: tuple[str, ...] = ()) -> list[str]:
    """The scan every scale benchmark measures: the world, starttls, quiet."""
    return c.SURVEY + ["scan", "--world", str(directory), "--out", str(out), "--quiet",
                       "--profile", "starttls", "--concurrency", str(concurrency), *politeness]


def scan(directory: Path, out: Path, concurrency: int, source: Path | None = None,
         politeness: tuple[str, ...] = ()) -> dict:
    """One ``survey scan`` child with its own rusage; ``source``: another tree's scanner."""
    env = dict(os.environ)
    cwd = c.REPO
    if source is not None:
        env["PYTHONPATH"] = str(source)
        cwd = source
    result = c.measured_scan(scan_command(directory, out, concurrency, politeness),
                             cwd=cwd, env=env)
    manifest = json.loads((out / "manifest.json").read_text())
    counts, stats = manifest["counts"], manifest["stats"]
    domains, servers = counts["domains"], stats["servers"]
    return {**result, "domains": domains, "servers": servers,
            "connections": stats.get("connections"), "dns_queries": stats.get("dns_queries"),
            "policy_fetches": stats.get("policy_fetches"),
            "cpu_ms_per_domain": 1000 * result["cpu_s"] / domains,
            "cpu_ms_per_server": 1000 * result["cpu_s"] / max(servers, 1),
            "sleeps_per_domain": result["sleeps"] / domains,
            "domains_per_s": domains / result["wall_s"]}


def median_run(results: list[dict]) -> dict:
    """The run with the median CPU per domain, and every run's figure (``--rounds``)."""
    ordered = sorted(results, key=lambda r: r["cpu_ms_per_domain"])
    return {**ordered[(len(ordered) - 1) // 2],
            "rounds_cpu_ms_per_domain": [round(r["cpu_ms_per_domain"], 3) for r in results]}


# -- the DNS-only stage in a child --------------------------------------------------------

def dns_child(domains_file: str, ip: str, port: int, concurrency: int) -> None:
    """Child mode: run the DNS stage over the listed domains; print one JSON line."""
    import trio

    from survey.net.dns import HostCache, Resolver
    from survey.scan.resolve import resolve_domain
    from survey.scan.targets import read_targets

    resolver = Resolver([(ip, port)], timeout=2.0, lifetime=6.0, rate=None)
    cache = HostCache(resolver)
    count = 0

    async def one(target, limiter) -> None:
        nonlocal count
        try:
            await resolve_domain(target, resolver, cache)
            count += 1
        finally:
            limiter.release_on_behalf_of(target)

    async def main() -> None:
        limiter = trio.CapacityLimiter(concurrency)
        async with trio.open_nursery() as nursery:
            for target in read_targets(domains_file):
                await limiter.acquire_on_behalf_of(target)
                nursery.start_soon(one, target, limiter)

    trio.run(main)
    print(json.dumps({"domains": count, "queries": resolver.queries}))


def warm_child(world_json: str, concurrency: int) -> None:
    """Child mode: ask the served world every lookup a validating scan asks (unmeasured).

    The world signs its answers lazily and keeps them: without this the first scan
    of a run pays the world's signing (slower answers; on a loaded machine some
    lookups time out and that scan does less work), and ``--compare-rev``'s first
    revision looked cheaper than it was.
    """
    import trio

    from survey.dnssec import Anchors
    from survey.net.dns import HostCache, Resolver
    from survey.net.dnssec import Validator
    from survey.scan.resolve import resolve_domain
    from survey.scan.targets import read_targets

    world = json.loads(Path(world_json).read_text())
    resolver = Resolver([(world["resolver"]["ip"], world["resolver"]["port"])],
                        timeout=5.0, lifetime=15.0)
    lookups = Validator(resolver, Anchors.from_file(world["dnssec_anchor"]))
    cache = HostCache(lookups)

    async def one(target, limiter) -> None:
        try:
            dns = await resolve_domain(target, lookups, cache)
            if dns.mta_sts.sts is not None:
                await cache.addresses(f"mta-sts.{target.domain}")
        finally:
            limiter.release_on_behalf_of(target)

    async def main() -> None:
        limiter = trio.CapacityLimiter(concurrency)
        async with trio.open_nursery() as nursery:
            for target in read_targets(world["domain_list"]):
                await limiter.acquire_on_behalf_of(target)
                nursery.start_soon(one, target, limiter)

    trio.run(main)


def warm(directory: Path, concurrency: int) -> None:
    started = time.monotonic()
    subprocess.run([c.PYTHON, __file__, "--warm-child", str(directory / "world.json"),
                    str(concurrency)], check=True, cwd=c.REPO)
    c.log(f"world warmed (every DNS answer signed once) in {time.monotonic() - started:.0f} s")


def zone_child(domains: int, seed: int, directory: str) -> None:
    """Child mode: write a world's zone and domain list (the parent stays small)."""
    from survey.testbed import zones
    from survey.testbed.generator import generate

    world = generate(domains, seed, "default", scale="fast")
    zones.write_zones(world, directory)
    with open(Path(directory) / "domains.csv", "w") as fh:
        fh.writelines(f"{d.rank},{d.name}\n" for d in world.domains)


def dns_only(domains: int, seed: int, concurrency: int) -> dict:
    """Build the zone of a ``domains`` world, serve it with NSD, run the stage in a child.

    The world is generated in a child of its own: a forked child's peak RSS
    (``ru_maxrss``) counts the pages it shared with its parent until it exec'd,
    so the measured child must be forked from a small parent.
    """
    from survey.testbed import zones

    with tempfile.TemporaryDirectory(prefix="bench-scale-dns-") as tmp:
        tmp = Path(tmp)
        started = time.monotonic()
        subprocess.run([c.PYTHON, __file__, "--zone-child", str(domains), str(seed), str(tmp)],
                       check=True, cwd=c.REPO)
        c.log(f"{domains}-domain zone in {time.monotonic() - started:.0f} s")
        with c.nsd(tmp / zones.ZONE_FILE) as (ip, port):
            result = c.run_measured([c.PYTHON, __file__, "--dns-child",
                                     str(tmp / "domains.csv"), ip, str(port),
                                     str(concurrency)], cwd=c.REPO,
                                    stdout=subprocess.PIPE)
    child = json.loads(result.pop("stdout") or "{}")
    if result["returncode"] != 0 or child.get("domains") != domains:
        raise RuntimeError(f"the DNS stage child failed: {result}, {child}")
    return {**result, **child, "cpu_us_per_domain": 1e6 * result["cpu_s"] / domains}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--zone-child":
        zone_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--warm-child":
        warm_child(sys.argv[2], int(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--dns-child":
        # The child's stdout is a pipe run_measured does not read: keep it short.
        dns_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--dns-domains", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="domains in flight, for the scans and the DNS stage alike "
                             "(survey scan's Internet default)")
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--skip-dns", action="store_true")
    parser.add_argument("--compare-rev", metavar="REV", action="append", default=[],
                        help="also scan with the scanner of this git revision (repeatable)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="scan with each scanner in turn this many times; each reports "
                             "its median run (a shared machine's load changes between runs)")
    parser.add_argument("--skip-tree", action="store_true",
                        help="do not scan with the working tree's scanner (needs --compare-rev)")
    parser.add_argument("--world-profile", default="default",
                        help="the scanned world's profile (realistic: Internet latency)")
    parser.add_argument("--world-scale", choices=("fast", "default"), default="fast",
                        help="the scanned world's timing scale (default: the real deadlines)")
    parser.add_argument("--politeness", default="lab",
                        help="comma-separated politeness sets to scan with, each in turn: "
                             + "; ".join(f"{k}: {' '.join(v) or '--world relaxed'}"
                                         for k, v in POLITENESS.items()))
    args = parser.parse_args()
    politeness = args.politeness.split(",")
    if unknown := set(politeness) - set(POLITENESS):
        parser.error(f"unknown --politeness {', '.join(sorted(unknown))}")

    out: dict = {"settings": {"domains": args.domains, "dns_domains": args.dns_domains,
                              "seed": args.seed, "profile": "starttls",
                              "world_profile": args.world_profile, "scale": args.world_scale,
                              "politeness": {p: POLITENESS[p] for p in politeness}}}
    targets = {}
    if not args.skip_scan:
        directory = world_dir(args.domains, args.seed, args.world_profile, args.world_scale)
        world = c.serve_world(directory)
        try:
            warm(directory, args.concurrency)
            with tempfile.TemporaryDirectory(prefix="bench-scale-scan-") as tmp:
                sources: list[tuple[str, Path | None]] = [
                    (rev, c.checkout(rev, Path(tmp) / f"src{i}"))
                    for i, rev in enumerate(args.compare_rev)]
                if not args.skip_tree:
                    sources.append(("this tree", None))
                # (label, source, politeness): one label per scanner with one politeness set
                scanners = [(label if len(politeness) == 1 else f"{label} / {p}", source,
                             POLITENESS[p]) for p in politeness for label, source in sources]
                every: dict[str, list[dict]] = {label: [] for label, _, _ in scanners}
                for round_ in range(args.rounds):
                    for i, (label, source, flags) in enumerate(scanners):
                        c.log(f"scanning with {label} (round {round_ + 1} of {args.rounds})")
                        every[label].append(scan(directory, Path(tmp) / f"out{round_}-{i}",
                                                 args.concurrency, source, flags))
                runs = {label: median_run(results) for label, results in every.items()}
        finally:
            c.stop(world, signal.SIGTERM, timeout=60)
        now = runs[scanners[-1][0] if len(politeness) == 1 else
                   f"{sources[-1][0]} / {politeness[0]}"]
        out["scan"] = runs
        targets["cpu_ms_per_domain"] = c.target(now["cpu_ms_per_domain"], "<=", 2.0)
        targets["peak_rss_mb"] = c.target(now["peak_rss_mb"], "<=", 500)
    if not args.skip_dns:
        small = dns_only(args.domains, args.seed, args.concurrency)
        c.log(f"DNS stage at {args.domains}: {small['peak_rss_mb']:.0f} MB")
        large = dns_only(args.dns_domains, args.seed, args.concurrency)
        c.log(f"DNS stage at {args.dns_domains}: {large['peak_rss_mb']:.0f} MB")
        out["dns_only"] = {str(args.domains): small, str(args.dns_domains): large}
        targets["dns_rss_large_over_small"] = c.target(
            large["peak_rss_mb"] / small["peak_rss_mb"], "<=", 1.2)
    c.emit("scale", **out, targets=targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
