"""All cores of one machine (issue 21, item 4): one scan in 1 and N processes, side by side.

Theory of operation
-------------------
A ``default`` world of ``--domains`` (10,000) domains at ``--scale fast``
(the world scale.py scans), served by ``survey world --serve`` from
``--world-processes`` processes (default 1). The same ``survey scan --world
--profile starttls --concurrency C`` runs once per ``--modes`` entry, one
after another against the same running world:

  * ``single``: one scan process (``survey scan``);
  * ``local:N``: ``survey scan --processes N`` -- a Dask local cluster of N
    worker processes (scan/cluster/), the per-address politeness global
    (``local:1``: ``--dask local:1``, the cluster's own overhead on one worker).

Every mode must do the same work, or its wall and CPU compare nothing: each
scan is scored against the world's truth (``survey score``), and the target
is that no mode disagrees in a single cell. The world is the measuring
instrument and runs on the same cores: when its event loop falls behind, a
server's greeting or a DNS answer misses the fast scale's one-second
deadlines and the scan records a timeout the truth does not have (issue 21:
at 10,000 domains a ``--processes 2`` scan wrote 1,039 certificate rows where
one process wrote 4,266: most of its servers "timed out" before the world had
even accepted their connections, its connection log shows). So the scans run
``--scan-nice`` (5) steps nicer than the world, which then gets the CPU
first, and ``--concurrency`` is the 50 that ``survey scan --world`` chooses
for a one-process world (at 200 the cluster's servers phase holds 200
handshakes at once, and the world fell behind even so). ``--keep
DIR`` keeps each mode's scan and score for a look at what disagreed.

Each run is a child whose ``os.wait4`` rusage is the scan's whole CPU (the
Dask workers are its descendants, waited for when the cluster closes); the
world's CPU is read from /proc before and after; the load average before and
after each run is reported beside it (the machine is shared). From the
manifest: the rows written (every mode should write the same number) and, for
the cluster, each phase's seconds and the driver's own (the wall outside the
phases: starting the cluster, cutting the input into shards, the manifest).

Reported per mode: wall, scan CPU, CPU per domain, world CPU, speed-up over
``single`` (wall), and the serial share estimated from the 1- and N-process
walls by Amdahl's law, ``s = (N / speedup - 1) / (N - 1)``, with what that
gives for 16 processes, ``1 / (s + (1 - s) / 16)``. On a loopback world the
world itself shares the cores with the scan, so this share is an upper bound
for a machine whose servers are elsewhere.

    python benchmarks/cores.py [--domains 10000] [--modes single,local:1,local:2]
                               [--concurrency 50] [--world-processes 1]
                               [--scan-nice 5] [--keep DIR]
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
from slow import process_cpu, world_pids


def world_dir(domains: int, seed: int) -> Path:
    """Build (once; cached) a fast-scale default world of its own (not scale.py's: a
    world is served by one command at a time)."""
    return c.cached_world(f"cores-{domains}-{seed}", domains, seed, "--scale", "fast")


def scored(out: Path, directory: Path, where: Path) -> dict:
    """``survey score`` of one scan against the world's truth: whether every value agrees,
    and the disagreeing cells per column (a timed-out server is a wrong ``hosts.status``)."""
    result = subprocess.run(c.SURVEY + ["score", str(out), "--world", str(directory), "--out",
                                        str(where)], cwd=c.REPO, capture_output=True,
                            text=True, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"survey score exited with {result.returncode}: "
                           f"{result.stderr[-2000:]}")
    report = json.loads((where / "score.json").read_text())
    wrong = {f"{table}.{column}": s["total"] - s["agree"]
             for table, t in report["tables"].items() for column, s in t["columns"].items()
             if s["total"] != s["agree"]}
    return {"ok": report["ok"], "disagreeing_cells": sum(wrong.values()),
            "worst": dict(sorted(wrong.items(), key=lambda kv: -kv[1])[:5])}


def scan(directory: Path, mode: str, concurrency: int, members: list[int],
         scan_nice: int, keep: Path | None) -> dict:
    n = mode.partition(":")[2]
    # local:1 is a one-worker Dask cluster (--processes 1 would be the plain scan)
    extra = ([] if mode == "single" else ["--dask", "local:1"] if n == "1"
             else ["--processes", n])
    load_before = os.getloadavg()
    world_before = sum(process_cpu(pid) for pid in members)
    with tempfile.TemporaryDirectory(prefix="bench-cores-") as tmp:
        out = keep / mode.replace(":", "-") if keep else Path(tmp) / "scan"
        c.log(f"scanning with {mode}")
        result = c.measured_scan(c.SURVEY + ["scan", "--world", str(directory), "--out",
                                             str(out), "--quiet", "--profile", "starttls",
                                             "--concurrency", str(concurrency), *extra],
                                 cwd=c.REPO, preexec_fn=lambda: os.nice(scan_nice))
        world_cpu = sum(process_cpu(p) for p in members) - world_before
        load_after = os.getloadavg()
        manifest = json.loads((out / "manifest.json").read_text())
        score = scored(out, directory, out.parent / f"{out.name}-score")
    domains = manifest["counts"]["domains"]
    row = {"mode": mode, **result, "world_cpu_s": world_cpu, "counts": manifest["counts"],
           "score": score, "connections": manifest["stats"].get("connections"),
           "cpu_ms_per_domain": 1000 * result["cpu_s"] / max(domains, 1),
           "load_before": load_before, "load_after": load_after}
    cluster = manifest.get("cluster")
    if cluster:
        phases = {name: state.get("seconds", 0.0) for name, state in cluster["phases"].items()}
        row["phases_s"] = phases
        row["driver_s"] = result["wall_s"] - sum(phases.values())
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50,
                        help="domains in flight, all processes together (default 50, the cap "
                             "survey scan --world sets itself: the cluster's servers phase "
                             "holds that many addresses at once, and at 200 a one-process "
                             "world fell behind)")
    parser.add_argument("--modes", default="single,local:1,local:2",
                        help="comma-separated: single, local:N (survey scan --processes N)")
    parser.add_argument("--world-processes", type=int, default=1,
                        help="processes serving the world (survey world --processes)")
    parser.add_argument("--scan-nice", type=int, default=5,
                        help="how much nicer the scans run than the world (0: the same)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each mode's scan and score in DIR/<mode> (new directories)")
    args = parser.parse_args()

    directory = world_dir(args.domains, args.seed)
    world = c.serve_world(directory, "--processes", str(args.world_processes))
    try:
        members = world_pids(directory, world)
        runs = []
        for mode in args.modes.split(","):
            runs.append(scan(directory, mode, args.concurrency, members, args.scan_nice,
                             args.keep))
            time.sleep(1)
    finally:
        c.stop(world, signal.SIGTERM, timeout=60)
    by_mode = {r["mode"]: r for r in runs}
    base = by_mode.get("single") or by_mode.get("local:1")
    for r in runs:
        n = 1 if r["mode"] == "single" else int(r["mode"].partition(":")[2])
        if base is None or n == 1:
            continue
        speedup = base["wall_s"] / r["wall_s"]
        serial = min(1.0, max(0.0, (n / speedup - 1) / (n - 1)))
        r.update(speedup=speedup, amdahl_serial_share=serial,
                 amdahl_speedup_16=1 / (serial + (1 - serial) / 16))
    same_rows = len({json.dumps(r["counts"], sort_keys=True) for r in runs}) == 1
    wrong = max(r["score"]["disagreeing_cells"] for r in runs)
    c.emit("cores", settings={"domains": args.domains, "seed": args.seed,
                              "concurrency": args.concurrency, "modes": args.modes,
                              "world_processes": args.world_processes,
                              "scan_nice": args.scan_nice,
                              "cores": len(os.sched_getaffinity(0))},
           runs=runs, same_rows=same_rows,
           targets={"disagreeing_cells_worst_mode": c.target(wrong, "<=", 0)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
