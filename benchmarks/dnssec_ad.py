"""Validating in the scanner vs trusting the AD bit of a local Unbound: agreement and cost.

A world with a fifth of its domains signed (every planted DNSSEC fault included; the
profile of benchmarks/dnssec.py) is served on loopback, and Unbound (started here, stopped
after; validating from the world's trust anchor, default cache) forwards everything to it.
The scan's DNS stage (survey.scan.resolve over the HostCache, TLSA lookups included) runs
through that Unbound three ways, each in a child process against a fresh Unbound (cold
cache, so each mode pays Unbound's work for its own queries):

* ``plain``       -- no DNSSEC status (``--no-dnssec``): the baseline;
* ``validating``  -- survey/net/dnssec.py asks with DO+CD and validates from the anchor
                     (the default);
* ``trust_ad``    -- ``--dnssec-trust-ad``: AD queries, SERVFAIL asked again with CD.

Reported per mode: the scanner's DNS queries and CPU per domain, Unbound's CPU per
domain (its /proc utime + stime), and for the two DNSSEC modes every lookup's status
side by side (MX, the two TXT lookups, each MX host's addresses and TLSA): the agreement
table ``validating status -> trust_ad status: count``.

Targets (ratios measured in the same run): every lookup agrees; trust_ad's scanner CPU
per domain <= validating's.

    python benchmarks/dnssec_ad.py [--domains 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import PYTHON, REPO, SURVEY, emit, free_port, log, serve_world, stop, target
from dnssec import fifth_profile

CHILD = r'''
import json, sys, time, trio
from survey.dnssec import Anchors
from survey.net.dns import HostCache, Resolver
from survey.net.dnssec import AdTrust, Validator
from survey.scan.resolve import resolve_domain
from survey.scan.targets import Target

world, mode, port, out = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
names = [line.split(",")[1].strip() for line in open(world["domain_list"])]

async def main():
    resolver = Resolver([("127.0.0.1", port)], timeout=2, lifetime=6)
    anchors = Anchors.from_file(world["dnssec_anchor"])
    lookups = {"plain": resolver, "validating": Validator(resolver, anchors),
               "trust_ad": AdTrust(resolver, anchors)}[mode]
    cache = HostCache(lookups)
    limiter = trio.CapacityLimiter(50)
    statuses = {}

    async def one(i, name):
        async with limiter:
            dns = await resolve_domain(Target(name, name, i + 1), lookups, cache)
        statuses[f"{name} MX"] = [dns.mx_dnssec, dns.mx_dnssec_reason]
        statuses[f"{name} _mta-sts TXT"] = [dns.mta_sts.dnssec, dns.mta_sts.dnssec_reason]
        statuses[f"{name} _smtp._tls TXT"] = [dns.tlsrpt.dnssec, dns.tlsrpt.dnssec_reason]
        for mx in dns.mx:
            statuses[f"{name} {mx.host} A/AAAA"] = [mx.dnssec, mx.dnssec_reason]
            if mx.tlsa is not None:
                statuses[f"{name} {mx.host} TLSA"] = [mx.tlsa.dnssec, mx.tlsa.dnssec_reason]

    cpu, wall = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i, name in enumerate(names):
            nursery.start_soon(one, i, name)
    json.dump(statuses, open(out, "w"))
    print(json.dumps({"domains": len(names), "queries": resolver.queries,
                      "cpu_s": time.process_time() - cpu,
                      "wall_s": time.perf_counter() - wall}))

trio.run(main)
'''


def unbound_conf(directory: Path, port: int, world: dict) -> Path:
    conf = directory / "unbound.conf"
    conf.write_text(f"""server:
    interface: 127.0.0.1
    port: {port}
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    trust-anchor-file: "{world['dnssec_anchor']}"
    local-zone: "test." nodefault
    module-config: "validator iterator"
    access-control: 127.0.0.0/8 allow
    num-threads: 1
forward-zone:
    name: "."
    forward-addr: {world['resolver']['ip']}@{world['resolver']['port']}
""")
    return conf


def start_unbound(directory: Path, world: dict) -> tuple[subprocess.Popen, int]:
    import dns.exception
    import dns.message
    import dns.query

    port = free_port()
    conf = unbound_conf(directory, port, world)
    proc = subprocess.Popen([shutil.which("unbound") or "/usr/sbin/unbound", "-d", "-c",
                             str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query("version.server.", "TXT", rdclass="CH"),
                          "127.0.0.1", timeout=0.5, port=port)
            return proc, port
        except (OSError, dns.exception.Timeout):
            if proc.poll() is not None:
                raise RuntimeError(f"unbound exited: {proc.stderr.read().decode()}") from None
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("unbound did not start")


def cpu_of(pid: int) -> float:
    """A live process's CPU seconds (user + system) from /proc (clock ticks)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage(world_json: Path, mode: str, directory: Path) -> tuple[dict, dict]:
    """One mode against a fresh Unbound: (figures, {lookup: status})."""
    world = json.loads(world_json.read_text())
    udir = directory / f"unbound-{mode}"
    udir.mkdir(exist_ok=True)
    proc, port = start_unbound(udir, world)
    try:
        before = cpu_of(proc.pid)
        out = directory / f"statuses-{mode}.json"
        done = subprocess.run([PYTHON, "-c", CHILD, str(world_json), mode, str(port),
                               str(out)], cwd=REPO, capture_output=True, text=True,
                              timeout=1800, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures["unbound_cpu_s"] = cpu_of(proc.pid) - before
    finally:
        stop(proc)
    return figures, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="survey-bench-dnssec-ad-") as tmp:
        tmp_path = Path(tmp)
        world = tmp_path / "world"
        subprocess.run(SURVEY + ["world", "--domains", str(args.domains), "--seed",
                                 str(args.seed), "--scale", "fast", "--profile",
                                 str(fifth_profile(tmp_path)), "--out", str(world)],
                       cwd=REPO, check=True, capture_output=True, timeout=1800)
        proc = serve_world(world)
        try:
            log("warming the world's signatures (validating, through Unbound)")
            stage(world / "world.json", "validating", tmp_path)
            runs, statuses = {}, {}
            for mode in ("plain", "validating", "trust_ad"):
                runs[mode], statuses[mode] = stage(world / "world.json", mode, tmp_path)
                log(mode, runs[mode])
        finally:
            stop(proc)
    n = args.domains
    ours = {k: v[0] for k, v in statuses["validating"].items()}
    theirs = {k: v[0] for k, v in statuses["trust_ad"].items()}
    table = Counter(f"{ours.get(k)} -> {theirs.get(k)}" for k in sorted(set(ours) | set(theirs)))
    agree = sum(c for pair, c in table.items() if pair.split(" -> ")[0] == pair.split(" -> ")[1])
    disagreements = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    # what each mode says about the lookups that are not secure or insecure
    reasons = {mode: dict(Counter(f"{s} ({r})" for s, r in statuses[mode].values()
                                  if s in ("bogus", "indeterminate")))
               for mode in ("validating", "trust_ad")}
    results = {
        **{f"{mode}_queries_per_domain": round(r["queries"] / n, 3) for mode, r in runs.items()},
        **{f"{mode}_cpu_ms_per_domain": round(1000 * r["cpu_s"] / n, 3)
           for mode, r in runs.items()},
        **{f"{mode}_unbound_cpu_ms_per_domain": round(1000 * r["unbound_cpu_s"] / n, 3)
           for mode, r in runs.items()},
        "lookups_compared": sum(table.values()),
        "lookups_agreeing": agree,
        "agreement_table": dict(sorted(table.items())),
        "reasons": reasons,
        "disagreements": disagreements[:50],
        "raw": runs,
    }
    log({k: v for k, v in results.items() if k not in ("raw", "disagreements")})
    targets = {
        "all_lookups_agree": target(agree / max(1, sum(table.values())), ">=", 1.0),
        "trust_ad_cpu_vs_validating": target(
            results["trust_ad_cpu_ms_per_domain"] / results["validating_cpu_ms_per_domain"],
            "<=", 1.0),
    }
    emit("dnssec_ad", settings=vars(args), results=results, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
