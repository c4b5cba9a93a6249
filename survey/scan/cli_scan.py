"""Scan a list of domains: MX hosts, STARTTLS, TLS, certificates, MTA-STS and TLSRPT.

Writes a Parquet dataset (domains, mx, hosts, certs) and manifest.json to --out.
Each mail server is contacted once however many domains use it. Defaults are
polite to the real Internet; point --world at a testbed world to scan the
simulated Internet on loopback instead.

examples:
  survey scan top-1m.csv --out data/scans/2026-11 --ehlo-name scanner.example.org
  survey scan --world data/worlds/w1 --out data/scans/w1      (the world's own list)
  survey scan list.txt --out data/scans/x --resume            (continue after a crash)
  survey scan lab.txt --testbed --resolver 127.0.0.53:5353 --smtp-port 2525 \\
      --ca-file lab-ca.pem --out data/scans/lab               (your own lab on loopback)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from survey.certs import CertError
from survey.net.dns import parse_resolver
from survey.net.guard import PolicyError
from survey.net.smtp import Timeouts
from survey.scan.cluster.driver import run_distributed
from survey.scan.config import ConfigError, ScanConfig, apply_world, load_world
from survey.scan.enumeration import DEFAULT_BUDGET, PROFILES
from survey.scan.progress import Progress
from survey.scan.run import ScanError, run_scan
from survey.scan.targets import InputError, parse_shard
from survey.store.location import location


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("input", nargs="?", type=Path,
                   help="domain list: one name a line, or Tranco 'rank,domain' CSV; "
                        "gzip is detected; '#' starts a comment (default with --world: "
                        "the world's list)")
    p.add_argument("--out", type=location, required=True, metavar="DIR",
                   help="scan directory to write (new or empty; an existing scan only with "
                        "--resume): a path, or an fsspec URL such as s3://bucket/scans/x "
                        "(with that filesystem's package installed, e.g. s3fs)")
    where = p.add_argument_group("where to scan")
    where.add_argument("--world", metavar="DIR",
                       help="a running testbed world (its directory or world.json):"
                       " its resolver, ports, CA and timeouts; loopback only")
    where.add_argument("--testbed", action="store_true",
                       help="scan a lab of your own on loopback (e.g. real mail servers you "
                            "run): loopback-only destination policy; needs a loopback "
                            "--resolver")
    where.add_argument("--resolver", action="append", metavar="IP[:PORT]",
                       help="DNS resolver (repeatable; default: the system's). Use a local "
                            "recursive resolver such as Unbound for large scans")
    where.add_argument("--smtp-port", type=int, help="SMTP port (default 25)")
    where.add_argument("--https-port", type=int, help="HTTPS port for MTA-STS (default 443)")
    where.add_argument("--ca-file", action="append", type=Path, default=[], metavar="PEM",
                       help="extra trust anchors (PEM), besides Mozilla's roots (repeatable)")
    where.add_argument("--blocklist", type=Path, metavar="FILE",
                       help="file of CIDRs never to contact (opt-outs); one a line")
    what = p.add_argument_group("what to measure")
    what.add_argument("--profile", choices=list(PROFILES),
                      help="starttls: one connection per server (banner, EHLO, STARTTLS, "
                           "handshake, chain). versions (default): plus one hello per TLS "
                           "version, SSLv3..TLS 1.3. ciphers: plus every supported (version, "
                           "suite) pair and the server's preference, about one connection "
                           "per suite (default with --world: the world's own profile)")
    what.add_argument("--budget", type=int,
                      help=f"connections per server for the versions/ciphers hellos, the "
                           f"starttls probe included (default {DEFAULT_BUDGET}); a server that "
                           f"needs more gets probe_status 'partial'")
    what.add_argument("--ehlo-name", help="name sent in EHLO; make it a host whose web page "
                      "explains the scan and how to opt out (default: this host's FQDN)")
    what.add_argument("--limit", type=int, help="scan only the first N domains")
    what.add_argument("--shard", help="scan shard K of N (K/N, 1-based, by a stable hash)")
    polite = p.add_argument_group("politeness")
    polite.add_argument("--concurrency", type=int,
                        help="domains in flight (default 200; 50 with --world)")
    polite.add_argument("--per-ip", type=int,
                        help="connections to one address at a time (default 1)")
    polite.add_argument("--per-ip-spacing", type=float,
                        help="seconds between connections to one address (default 1)")
    polite.add_argument("--rate", type=float,
                        help="new connections per second, all servers together (default 50)")
    polite.add_argument("--dns-rate", type=float,
                        help="DNS queries per second (default 200)")
    polite.add_argument("--retries", type=int,
                        help="extra attempts after a temporary refusal (default 2)")
    polite.add_argument("--retry-delay", type=float,
                        help="seconds before the first retry, doubling (default 30)")
    timing = p.add_argument_group("timeouts (seconds)")
    timing.add_argument("--connect-timeout", type=float, help="TCP connect (default 10)")
    timing.add_argument("--greeting-timeout", type=float, help="the whole greeting (default 30)")
    timing.add_argument("--command-timeout", type=float, help="each reply (default 30)")
    timing.add_argument("--tls-timeout", type=float, help="the whole handshake (default 30)")
    timing.add_argument("--dns-timeout", type=float, help="one DNS query (default 5)")
    timing.add_argument("--policy-timeout", type=float,
                        help="the whole MTA-STS policy fetch (default 60, RFC 8461 §3.3)")
    run = p.add_argument_group("running")
    run.add_argument("--resume", action="store_true",
                     help="continue the scan in --out after a crash or Ctrl-C")
    run.add_argument("--dask", metavar="SCHEDULER",
                     help="run on a Dask cluster: a scheduler address (tcp://host:8786), or "
                          "local:N for N worker processes on this machine. Each server address "
                          "belongs to one worker at a time, so the per-IP limits hold across "
                          "the cluster; --out must be a path every worker can write; "
                          "--concurrency and the rates are totals for the whole cluster")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--batch-rows", type=int, default=5000,
                     help="rows per committed batch of part files (default 5000)")


def build_config(args: argparse.Namespace) -> ScanConfig:
    world = load_world(args.world) if args.world else None
    source = args.input or (Path(world["domain_list"]) if world else None)
    if source is None:
        raise ConfigError("give a domain list (or --world to scan a world's own list)")
    profile = args.profile or (world["scanner"].get("profile") if world else None)
    config = ScanConfig(input=source, out=args.out, ca_files=list(args.ca_file),
                        profile=profile or ScanConfig.profile, resume=args.resume,
                        blocklist=args.blocklist, batch_rows=args.batch_rows)
    if world:
        apply_world(config, world)
    if args.testbed:
        config.mode = "testbed"
    if args.resolver:
        try:
            config.resolvers = [parse_resolver(r) for r in args.resolver]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    explicit = {"smtp_port": args.smtp_port, "https_port": args.https_port,
                "ehlo_name": args.ehlo_name, "limit": args.limit,
                "concurrency": args.concurrency, "per_ip": args.per_ip,
                "per_ip_spacing": args.per_ip_spacing, "rate": args.rate,
                "dns_rate": args.dns_rate, "retries": args.retries,
                "retry_delay": args.retry_delay, "dns_timeout": args.dns_timeout,
                "budget": args.budget,
                "policy_timeout": args.policy_timeout}
    for name, value in explicit.items():
        if value is not None:
            setattr(config, name, value)
    t = config.timeouts
    config.timeouts = Timeouts(
        connect=args.connect_timeout or t.connect, greeting=args.greeting_timeout or t.greeting,
        command=args.command_timeout or t.command, tls=args.tls_timeout or t.tls)
    if args.shard:
        try:
            config.shard = parse_shard(args.shard)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    config.check()
    return config


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        if args.dask:
            manifest = run_distributed(config, args.dask, verbose=not args.quiet)
        else:
            manifest = trio.run(run_scan, config, Progress(enabled=not args.quiet))
    except (ConfigError, ScanError, InputError, PolicyError, CertError) as exc:
        print(f"survey scan: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:              # e.g. an --out that cannot be created or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"survey scan: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nsurvey scan: interrupted; committed rows are kept. Continue with:\n"
              f"  survey scan {args.input or ''} --out {args.out} --resume"
              + (f" --world {args.world}" if args.world else "")
              + (f" --dask {args.dask}" if args.dask else ""), file=sys.stderr)
        return 130
    if not manifest["counts"]["domains"]:
        print(f"survey scan: warning: {config.input} held no domain to scan", file=sys.stderr)
    if not args.quiet:
        print(f"dataset: {config.out}  (manifest.json, domains/ mx/ hosts/ certs/)")
    return 0
