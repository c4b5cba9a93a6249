"""Where a scan's CPU goes (issue 10: "profile first"), as JSON anyone can re-run.

Theory of operation
-------------------
A ``default`` world of ``--domains`` (10,000) domains is built (cached, as in
scale.py), served and warmed (asked every lookup once: it signs lazily);
``survey scan --world --profile starttls`` runs twice against it: once plain,
for the CPU per domain (``os.wait4``), and once under ``py-spy record --format
raw`` (a sampling profiler outside the process: the scanner is not
instrumented; each sample pauses it for a moment, so whole
stacks are read) for the shares. Each sample is a Python stack;
it is counted twice, once by *stage* (the first of our functions on the
stack that names a job: DNS, SMTP probe, MTA-STS fetch, certificate judging,
dataset writing, input reading) and once by *where the CPU is spent* (its
innermost frame: OpenSSL's handshake, socket system calls, the event loop,
the ``cryptography`` package, our own Python). ``ms_per_domain`` is a share
times the plain run's CPU per domain, so the two splits answer "what would
the scan cost if X were free?" against the 2 ms/domain target of scale.py.

No target of its own: it explains scale.py's ``cpu_ms_per_domain``.

    python benchmarks/profile.py [--domains 10000] [--rate 200] [--keep FILE]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import scale

# (stage, a substring of a frame "function (file:line)"): the first entry that matches
# any frame of a stack wins (certificates judged for an SMTP probe count as certificates).
STAGES = [
    ("certificates", "survey/certs.py"),
    ("dataset_writing", "survey/store/"),
    ("mta_sts_fetch", "fetch_policy (survey/"),
    ("smtp_probe", "ServerProber."),
    ("dns", "resolve_domain"),
    ("dns", "HostCache."),
    ("input", "survey/scan/targets.py"),
    ("scheduler", "unrolled_run"),        # trio between tasks: epoll, timers, rescheduling
    ("startup", "<frozen importlib"),
]
# (where, a substring of the innermost frame), first match wins.
LEAVES = [
    ("openssl_handshake", "do_handshake (ssl.py"),
    ("openssl_records", "(ssl.py"),
    ("socket_syscalls", "_nonblocking_helper"),
    ("socket_syscalls", "(trio/_socket.py"),
    ("socket_syscalls", "(socket.py"),
    ("event_loop", "(trio/"),
    ("event_loop", "(outcome/"),
    ("event_loop", "methods trio."),
    ("event_loop", "methods outcome."),
    ("imports", "<frozen importlib"),
    ("cryptography", "(cryptography/"),
    ("pyarrow_pandas", "(pyarrow/"),
    ("pyarrow_pandas", "(pandas/"),
    ("survey_python", "(survey/"),
    ("other_python", "("),
]


def py_spy() -> str:
    found = c.REPO / ".venv-peers" / "bin" / "py-spy"
    found = str(found) if found.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is missing (make bench installs it into .venv-peers)")
    return found


def classify(raw: Path) -> tuple[int, collections.Counter, collections.Counter]:
    """Samples, by stage and by innermost frame, from py-spy's raw (collapsed) output."""
    stages: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if not stack:                  # py-spy could not read this sample's stack
            stages["unreadable"] += n
            leaves["unreadable"] += n
            continue
        stages[next((name for name, mark in STAGES for frame in frames if mark in frame),
                    "other")] += n
        leaves[next((name for name, mark in LEAVES if mark in frames[-1]), "native")] += n
    return total, stages, leaves


def split(counter: collections.Counter, total: int, ms_per_domain: float) -> dict:
    return {name: {"share": round(n / total, 4), "ms_per_domain": round(n / total *
                                                                       ms_per_domain, 3)}
            for name, n in counter.most_common()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--keep", type=Path, help="also keep py-spy's raw output here")
    args = parser.parse_args()

    spy = py_spy()
    directory = scale.world_dir(args.domains, args.seed)
    world = c.serve_world(directory)
    try:
        scale.warm(directory, args.concurrency)    # the world's DNS answers signed once
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            tmp = Path(tmp)
            c.log("scanning plain")
            plain = scale.scan(directory, tmp / "plain", args.concurrency)
            c.log("scanning under py-spy")
            raw = tmp / "profile.txt"
            scan = scale.scan_command(directory, tmp / "spied", args.concurrency)
            subprocess.run([spy, "record", "--format", "raw", "--rate", str(args.rate),
                            "--output", str(raw), "--", *scan],
                           check=True, cwd=c.REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if args.keep:
                shutil.copyfile(raw, args.keep)
            total, stages, leaves = classify(raw)
    finally:
        c.stop(world, signal.SIGTERM, timeout=60)
    if not total:
        raise RuntimeError("py-spy recorded no samples")
    ms = plain["cpu_ms_per_domain"]
    c.emit("profile", settings={"domains": args.domains, "seed": args.seed,
                                "profile": "starttls", "concurrency": args.concurrency,
                                "py_spy_rate": args.rate},
           plain_scan={k: plain[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "domains",
                                             "servers", "connections", "dns_queries",
                                             "cpu_ms_per_domain", "cpu_ms_per_server")},
           samples=total, by_stage=split(stages, total, ms), by_where=split(leaves, total, ms),
           targets={})
    return 0


if __name__ == "__main__":
    sys.exit(main())
