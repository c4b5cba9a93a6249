"""Build a simulated mail Internet under .test (and serve it on loopback).

`survey world --domains N --seed S --profile NAME --out DIR` writes DIR/spec.json,
domains.csv (rank,domain), truth/ (Parquet ground truth), zones/ and ca.pem. With --serve it
then starts DNS, SMTP and HTTPS on loopback, writes DIR/world.json once every
server is ready, and runs until SIGINT or SIGTERM. `--serve` without
--domains serves the world already in DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from survey.store.lock import LockError
from survey.testbed.generator import SCALES, ProfileError, behaviour_shares
from survey.testbed.model import World

MAX_DOMAINS = 2_000_000     # about 300 MB a million while built (the 10M world took 1.5 GB)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domains", type=int, metavar="N",
                        help="number of domains (omit with --serve to serve DIR as it is)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--profile", default="default",
                        help="profile name (survey/testbed/profiles) or path to a JSON "
                             "profile (default: default)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default",
                        help="timing scale: scanner thresholds the truth assumes "
                             "(fast = short timeouts for tests)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="world directory")
    parser.add_argument("--serve", action="store_true",
                        help="start the servers and run until SIGINT/SIGTERM")
    parser.add_argument("--dns-port", type=int, help="DNS port (default: the spec's, 53)")
    parser.add_argument("--smtp-port", type=int, help="SMTP port (default: the spec's, 25)")
    parser.add_argument("--https-port", type=int, help="HTTPS port (default: the spec's, 443)")
    parser.add_argument("--any-ports", action="store_true",
                        help="let the kernel pick free ports (world.json names them)")
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="connections each of SMTP and HTTPS serves at once (default "
                             "4096; more need a higher open-files limit)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="serve from N processes (default 1): the kernel hands each "
                             "connection to the process of its destination address, so "
                             "per-address behaviour stays exact; for scans holding "
                             "thousands of connections (benchmarks/slow.py). "
                             "--max-connections is per process")
    parser.add_argument("--shares", action="store_true",
                        help="print the share of domains exercising each behaviour (JSON)")


def run(args: argparse.Namespace) -> int:
    from survey.testbed import serve

    out: Path = args.out
    if args.domains is not None:
        if not 0 <= args.domains <= MAX_DOMAINS:
            print(f"survey world: --domains must be between 0 and {MAX_DOMAINS:,} (a world "
                  "lives in one process's memory)", file=sys.stderr)
            return 2
        started = time.monotonic()
        try:
            world = serve.build_world(out, domains=args.domains, seed=args.seed,
                                      profile=args.profile, scale=args.scale)
        except (ProfileError, LockError) as exc:
            print(f"survey world: {exc}", file=sys.stderr)
            return 2
        print(f"survey world: {len(world.domains)} domains, {len(world.smtp_servers)} SMTP "
              f"addresses, {len(world.policy_hosts)} policy hosts, built in "
              f"{time.monotonic() - started:.1f} s -> {out}", file=sys.stderr)
    elif not (out / serve.SPEC).exists():
        print(f"survey world: {out / serve.SPEC} does not exist; give --domains N to build "
              "a world", file=sys.stderr)
        return 2
    else:
        world = None
    if args.shares:
        world = world or World.load(out / serve.SPEC)
        print(json.dumps(behaviour_shares(world), indent=1))
    if not args.serve:
        return 0
    ports = {"dns_port": args.dns_port, "smtp_port": args.smtp_port,
             "https_port": args.https_port}
    if args.any_ports:
        ports = {k: 0 if v is None else v for k, v in ports.items()}
    if args.processes < 1:
        print("survey world: --processes must be at least 1", file=sys.stderr)
        return 2
    return serve.serve_forever(out, max_connections=args.max_connections,
                               processes=args.processes, **ports)
