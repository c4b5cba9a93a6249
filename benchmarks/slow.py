"""Slow servers (issue 10, item 5): waiting must cost connections, not time.

Theory of operation
-------------------
A world of ``--domains`` domains, each with one MX host on a server of its
own; ``--slow-share`` (80%) of the servers are ``slow_banner`` servers that
wait ``--delay`` (10 s) before their greeting, then talk STARTTLS and TLS as
normal. The others answer at once (``--fast-behaviour``, default
``no_starttls``: this benchmark is about waiting, handshake.py is about
handshakes). No MTA-STS, TLSRPT or DNS faults. The world is built by
``survey world`` from a profile this script writes (``own.slow_banner_delay``
sets the delay; the ``default`` scale's 30 s greeting timeout is 3x it), and
served with ``--max-connections`` above the scan's concurrency, from
``--world-processes`` processes (``survey world --processes``, default 2:
each address always served by the same one, testbed/members.py); a list
(``1,2``) scans once per entry, one after the other, in this run.

``survey scan --world --profile starttls --concurrency C --processes P``
runs as a child (its own CPU and peak RSS from ``os.wait4``, its cluster's
workers included); the world's CPU is read from /proc before and after (of
every member). ``--scan-processes`` P is 2 by default: the phased scan of a
Dask local cluster resolves every domain before it connects anywhere, so
it opens the connections to the slow servers within seconds, where one
process opens them one domain's DNS at a time over the whole CPU-bound
run (benchmarks/README.md, "Where the limit is"). Measured:
  * the most SMTP connections open at once, from the world's connection log
    (every connection of this scan, all addresses together), when that many
    first were (``peak_at_s`` after the scan started) and over how many
    seconds all its connections were opened (``opened_over_s``);
  * spurious timeouts: hosts rows whose status is a timeout (connect or read
    timeout, or a handshake not done in time) plus domains whose DNS timed
    out -- no server of this world is slower than the scan's deadlines, so
    every one is spurious; the hosts' by kind (status: what was late);
  * wall against the ideal ``delay x batches``, ``batches = ceil(slow
    servers / C)``: C domains in flight and a slot held ``delay`` seconds by
    each slow server. The scan cannot beat the CPU either: ``cpu_floor_s``
    is (scanner + world CPU) / cores, and ``wall_over_bound`` compares the
    wall with max(ideal, cpu_floor) to show whether the waits overlap.

Targets: connections open at once >= 5000; spurious timeouts == 0 (<= 0);
wall <= 1.5 x ideal. Loopback only; everything started is stopped.

Sizing (benchmarks/README.md, "Reading slow.py"). A slow server's
connection is open for ``delay`` plus its conversation, so 5,000 open at
once needs at least 5,000 slow servers reached within one ``delay`` of each
other, and ``C`` above 5,000. The default run: 8,000 domains, 80% slow
(6,400 slow servers, 1,600 fast ones among them), all 8,000 in flight.
The earlier default (25,000 domains, 20% slow, 6,000 in flight) had exactly
5,000 slow servers: it met the target only with every one of them open at
the same instant while 20,000 fast servers' conversations were served in
between, i.e. 25,000 connections opened within 10 s, where two shared cores
took minutes (3,852 at once). ``--domains 25000 --slow-share 0.2
--concurrency 6000`` measures that mixed case still.

When the slow servers greet, thousands of conversations fall due together;
the scanner serves them in turns (``survey scan --conversations``, 256 per
process; net/smtp.py, "Turns") so that its deadlines time the servers, not
its own queue. ``--conversations 100000,default`` scans without turns (a
number above the connections is never waited for) and with them.
Measured 2026-12-06 (README): the default run held 6,400 open at once, all
8,000 connections opened within 4.7 s, with 0 spurious timeouts (wall
131 s, load 2.0 to 7.7); ``--conversations 100000,default`` at load 5-10:
4,273 spurious timeouts without turns (3,785 handshakes, 488 EHLO replies
after TLS), 0 with them, 6,400 open at once either way.

    python benchmarks/slow.py [--domains 8000] [--slow-share 0.8] [--delay 10]
                              [--concurrency 8000] [--fast-behaviour no_starttls]
                              [--world-processes 2] [--scan-processes 2]
                              [--conversations default]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

TIMEOUT_STATUSES = {"connect_timeout", "read_timeout"}


def profile(share: float, delay: float, fast: str) -> dict:
    """The default profile cut down to one plain MX server per domain, ``share`` slow."""
    doc = json.loads((c.REPO / "survey/testbed/profiles/default.json").read_text())
    own = doc["own"]
    own.update(mx_kind={"mx": 1}, mx_count={"1": 1}, equal_preference=0, shared_host=0,
               host={"plain": 1}, tlsa=0, cert_kind={"valid": 1}, key_type={"ec": 1},
               tls_versions={"TLSv1.2 TLSv1.3": 1}, legacy={"share": 0},
               behaviour={fast: round(1 - share, 6), "slow_banner": share},
               slow_banner_delay=delay)
    doc.update(name="slow", providers=[], dns_status={"ok": 1}, truncate=0,
               description="benchmarks/slow.py: one plain MX server per domain, some slow")
    doc["mta_sts"].update(txt={"absent": 1}, absent_other=0)
    doc["tlsrpt"].update(txt={"absent": 1})
    return doc


def world_dir(args: argparse.Namespace) -> Path:
    name = (f"slow-{args.domains}-{args.slow_share:g}-{args.delay:g}-"
            f"{args.fast_behaviour}-{args.seed}")
    path = c.CACHE / name / "profile.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile(args.slow_share, args.delay, args.fast_behaviour)))
    return c.cached_world(name, args.domains, args.seed, "--profile", str(path))


def serve(directory: Path, max_connections: int, processes: int = 1) -> subprocess.Popen:
    return c.serve_world(directory, "--max-connections", str(max_connections),
                         "--processes", str(processes))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_at_once(log: Path, since: float,
                 service: str = "smtp") -> tuple[int, int, float | None, float | None]:
    """(connections of ``service`` that started after ``since``, most open at once, seconds
    after ``since`` when that many first were, seconds from the first opening to the
    last); the two times are None without a connection: not measured, not 0."""
    events = []
    with open(log, encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("service") == service and r["start"] >= since:
                events.append((r["start"], 1))
                events.append((r["end"], -1))
    events.sort()   # at equal times an end sorts first: touching intervals do not overlap
    now = peak = 0
    peak_at = since
    for at, delta in events:
        now += delta
        if now > peak:
            peak, peak_at = now, at
    if not events:
        return 0, 0, None, None
    starts = [at for at, delta in events if delta > 0]
    return len(events) // 2, peak, peak_at - since, max(starts) - min(starts)


def spurious_timeouts(out: Path) -> dict:
    from survey.store import open_dataset

    hosts = open_dataset(out, "hosts").to_table(columns=["status", "status_detail"]).to_pylist()
    domains = open_dataset(out, "domains").to_table(columns=["dns_status"]).to_pylist()
    statuses: dict[str, int] = {}
    for row in hosts:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    kinds: dict[str, int] = {}    # "status: what timed out", e.g. "read_timeout: no
    for row in hosts:             # complete STARTTLS reply"
        detail = row["status_detail"] or ""
        if row["status"] in TIMEOUT_STATUSES or "within" in detail:
            kind = f"{row['status']}: {detail.split(' within')[0]}"
            kinds[kind] = kinds.get(kind, 0) + 1
    hosts_timed_out = sum(kinds.values())
    dns_timed_out = sum(1 for r in domains if "timeout" in (r["dns_status"] or ""))
    return {"host_statuses": statuses, "hosts_timed_out": hosts_timed_out,
            "host_timeouts_by_kind": kinds, "dns_timed_out": dns_timed_out,
            "total": hosts_timed_out + dns_timed_out}


def world_pids(directory: Path, world: subprocess.Popen) -> list[int]:
    """The processes serving the world: its members (``--processes``), or the one."""
    info = json.loads((directory / "world.json").read_text())
    return (info.get("processes") or {}).get("pids") or [world.pid]


def one_run(args: argparse.Namespace, directory: Path, processes: int,
            conversations: str) -> dict:
    """Serve the world from ``processes`` processes, scan it (``survey scan
    --conversations``, unless ``default``), measure."""
    load_before = os.getloadavg()
    world = serve(directory, args.concurrency + 1024, processes)
    try:
        members = world_pids(directory, world)
        world_cpu = sum(process_cpu(pid) for pid in members)
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
            out = Path(tmp) / "scan"
            c.log(f"scanning {args.domains} domains, {args.concurrency} in flight, "
                  f"{args.scan_processes} scan and {processes} world process(es), "
                  f"conversations: {conversations}")
            turns = [] if conversations == "default" else ["--conversations", conversations]
            run = c.measured_scan(c.SURVEY + ["scan", "--world", str(directory), "--out",
                                              str(out), "--quiet", "--profile", "starttls",
                                              "--concurrency", str(args.concurrency),
                                              "--processes", str(args.scan_processes),
                                              *turns], cwd=c.REPO)
            world_cpu = sum(process_cpu(pid) for pid in members) - world_cpu
            timeouts = spurious_timeouts(out)
        time.sleep(0.5)   # the world logs a connection when its handler ends
        connections, peak, peak_at, opened_over = open_at_once(directory / "connections.jsonl",
                                                               started)
    finally:
        c.stop(world, signal.SIGTERM, timeout=60)
    return {"world_processes": processes, "conversations": conversations, "scan": run,
            "world_cpu_s": world_cpu,
            "connections": connections, "max_open_at_once": peak,
            "peak_at_s": peak_at, "opened_over_s": opened_over, "timeouts": timeouts,
            "load_before": load_before, "load_after": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=8000)
    parser.add_argument("--slow-share", type=float, default=0.8)
    parser.add_argument("--delay", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8000,
                        help="domains in flight (survey scan --concurrency)")
    parser.add_argument("--fast-behaviour", default="no_starttls",
                        help="SMTP behaviour of the servers that are not slow")
    parser.add_argument("--world-processes", default="2",
                        help="processes serving the world (survey world --processes); a "
                             "comma-separated list scans once per entry, one after another "
                             "in this run (targets: the last)")
    parser.add_argument("--scan-processes", type=int, default=2,
                        help="survey scan --processes (default 2; N > 1: the phased scan of a Dask "
                             "local cluster, its DNS phase done before any connection)")
    parser.add_argument("--conversations", default="default",
                        help="survey scan --conversations (default: the scanner's own, 256 per "
                             "process); a comma-separated list scans once per entry, e.g. "
                             "100000,default: without and with turns (a number above the "
                             "connections is never waited for)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    # The scanner and the world each hold a socket per open connection (plus DNS).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * args.concurrency + 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < args.concurrency + 1024:
        c.log(f"open-files limit {wanted} is low for {args.concurrency} connections")

    directory = world_dir(args)
    spec = json.loads((directory / "spec.json").read_text())
    slow = sum(1 for s in spec["smtp_servers"] if s["behaviour"] == "slow_banner")
    servers = len(spec["smtp_servers"])
    del spec
    load_before = os.getloadavg()
    runs = [one_run(args, directory, int(n), turns) for n in args.world_processes.split(",")
            for turns in args.conversations.split(",")]
    last = runs[-1]
    batches = math.ceil(slow / args.concurrency)
    ideal = args.delay * batches
    cores = len(os.sched_getaffinity(0))
    for r in runs:
        r["cpu_floor_s"] = (r["scan"]["cpu_s"] + r["world_cpu_s"]) / cores
        r["wall_over_bound"] = r["scan"]["wall_s"] / max(ideal, r["cpu_floor_s"])
    c.emit("slow", settings={"domains": args.domains, "servers": servers, "slow_servers": slow,
                             "delay_s": args.delay, "concurrency": args.concurrency,
                             "fast_behaviour": args.fast_behaviour, "seed": args.seed,
                             "cores": cores, "world_processes": args.world_processes,
                             "scan_processes": args.scan_processes,
                             "conversations": args.conversations},
           load_before=load_before, **{k: v for k, v in last.items() if k != "load_before"},
           runs=runs if len(runs) > 1 else None, batches=batches, ideal_s=ideal,
           targets={"open_at_once": c.target(last["max_open_at_once"], ">=", 5000),
                    "spurious_timeouts": c.target(last["timeouts"]["total"], "<=", 0),
                    "wall_over_ideal": c.target(last["scan"]["wall_s"] / ideal, "<=", 1.5)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
