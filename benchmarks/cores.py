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

Each run is a child whose ``os.wait4`` rusage is the scan's whole CPU (the
Dask workers are its descendants, waited for when the cluster closes); the
world's CPU is read from /proc before and after; the load average before and
after each run is reported beside it (the machine is shared). From the
manifest: the rows written (every mode must write the same number) and, for
the cluster, each phase's seconds and the driver's own (the wall outside the
phases: starting the cluster, cutting the input into shards, the manifest).

Reported per mode: wall, scan CPU, CPU per domain, world CPU, speed-up over
``single`` (wall), and the serial share estimated from the 1- and N-process
walls by Amdahl's law, ``s = (N / speedup - 1) / (N - 1)``, with what that
gives for 16 processes, ``1 / (s + (1 - s) / 16)``. On a loopback world the
world itself shares the cores with the scan, so this share is an upper bound
for a machine whose servers are elsewhere. No targets: it measures.

    python benchmarks/cores.py [--domains 10000] [--modes single,local:1,local:2]
                               [--concurrency 200] [--world-processes 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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


def scan(directory: Path, mode: str, concurrency: int, members: list[int]) -> dict:
    n = mode.partition(":")[2]
    # local:1 is a one-worker Dask cluster (--processes 1 would be the plain scan)
    extra = ([] if mode == "single" else ["--dask", "local:1"] if n == "1"
             else ["--processes", n])
    load_before = os.getloadavg()
    world_before = sum(process_cpu(pid) for pid in members)
    with tempfile.TemporaryDirectory(prefix="bench-cores-") as tmp:
        out = Path(tmp) / "scan"
        c.log(f"scanning with {mode}")
        result = c.measured_scan(c.SURVEY + ["scan", "--world", str(directory), "--out",
                                             str(out), "--quiet", "--profile", "starttls",
                                             "--concurrency", str(concurrency), *extra],
                                 cwd=c.REPO)
        manifest = json.loads((out / "manifest.json").read_text())
    domains = manifest["counts"]["domains"]
    row = {"mode": mode, **result, "world_cpu_s": sum(process_cpu(p) for p in members)
           - world_before, "counts": manifest["counts"],
           "connections": manifest["stats"].get("connections"),
           "cpu_ms_per_domain": 1000 * result["cpu_s"] / max(domains, 1),
           "load_before": load_before, "load_after": os.getloadavg()}
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
    parser.add_argument("--concurrency", type=int, default=200,
                        help="domains in flight, all processes together")
    parser.add_argument("--modes", default="single,local:1,local:2",
                        help="comma-separated: single, local:N (survey scan --processes N)")
    parser.add_argument("--world-processes", type=int, default=1,
                        help="processes serving the world (survey world --processes)")
    args = parser.parse_args()

    directory = world_dir(args.domains, args.seed)
    world = c.serve_world(directory, "--processes", str(args.world_processes))
    try:
        members = world_pids(directory, world)
        runs = []
        for mode in args.modes.split(","):
            runs.append(scan(directory, mode, args.concurrency, members))
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
    c.emit("cores", settings={"domains": args.domains, "seed": args.seed,
                              "concurrency": args.concurrency, "modes": args.modes,
                              "world_processes": args.world_processes,
                              "cores": len(os.sched_getaffinity(0))},
           runs=runs, same_rows=same_rows, targets={})
    return 0


if __name__ == "__main__":
    sys.exit(main())
