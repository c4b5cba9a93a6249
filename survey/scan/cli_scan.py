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
import math
import shlex
import sys
from pathlib import Path

import trio

from survey.certs import CertError
from survey.interrupts import INTERRUPTED, ctrl_c_deferred, interrupted, leaf
from survey.net.dns import ResolverSilent, parse_resolver
from survey.net.guard import PolicyError
from survey.net.smtp import Timeouts
from survey.scan.cluster.driver import run_distributed
from survey.scan.config import ConfigError, ScanConfig, apply_world, load_world
from survey.scan.enumeration import DEFAULT_BUDGET, PROFILES
from survey.scan.progress import Progress
from survey.scan.run import ScanError, run_scan
from survey.scan.targets import InputError, parse_shard
from survey.store.location import location_arg
from survey.store.lock import LockError
from survey.store.writer import pandas_unloaded

# survey/cli.py: when run() returns, the datasets and the manifest are written, synced and
# closed, the lock released, a cluster shut down: the program may end without teardown.
EXIT_AT_ONCE = True


def _number(text: str, kind: type, *, minimum: float, strict: bool) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(
            f"{text} must be {'greater than' if strict else 'at least'} {minimum:g}")
    return value


def positive(text: str) -> float:
    """Seconds or a rate: finite and > 0 (no 0-means-unlimited for politeness)."""
    return _number(text, float, minimum=0, strict=True)


def non_negative(text: str) -> float:
    return _number(text, float, minimum=0, strict=False)


def count(text: str) -> int:
    """A count of at least 1."""
    return int(_number(text, int, minimum=1, strict=False))


def zero_or_more(text: str) -> int:
    return int(_number(text, int, minimum=0, strict=False))


def port(text: str) -> int:
    value = int(_number(text, int, minimum=1, strict=False))
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (1-65535)")
    return value


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("input", nargs="?", type=Path,
                   help="domain list: one name a line, or Tranco 'rank,domain' CSV; "
                        "gzip is detected; '#' starts a comment (default with --world: "
                        "the world's list)")
    p.add_argument("--out", type=location_arg, required=True, metavar="DIR",
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
    where.add_argument("--smtp-port", type=port, help="SMTP port (default 25)")
    where.add_argument("--https-port", type=port, help="HTTPS port for MTA-STS (default 443)")
    where.add_argument("--ca-file", action="append", type=Path, default=[], metavar="PEM",
                       help="extra trust anchors (PEM), besides Mozilla's roots (repeatable)")
    where.add_argument("--dnssec-anchor", type=Path, metavar="FILE",
                       help="DNSSEC trust anchors: DS or DNSKEY records in zone-file form "
                            "(default: the IANA root KSKs shipped with survey, "
                            "survey/data/root-anchors.zone, with its source; with --world: "
                            "the world's own root). Every lookup gets a DNSSEC status, "
                            "validated by the scanner itself: the --resolver must pass DNSSEC "
                            "records through (DO and CD bits; Unbound and BIND do, some "
                            "forwarders strip them: the statuses then say "
                            "indeterminate/no_dnssec_records, never insecure, and DANE "
                            "never applies)")
    where.add_argument("--dnssec-trust-ad", action="store_true",
                       help="take each lookup's DNSSEC status from the --resolver's AD bit "
                            "(AD: secure; SERVFAIL with data under CD: bogus, reason "
                            "resolver_bogus; no AD: insecure) instead of validating in the "
                            "scanner. Only for a validating resolver on this machine or a "
                            "path you trust: AD is unsigned, anyone on the path can set it. "
                            "It gives no reason for bogus, and it cannot tell insecure from "
                            "a resolver that does not validate (checked once on the trust "
                            "anchor's DNSKEY: resolver_not_validating). Default and "
                            "recommended: survey validates itself (any resolver that passes "
                            "DNSSEC records, reasons for bogus, no trust in the path). Both "
                            "agree on every lookup of the interop lab; AD mode costs the DNS "
                            "stage 2.8 instead of 6.2 ms of scanner CPU and 5.2 instead of "
                            "6.3 queries per domain (benchmarks/dnssec_ad.py, docs/dane.md)")
    where.add_argument("--no-dnssec", action="store_true",
                       help="do not validate DNSSEC. Validation costs the DNS stage about "
                            "3.5x its CPU and 1.3x its queries (benchmarks/dnssec.py, 1,000 "
                            "domains: 1.5 -> 5.4 ms and 4.8 -> 6.2 queries per domain); "
                            "without it the DNSSEC, TLSA, dane and sender columns stay null "
                            "and the report says DANE was not measured, never 0")
    where.add_argument("--blocklist", type=Path, metavar="FILE",
                       help="file of CIDRs never to contact (opt-outs); one a line")
    what = p.add_argument_group("what to measure")
    what.add_argument("--profile", choices=list(PROFILES),
                      help="starttls: one connection per server (banner, EHLO, STARTTLS, "
                           "handshake, chain). versions (default): plus one hello per TLS "
                           "version, SSLv3..TLS 1.3. ciphers: plus every supported (version, "
                           "suite) pair and the server's preference, about one connection "
                           "per suite (default with --world: the world's own profile)")
    what.add_argument("--budget", type=count,
                      help=f"connections per server for the versions/ciphers hellos, the "
                           f"starttls probe included (default {DEFAULT_BUDGET}); a server that "
                           f"needs more gets probe_status 'partial'")
    what.add_argument("--ehlo-name", help="name sent in EHLO; make it a host whose web page "
                      "explains the scan and how to opt out (default: this host's FQDN)")
    what.add_argument("--ip-version", choices=("4", "6", "both"), default="both",
                      help="address families to contact (default both); addresses of a "
                           "family left out, or that this machine has no route for (read "
                           "from the kernel's routing table at start, in the manifest), "
                           "get a status saying so and are never contacted")
    what.add_argument("--limit", type=count, help="scan only the first N domains")
    what.add_argument("--shard", help="scan shard K of N (K/N, 1-based, by a stable hash)")
    polite = p.add_argument_group("politeness")
    polite.add_argument("--concurrency", type=count,
                        help="domains in flight (default 200; 50 with --world)")
    polite.add_argument("--conversations", type=count,
                        help="connections past their greeting at once, all processes "
                             "together (default 256 per process): when more greetings come "
                             "together, the rest wait for a turn before EHLO, and the "
                             "deadlines after the greeting start with the turn")
    polite.add_argument("--per-ip", type=count,
                        help="connections to one address at a time (default 1)")
    polite.add_argument("--per-ip-spacing", type=non_negative,
                        help="seconds between connections to one address, enumeration "
                             "hellos included (default 1; 0 only for a loopback lab: "
                             "--testbed or --world)")
    polite.add_argument("--rate", type=positive,
                        help="new connections per second, all servers together (default 50; "
                             "there is no unlimited)")
    polite.add_argument("--dns-rate", type=positive,
                        help="DNS queries per second (default 200; there is no unlimited)")
    polite.add_argument("--retries", type=zero_or_more,
                        help="extra attempts after a temporary refusal (default 2)")
    polite.add_argument("--retry-delay", type=positive,
                        help="seconds before the first retry, doubling (default 30)")
    timing = p.add_argument_group("timeouts (seconds)")
    timing.add_argument("--connect-timeout", type=positive, help="TCP connect (default 10)")
    timing.add_argument("--greeting-timeout", type=positive, help="the whole greeting (default 30)")
    timing.add_argument("--command-timeout", type=positive, help="each reply (default 30)")
    timing.add_argument("--tls-timeout", type=positive, help="the whole handshake (default 30)")
    timing.add_argument("--dns-timeout", type=positive,
                        help="one DNS query (default 5); a lookup ends after three times this")
    timing.add_argument("--policy-timeout", type=positive,
                        help="the whole MTA-STS policy fetch (default 60, RFC 8461 §3.3)")
    run = p.add_argument_group("running")
    run.add_argument("--resume", action="store_true",
                     help="continue the scan in --out after a crash or Ctrl-C; the input "
                          "list and the settings that change rows (profile, shard, limit, "
                          "budget, ports, trust anchors, timeouts, retries) must be the ones "
                          "the scan started with")
    run.add_argument("--force", action="store_true",
                     help="with --resume: continue even where those settings differ (the "
                          "manifest records every run and what changed)")
    run.add_argument("--dask", metavar="SCHEDULER",
                     help="run on a Dask cluster: a scheduler address (tcp://host:8786), or "
                          "local:N for N worker processes on this machine. Each server address "
                          "belongs to one worker at a time, so the per-IP limits hold across "
                          "the cluster; --out must be a path every worker can write; "
                          "--concurrency and the rates are totals for the whole cluster")
    run.add_argument("--processes", type=count, metavar="N",
                     help="use N processes of this machine (N > 1: a Dask local cluster, "
                          "the same as --dask local:N; needs the dask extra). Each server "
                          "address belongs to one process at a time, so the per-IP limits "
                          "hold across them; --concurrency and the rates are totals. "
                          "Resume with the same option")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--batch-rows", type=count, default=5000,
                     help="rows per committed batch of part files (default 5000)")


def build_config(args: argparse.Namespace) -> ScanConfig:
    world = load_world(args.world) if args.world else None
    source = args.input or (Path(world["domain_list"]) if world else None)
    if source is None:
        raise ConfigError("give a domain list (or --world to scan a world's own list)")
    profile = args.profile or (world["scanner"].get("profile") if world else None)
    config = ScanConfig(input=source, out=args.out, ca_files=list(args.ca_file),
                        profile=profile or ScanConfig.profile, resume=args.resume,
                        force=args.force, ip_version=args.ip_version,
                        blocklist=args.blocklist, batch_rows=args.batch_rows)
    if world:
        apply_world(config, world)
    if args.testbed:
        config.mode = "testbed"
    if args.dnssec_anchor:
        config.dnssec, config.dnssec_anchor = True, args.dnssec_anchor
    if args.no_dnssec:
        config.dnssec = False
    if args.dnssec_trust_ad:
        config.dnssec_trust_ad = True
    if args.resolver:
        try:
            config.resolvers = [parse_resolver(r) for r in args.resolver]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    explicit = {"smtp_port": args.smtp_port, "https_port": args.https_port,
                "ehlo_name": args.ehlo_name, "limit": args.limit,
                "concurrency": args.concurrency, "conversations": args.conversations,
                "per_ip": args.per_ip,
                "per_ip_spacing": args.per_ip_spacing, "rate": args.rate,
                "dns_rate": args.dns_rate, "retries": args.retries,
                "retry_delay": args.retry_delay, "dns_timeout": args.dns_timeout,
                # a lookup asks up to three times (the default 5 s query, 15 s lookup)
                "dns_lifetime": None if args.dns_timeout is None else args.dns_timeout * 3,
                "budget": args.budget,
                "policy_timeout": args.policy_timeout}
    for name, value in explicit.items():
        if value is not None:
            setattr(config, name, value)
    t = config.timeouts

    def given(value: float | None, default: float) -> float:
        return default if value is None else value

    config.timeouts = Timeouts(
        connect=given(args.connect_timeout, t.connect),
        greeting=given(args.greeting_timeout, t.greeting),
        command=given(args.command_timeout, t.command), tls=given(args.tls_timeout, t.tls))
    if args.shard:
        try:
            config.shard = parse_shard(args.shard)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    config.check()
    return config


KNOWN_ERRORS = (ConfigError, ScanError, InputError, PolicyError, CertError, LockError,
                ResolverSilent)


def resume_command(argv: list[str] | None = None) -> str:
    """The command that continues this scan: the same one with --resume."""
    words = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in words:
        words.append("--resume")
    return "survey " + " ".join(shlex.quote(w) for w in words)


def cluster_address(args: argparse.Namespace) -> str | None:
    """The Dask scheduler to run on: --dask, or a local cluster for --processes N > 1."""
    processes = getattr(args, "processes", None)
    if processes is not None and args.dask:
        raise ConfigError("give --processes N (this machine) or --dask SCHEDULER, not both")
    if processes is not None and processes > 1:
        return f"local:{processes}"
    return args.dask


def run(args: argparse.Namespace) -> int:
    try:
        with ctrl_c_deferred():     # nor a half-read configuration (trust anchors)
            address = cluster_address(args)
            config = build_config(args)
        if address:
            manifest = run_distributed(config, address, verbose=not args.quiet)
        else:
            with pandas_unloaded():     # pyarrow converts the rows without it (store/writer.py)
                manifest = trio.run(run_scan, config, Progress(enabled=not args.quiet))
    except BaseException as exc:       # trio wraps what tasks raise in exception groups
        if interrupted(exc):
            print(f"\nsurvey scan: interrupted; committed rows are kept. Continue with:\n"
                  f"  {resume_command()}", file=sys.stderr)
            return INTERRUPTED
        known = leaf(exc, KNOWN_ERRORS)
        if known is not None:
            print(f"survey scan: {known}", file=sys.stderr)
            return 2
        oserror = leaf(exc, OSError)
        if isinstance(oserror, OSError) and not isinstance(oserror, BrokenPipeError):
            # e.g. an --out that cannot be created or written
            where = f": {oserror.filename}" if oserror.filename else ""
            print(f"survey scan: {oserror.strerror or oserror}{where}", file=sys.stderr)
            return 2
        raise
    if not manifest["counts"]["domains"]:
        print(f"survey scan: warning: {config.input} held no domain to scan", file=sys.stderr)
    if not args.quiet:
        print(f"dataset: {config.out}  (manifest.json, domains/ mx/ hosts/ certs/)")
    return 0
