"""How long a scan takes when the servers answer like the Internet (issue 21, item 1).

A ``realistic`` world (survey/testbed/profiles/realistic.json: round-trip times,
greeting delays, postscreen-style pauses, dead addresses that cost the connect
timeout, tarpits, cold-cache DNS delays, each with its source in the profile) at
the **default** scale, so every deadline is the scanner's real one (10 s
connect, 30 s greeting, 5 s DNS), is scanned with ``--profile starttls`` at
each ``--sizes`` (10,000, 50,000 and 100,000 domains) under two settings:

  * ``defaults``: the scanner's Internet politeness, given explicitly because
    ``--world`` would otherwise relax it for a loopback lab: ``--concurrency
    200 --rate 50 --dns-rate 200 --per-ip-spacing 1 --retry-delay 30``;
  * ``tuned``: the README's tuned settings, ``--concurrency 1000 --rate 200
    --dns-rate 1000`` (politeness per address unchanged);
  * ``light`` (only with ``--only``): the defaults at ``--concurrency 50``, for
    the in-flight time per domain when CPU is not the limit.

Each run is one ``survey scan`` child (``os.wait4``: its own CPU, not the
world's), against a world served by ``survey world --serve --max-connections
6000`` (so the world is never the limit on open connections). Reported per
run: wall, scanner CPU per domain, connections, DNS queries, servers, host
statuses (``connect_timeout`` counts the dead addresses), the scan's agreement
with the truth (``survey score``: a spurious timeout shows here), the load average
before and after (the machine is shared: ``uptime`` with every figure). Then
the extrapolation check: a line through the two smallest sizes (wall = fixed +
per-domain x domains) predicts the largest; target within 10%, for the wall and
for the work (connections, DNS queries; CPU seconds reported beside them). On
a shared machine the wall follows the load: the scanner's share of a core
(``cpu_share_of_a_core``) moved from 0.21 to 0.37 between two runs here.

A run that does not fit the time you have can be left out (``--only
defaults:10000,tuned:50000``); ``--from-json`` merges earlier runs' JSON
objects, so sizes measured one at a time still get the extrapolation.

    python benchmarks/realistic.py [--sizes 10000,50000,100000] [--only SETTING:SIZE,...]
                                   [--from-json FILE ...] [--seed 1] [--scan-profile versions]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

SETTINGS = {
    "defaults": ["--concurrency", "200", "--rate", "50", "--dns-rate", "200",
                 "--per-ip-spacing", "1", "--retry-delay", "30"],
    "tuned": ["--concurrency", "1000", "--rate", "200", "--dns-rate", "1000",
              "--per-ip-spacing", "1", "--retry-delay", "30"],
    # the defaults with a quarter of the domains in flight: the scanner needs so little
    # CPU that even a shared machine's share of a core keeps up, and the wall measures
    # the latency (Little's law: in-flight seconds per domain <= 50 x wall / domains)
    "light": ["--concurrency", "50", "--rate", "50", "--dns-rate", "200",
              "--per-ip-spacing", "1", "--retry-delay", "30"],
}
MAX_CONNECTIONS = 6000


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def world_dir(domains: int, seed: int) -> Path:
    """Build (once; cached across runs) a realistic world.

    The cache is per version of the testbed (its code and profiles: the truth is
    written at build time, and a scanner newer than a cached truth would disagree).
    """
    digest = hashlib.sha256()
    testbed = c.REPO / "survey" / "testbed"
    for path in sorted([*testbed.rglob("*.py"), *testbed.rglob("*.json"),
                        c.REPO / "survey" / "vocabulary.py"]):
        digest.update(path.read_bytes())
    version = digest.hexdigest()[:8]
    return c.cached_world(f"realistic-{domains}-{seed}-{version}", domains, seed,
                          "--profile", "realistic")


def scan(directory: Path, out: Path, setting: str, profile: str = "starttls") -> dict:
    cmd = c.SURVEY + ["scan", "--world", str(directory), "--out", str(out), "--quiet",
                      "--profile", profile, *SETTINGS[setting]]
    before = uptime()
    result = c.measured_scan(cmd, cwd=c.REPO)
    manifest = json.loads((out / "manifest.json").read_text())
    counts, stats = manifest["counts"], manifest["stats"]
    domains = counts["domains"]
    return {**result, "command": " ".join(["survey", *cmd[3:]]),
            "uptime_before": before, "uptime_after": uptime(),
            "domains": domains, "servers": stats.get("servers"),
            "connections": stats.get("connections"), "dns_queries": stats.get("dns_queries"),
            "host_statuses": host_statuses(out),
            "truth": agreement(out, directory),
            "cpu_ms_per_domain": 1000 * result["cpu_s"] / domains,
            "cpu_share_of_a_core": result["cpu_s"] / result["wall_s"],
            "in_flight_s_per_domain": concurrency(setting) * result["wall_s"] / domains,
            "wall_s_per_1000_domains": 1000 * result["wall_s"] / domains}


def concurrency(setting: str) -> int:
    flags = SETTINGS[setting]
    return int(flags[flags.index("--concurrency") + 1])


def host_statuses(out: Path) -> dict[str, int]:
    from survey.store import read_pandas

    hosts = read_pandas(out, "hosts")
    return dict(collections.Counter(hosts["status"].astype(str)))


EXAMPLES = 10


def agreement(out: Path, directory: Path) -> dict:
    """``survey score`` of the run: the truth must hold whatever the timing (no spurious
    timeouts); disagreements counted by table and column."""
    from survey.testbed.score import score

    result = score(out, directory)
    by_column = collections.Counter(f"{d['table']}.{d['column']}" for d in result.disagreements)
    # a few of the cells themselves: the scan's directory is gone when the JSON is read
    return {"ok": result.ok, "disagreements": len(result.disagreements),
            "by_column": dict(by_column.most_common(10)),
            "examples": result.disagreements[:EXAMPLES]}


def extrapolate(runs: dict[str, dict[str, dict]]) -> dict:
    """Per setting and figure: a line through the two smallest sizes, against the largest.

    The wall is what the issue asks for; on a shared machine it follows the load (the
    scanner's share of a core), so CPU seconds, connections and DNS queries are
    checked the same way: the work a size costs, whatever the machine did meanwhile.
    """
    out: dict = {}
    for setting, by_size in runs.items():
        sizes = sorted(int(s) for s in by_size)
        if len(sizes) < 3:
            out[setting] = {"measured_sizes": sizes, "note": "needs three sizes"}
            continue
        (n1, n2), n3 = sizes[:2], sizes[-1]
        out[setting] = {"sizes": [n1, n2, n3]}
        for key in ("wall_s", "cpu_s", "connections", "dns_queries"):
            v1, v2, v3 = (by_size[str(n)][key] for n in (n1, n2, n3))
            slope = (v2 - v1) / (n2 - n1)
            fixed = v1 - slope * n1
            predicted = fixed + slope * n3
            out[setting][key] = {"fixed": fixed, "per_domain": slope, "predicted": predicted,
                                 "measured": v3, "error": abs(predicted - v3) / v3,
                                 "at_1m": fixed + slope * 1_000_000}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--only", help="SETTING:SIZE pairs to run (comma-separated); none: "
                                       "run nothing, merge --from-json")
    parser.add_argument("--from-json", action="append", default=[], type=Path,
                        help="merge the runs of an earlier output of this script")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scan-profile", choices=("starttls", "versions"), default="starttls",
                        help="the scan's --profile (versions: one more hello per TLS version)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = [(s, n) for n in sizes for s in ("defaults", "tuned")]
    if args.only == "none":       # only merge --from-json runs and check the extrapolation
        wanted = []
    elif args.only:
        wanted = [(pair.split(":")[0], int(pair.split(":")[1])) for pair in args.only.split(",")]
    runs: dict[str, dict[str, dict]] = {s: {} for s in SETTINGS}
    for path in args.from_json:
        earlier = json.loads(path.read_text())
        for setting, by_size in earlier.get("runs", {}).items():
            runs.setdefault(setting, {}).update(by_size)
    # A run that fails (a world that cannot be served, a scan that dies) must not take the
    # hours of runs before it along: the JSON is printed with what was measured and why it
    # stopped, and the exit status says it failed.
    failed = None
    try:
        for size in sorted({n for _, n in wanted}):
            directory = world_dir(size, args.seed)
            world = c.serve_world(directory, "--max-connections", str(MAX_CONNECTIONS))
            try:
                for setting in SETTINGS:
                    if (setting, size) not in wanted:
                        continue
                    with tempfile.TemporaryDirectory(prefix="bench-realistic-") as tmp:
                        c.log(f"{setting} at {size}: {uptime()}")
                        run = scan(directory, Path(tmp) / "scan", setting, args.scan_profile)
                        c.log(f"{setting} at {size}: wall {run['wall_s']:.0f} s, "
                              f"{run['cpu_ms_per_domain']:.2f} ms CPU/domain, {uptime()}")
                        runs[setting][str(size)] = run
            finally:
                c.stop(world, signal.SIGTERM, timeout=120)
    except Exception as exc:        # noqa: BLE001 - reported in the JSON, then exit 1
        failed = f"{type(exc).__name__}: {exc}"
        c.log(f"stopped: {failed}")
    check = extrapolate(runs)
    targets = {f"extrapolation_error_{s}_{key}": c.target(v[key]["error"], "<=", 0.10)
               for s, v in check.items() if "sizes" in v
               for key in ("wall_s", "connections", "dns_queries")}
    c.emit("realistic", settings={"profile": "realistic", "scale": "default",
                                  "scan_profile": args.scan_profile, "seed": args.seed,
                                  "world_max_connections": MAX_CONNECTIONS,
                                  "flags": SETTINGS},
           runs=runs, extrapolation=check, targets=targets, failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
