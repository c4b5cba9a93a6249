"""What DNSSEC validation costs the scan's DNS stage: queries and CPU per domain, before/after.

Two worlds are built and served (`survey world --serve`, loopback): the default profile
(about 15% of its domains signed, with every planted fault) and the same profile with a
fifth of the domains signed. On each, the scan's DNS stage (survey.scan.resolve over the
HostCache) runs twice in a child process, side by side: ``plain`` (the resolver alone,
what a scan did before DNSSEC was measured, and what ``--no-dnssec`` does) and
``validating`` (every lookup through survey/net/dnssec.py from the world's trust anchor,
TLSA lookups for hosts with secure addresses included). Each child reports its own CPU
(process time) and the queries it sent; the validator also reports how many DS/DNSKEY
answers it asked (``chain_answers``, each once per scan) and how many zones it judged:
without the per-zone caches every signed lookup would ask its whole chain again.

Targets are ratios measured in the same run: validating queries per domain <= 1.6x plain
(the chain is asked once per zone, not per lookup); validating CPU per domain <= 5x plain.

    python benchmarks/dnssec.py [--domains 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, SURVEY, emit, log, serve_world, stop, target

CHILD = r'''
import json, sys, time, trio
from survey.dnssec import Anchors
from survey.net.dns import HostCache, Resolver
from survey.net.dnssec import Validator
from survey.scan.resolve import resolve_domain
from survey.scan.targets import Target

world, mode = json.load(open(sys.argv[1])), sys.argv[2]
names = [line.split(",")[1].strip() for line in open(world["domain_list"])]

async def main():
    resolver = Resolver([(world["resolver"]["ip"], world["resolver"]["port"])],
                        timeout=2, lifetime=6)
    validator = (Validator(resolver, Anchors.from_file(world["dnssec_anchor"]))
                 if mode == "validating" else None)
    lookups = validator or resolver
    cache = HostCache(lookups)
    limiter = trio.CapacityLimiter(50)

    async def one(i, name):
        async with limiter:
            await resolve_domain(Target(name, name, i + 1), lookups, cache)

    cpu, wall = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i, name in enumerate(names):
            nursery.start_soon(one, i, name)
    out = {"domains": len(names), "queries": resolver.queries,
           "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    if validator is not None:
        out["chain_answers"] = len(validator._answers.results)
        out["zones_judged"] = len(validator._zones.results)
    print(json.dumps(out))

trio.run(main)
'''


def fifth_profile(directory: Path) -> Path:
    profile = json.loads((REPO / "survey/testbed/profiles/default.json").read_text())
    profile["name"] = "fifth-signed"
    faults = sum(profile["dnssec"]["faults"].values())
    profile["dnssec"]["signed"] = round(0.2 - faults, 4)
    path = directory / "fifth-signed.json"
    path.write_text(json.dumps(profile))
    return path


def stage(world_json: Path, mode: str) -> dict:
    done = subprocess.run([PYTHON, "-c", CHILD, str(world_json), mode], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="survey-bench-dnssec-") as tmp:
        tmp_path = Path(tmp)
        for label, profile in (("default", "default"),
                               ("fifth_signed", str(fifth_profile(tmp_path)))):
            world = tmp_path / label
            subprocess.run(SURVEY + ["world", "--domains", str(args.domains), "--seed",
                                     str(args.seed), "--scale", "fast", "--profile", profile,
                                     "--out", str(world)], cwd=REPO, check=True,
                           capture_output=True, timeout=1800)
            spec = json.loads((world / "spec.json").read_text())
            signed = sum(1 for d in spec["domains"]
                         if any(t.startswith("dnssec:") and t != "dnssec:unsigned"
                                for t in d.get("traits", ())))
            proc = serve_world(world)
            try:
                log(f"{label}: warming the world's signatures")
                stage(world / "world.json", "validating")
                runs = {mode: stage(world / "world.json", mode)
                        for mode in ("plain", "validating")}
            finally:
                stop(proc)
            n = args.domains
            results[label] = {
                "signed_share": round(signed / n, 3),
                **{f"{mode}_queries_per_domain": round(r["queries"] / n, 3)
                   for mode, r in runs.items()},
                **{f"{mode}_cpu_ms_per_domain": round(1000 * r["cpu_s"] / n, 3)
                   for mode, r in runs.items()},
                "chain_answers": runs["validating"].get("chain_answers"),
                "zones_judged": runs["validating"].get("zones_judged"),
                "raw": runs,
            }
            log(label, {k: v for k, v in results[label].items() if k != "raw"})
    targets = {}
    for label, r in results.items():
        targets[f"{label}_queries_ratio"] = target(
            r["validating_queries_per_domain"] / r["plain_queries_per_domain"], "<=", 1.6)
        targets[f"{label}_cpu_ratio"] = target(
            r["validating_cpu_ms_per_domain"] / r["plain_cpu_ms_per_domain"], "<=", 5.0)
    emit("dnssec", settings=vars(args), results=results, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
