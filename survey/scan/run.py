"""A whole scan: targets in, a dataset directory out, resumable after any crash.

Theory of operation
-------------------
Domains stream from the input (never all in memory) into at most
``concurrency`` domain tasks. Each task resolves its domain (scan/resolve.py),
asks the ServerProber for each (MX host, address) -- every server is probed
once per scan, the first asker's task does it, the others wait -- fetches the
MTA-STS policy when the TXT record set is valid, judges certificates, and
hands its rows to the writer as one group. Host and certificate rows are
written when a server's probe ends.

Crash safety: rows are committed in batches whose ``domains`` part is written
last (store/writer.py). ``--resume`` discards uncommitted parts, skips domains
already committed, and does not write host or certificate rows again, so a
resumed scan has every domain exactly once. The manifest says ``partial``
until the scan ends, then ``complete``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import secrets
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import certifi
import trio

from survey import __version__
from survey.certs import CertError, facts
from survey.dnssec import DEFAULT_SKEW
from survey.interrupts import interrupted, leaf
from survey.net.dns import ResolverSilent
from survey.net.https import PolicyFetch
from survey.net.smtp import SmtpProbe
from survey.net.together import together
from survey.scan.collector import scan_thresholds
from survey.scan.config import ScanConfig
from survey.scan.enumeration import hello_profile
from survey.scan.progress import Progress
from survey.scan.resolve import resolve_domain
from survey.scan.seen import SeenNames
from survey.scan.servers import Attempted
from survey.scan.targets import Target, estimate_count, read_targets
from survey.scan.toolkit import Toolkit, domain_rows, now
from survey.scan.verdicts import host_row, invalid_input_row, sni_names
from survey.store import (
    DatasetWriter,
    count_rows,
    discard_uncommitted,
    open_dataset,
    read_manifest,
    write_manifest,
)
from survey.store.lock import LOCK_NAME, exclusive
from survey.store.manifest import ManifestError
from survey.vocabulary import DnsStatus, TxtStatus


class ScanError(Exception):
    """The scan cannot start (one line for the user)."""


def tool_stats(tools: Toolkit) -> dict[str, int]:
    """The counters of one scan process, for the manifest."""
    return {"servers": tools.prober.servers, "sni_probes": tools.prober.sni_probes,
            "connections": tools.politeness.connections,
            "dns_queries": tools.resolver.queries, "policy_fetches": tools.policy_fetches,
            "enumerated_servers": tools.enumerator.servers,
            "hello_probes": tools.enumerator.hellos,
            "partial_enumerations": tools.enumerator.partial}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Done:
    """What an earlier run of this scan already committed (for --resume).

    Domains grow with the input, so they are kept like the input's own
    de-duplication (on disk, read batch by batch); hosts and certificates
    grow with the servers and stay in sets.
    """

    domains: SeenNames = field(default_factory=SeenNames)
    hosts: set[tuple[str, int]] = field(default_factory=set)
    certs: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, out: Path) -> Done:
        def column(table: str, names: list[str]):
            return open_dataset(out, table).to_table(columns=names).to_pylist()

        done = cls(hosts={(r["ip"], r["port"]) for r in column("hosts", ["ip", "port"])},
                   certs={r["sha256"] for r in column("certs", ["sha256"])})
        for batch in open_dataset(out, "domains").to_batches(columns=["domain"]):
            for name in batch.column(0).to_pylist():
                done.domains.add(name)
        return done


def scan_manifest(config: ScanConfig, scan_id: str, state: str, started: datetime,
                  ended: datetime | None, stats: dict) -> dict:
    """The provenance of a scan (docs/design.md "The dataset contract"), either way it runs."""
    certifi_path = Path(certifi.where())
    config.routable_versions()          # measures the vantage's reach once, if not yet
    return {
        "scan_id": scan_id, "tool": "survey", "tool_version": __version__,
        "state": state, "started_at": started.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "command_line": sys.argv, "config": config.public(),
        "input": {"path": str(config.input), "name": config.input.name,
                  "sha256": sha256_file(config.input),
                  "size": config.input.stat().st_size},
        "resolvers": ([f"{ip}:{port}" for ip, port in config.resolvers]
                      if config.resolvers else "system"),
        "trust_store": {
            "mozilla": config.mozilla_roots,
            "certifi_version": certifi.__version__,
            "certifi_sha256": sha256_file(certifi_path) if config.mozilla_roots else None,
            "extra_ca_files": [{"path": str(p), "sha256": sha256_file(p)}
                               for p in config.ca_files]},
        "client_tls": {"ciphers": "ALL:COMPLEMENTOFALL:@SECLEVEL=0",
                       "versions": "TLSv1.0-TLSv1.3 (OpenSSL's minimum supported)",
                       "hellos": hello_profile() if config.profile != "starttls" else None},
        "vantage": {"hostname": socket.gethostname(), "platform": platform.platform(),
                    "ehlo_name": config.ehlo_name,
                    # the families it routes to (net/reach.py; a testbed: loopback only)
                    "reach": config.reach if config.mode == "internet" else "loopback",
                    "ip_version": config.ip_version},
        "dnssec": ({"mode": "resolver_ad" if config.dnssec_trust_ad else "validating",
                    "trust_anchors": str(config.dnssec_anchor) if config.dnssec_anchor
                                     else "IANA root KSKs (survey/data/root-anchors.zone)",
                    "anchors_sha256": sha256_file(config.dnssec_anchor)
                    if config.dnssec_anchor else None,
                    # signature dates: Unbound's val-sig-skew-min/-max (survey/dnssec.py Skew)
                    "signature_skew_s": [DEFAULT_SKEW.minimum, DEFAULT_SKEW.maximum]}
                   if config.dnssec else None),
        "destination_policy": {"mode": config.mode,
                               "blocklist": str(config.blocklist) if config.blocklist
                               else None},
        "world": ({k: config.world.get(k) for k in ("world_dir", "seed", "profile",
                                                      "domains")}
                  if config.world else None),
        "counts": {t: count_rows(config.out, t) for t in ("domains", "mx", "hosts", "certs")},
        "stats": stats,
    }


# Settings that change what rows a scan writes: a resume must keep them (or --force).
# Politeness (rates, concurrency, spacing) and the EHLO name change how fast, not what.
ROW_SETTINGS = ("profile", "shard", "limit", "budget", "mode", "ip_version", "smtp_port",
                "https_port",
                "mozilla_roots", "ca_files", "blocklist", "timeouts", "dns_timeout",
                "dns_lifetime", "policy_timeout", "retries", "dnssec_trust_ad")
# settings added since manifests were first written: an old manifest had their default
ADDED_SETTINGS = {"ip_version": "both", "dnssec_trust_ad": False}
# A world served again gets new ports (--any-ports): its identity is compared instead
WORLD_SET = {"smtp_port", "https_port"}


def scan_identity(manifest: dict) -> dict:
    """What a resume must match, from a manifest (old manifests included)."""
    config = manifest.get("config") or {}
    world = manifest.get("world")
    identity = {"input": (manifest.get("input") or {}).get("sha256")}
    for name in ROW_SETTINGS:
        if world and name in WORLD_SET:
            continue
        identity[name] = config.get(name, ADDED_SETTINGS.get(name))
    if world:
        identity["world"] = {k: world.get(k) for k in ("world_dir", "seed", "profile",
                                                        "domains")}
    return identity


def differences(previous: dict, current: dict) -> list[str]:
    """``name: before -> now`` for each setting that differs between two manifests."""
    before, now_ = scan_identity(previous), scan_identity(current)
    out = []
    for name in sorted(set(before) | set(now_)):
        if before.get(name) != now_.get(name):
            label = "input list (sha256)" if name == "input" else name
            a, b = before.get(name), now_.get(name)
            if name == "input":
                a, b = str(a)[:12], str(b)[:12]
            out.append(f"{label}: {a} -> {b}")
    return out


def run_entry(manifest: dict, *, state: str, changed: list[str] | None = None) -> dict:
    """One run of a scan as the manifest's ``runs`` list keeps it."""
    entry = {"started_at": manifest.get("started_at"), "ended_at": manifest.get("ended_at"),
             "state": state, "command_line": manifest.get("command_line"),
             "tool_version": manifest.get("tool_version"),
             "input_sha256": (manifest.get("input") or {}).get("sha256"),
             "config": manifest.get("config")}
    if changed:
        entry["forced_changes"] = changed
    return entry


def earlier_runs(previous: dict | None) -> list[dict]:
    """The runs an earlier manifest records (one synthesized for a manifest without ``runs``)."""
    if not previous:
        return []
    runs = previous.get("runs")
    if isinstance(runs, list):
        return [r for r in runs if isinstance(r, dict)]
    return [run_entry(previous, state=str(previous.get("state") or "unknown"))]


def with_runs(manifest: dict, previous: dict | None, run_state: str,
              changed: list[str] | None = None) -> dict:
    """The manifest of this run with every earlier run kept, the first start kept."""
    this = run_entry(manifest, state=run_state, changed=changed)
    if previous and previous.get("started_at"):
        manifest["started_at"] = previous["started_at"]
    manifest["runs"] = [*earlier_runs(previous), this]
    manifest["resumed_with_changes"] = bool(
        changed or (previous or {}).get("resumed_with_changes"))
    return manifest


def check_resume(previous: dict, config: ScanConfig, current: dict) -> list[str]:
    """The differences between a scan and its resume; ScanError unless --force."""
    changed = differences(previous, current)
    if changed and not config.force:
        raise ScanError(f"{config.out} was scanned with other settings; --resume would mix "
                        f"them ({'; '.join(changed)}). Resume with the same input and "
                        "options, or add --force to mix them deliberately")
    return changed


class Scan:
    def __init__(self, config: ScanConfig, progress: Progress | None = None) -> None:
        config.check()
        self.config = config
        self.progress = progress or Progress(enabled=False)
        self.tools = Toolkit(config, on_base=self._host_done, on_new_chain=self._write_certs)
        self.done = Done()
        self.writer: DatasetWriter | None = None
        self.previous: dict | None = None     # the manifest of the run this one resumes
        self.changed: list[str] = []          # settings a --force resume changed

    @property
    def out(self) -> DatasetWriter:
        """The open writer: rows only arrive while ``run`` holds it."""
        if self.writer is None:
            raise RuntimeError("no dataset writer: the scan is not running")
        return self.writer

    # -- rows of servers and certificates ---------------------------------------------

    def _write_certs(self, chain: list[bytes], shas: tuple[str, ...]) -> None:
        for der, sha in zip(chain, shas):
            if sha in self.done.certs:
                continue
            self.done.certs.add(sha)
            try:
                self.out.write("certs", facts(der).row(now()))
            except CertError:
                continue   # unparsable: its sha256 still appears in chain_sha256

    def _host_done(self, attempted: Attempted) -> None:
        probe = attempted.probe
        self.progress.server(probe.status)
        key = (probe.ip, probe.port)
        if key not in self.done.hosts:
            self.done.hosts.add(key)
            shas = list(self.tools.judge(probe.chain)[0]) if probe.chain else None
            self.out.write("hosts", host_row(probe, attempted.connections, shas, now(),
                                                attempted.enumeration, attempted.attempts))
        # the prober trims the probe for the domains still to come (servers.trimmed)

    # -- one domain ---------------------------------------------------------------------

    async def scan_domain(self, target: Target) -> None:
        if not target.valid:
            self.out.write("domains", invalid_input_row(target, now()))
            self.progress.domain(DnsStatus.INVALID_INPUT)
            return
        dns = await resolve_domain(target, self.tools.lookups, self.tools.cache)
        probes: dict[tuple[str, str], SmtpProbe | None] = {}
        fetch_box: list[PolicyFetch | None] = [None]

        def probe(mx_host: str, ip: str):
            async def job() -> None:
                probes[(mx_host, ip)] = await self.tools.prober.for_name(ip, mx_host)
            return job

        async def fetch() -> None:
            fetch_box[0] = await self.tools.fetch_policy(dns)

        # a job per server and the policy fetch, concurrently; no task for a fetch that
        # would return at once (no valid _mta-sts record), none at all for a single job
        jobs = [fetch] if dns.mta_sts.status == TxtStatus.VALID else []
        for mx in dns.mx:
            names = sni_names(dns, mx)    # the MX name, and a DANE sender's SNI
            for ip in mx.ips:
                for name in names:
                    if (name, ip) not in probes:
                        probes[(name, ip)] = None
                        jobs.append(probe(name, ip))
        await together(jobs)
        outcomes = {pair: self.tools.outcome(p) for pair, p in probes.items()}
        self.out.write_group(domain_rows(dns, outcomes, fetch_box[0],
                                            self.config.smtp_port))
        self.progress.domain(dns.dns_status)

    # -- the whole scan -------------------------------------------------------------------

    def _manifest(self, started: datetime, state: str, ended: datetime | None = None,
                  run_state: str | None = None) -> dict:
        manifest = scan_manifest(self.config, self.scan_id, state, started, ended,
                                 tool_stats(self.tools))
        return with_runs(manifest, self.previous, run_state or state, self.changed)

    def _prepare(self) -> None:
        out = self.config.out
        has_manifest = (out / "manifest.json").exists()
        if has_manifest and not self.config.resume:
            raise ScanError(f"{out} already holds a scan; use --resume to continue it, "
                            "or choose a new --out")
        if self.config.resume and has_manifest:
            try:
                previous = read_manifest(out)
            except ManifestError as exc:
                raise ScanError(str(exc)) from None
            if previous.get("cluster"):
                raise ScanError(f"{out} was scanned on a Dask cluster; continue it with "
                                "--resume and --dask")
            self.changed = check_resume(previous, self.config, scan_manifest(
                self.config, "", "partial", now(), None, {}))
            self.previous = previous
            self.scan_id = previous.get("scan_id") or secrets.token_hex(8)
            discard_uncommitted(out)
            self.done = Done.read(out)
        else:
            self.scan_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)
            if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
                raise ScanError(f"{out} is not empty and holds no scan; choose a new --out")

    async def run(self) -> dict:
        with exclusive(self.config.out, "survey scan"), scan_thresholds():
            return await self._run()

    async def _run(self) -> dict:
        config = self.config
        self._prepare()
        config.out.mkdir(parents=True, exist_ok=True)
        started = now()
        try:
            # inside the try: a Ctrl-C just after this write still records how the run ended
            write_manifest(config.out, self._manifest(started, "partial"))
            await self._scan_all(config)
        except BaseException as exc:
            # the writer has committed what it buffered: say how this run ended
            state = "interrupted" if interrupted(exc) or isinstance(
                exc, trio.Cancelled) else "failed"
            with contextlib.suppress(Exception):
                write_manifest(config.out, self._manifest(started, "partial", now(), state))
            raise
        manifest = self._manifest(started, "complete", now())
        write_manifest(config.out, manifest)
        self.progress.finish(manifest["counts"])
        return manifest

    async def _scan_all(self, config: ScanConfig) -> None:
        self.progress.start(total=estimate_count(config.input, shard=config.shard,
                                                 limit=config.limit),
                            already=len(self.done.domains))
        writer_id = f"{os.getpid()}-{secrets.token_hex(3)}"
        limiter = trio.CapacityLimiter(config.concurrency)
        with DatasetWriter(config.out, writer_id=writer_id,
                           batch_rows=config.batch_rows) as self.writer, \
                _discard_on(self.writer, ResolverSilent):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.progress.run)
                async with trio.open_nursery() as domains:
                    for target in read_targets(config.input, shard=config.shard,
                                               limit=config.limit):
                        if target.domain in self.done.domains:
                            continue
                        await limiter.acquire_on_behalf_of(target)
                        domains.start_soon(self._one, target, limiter)
                nursery.cancel_scope.cancel()

    async def _one(self, target: Target, limiter: trio.CapacityLimiter) -> None:
        try:
            await self.scan_domain(target)
        finally:
            limiter.release_on_behalf_of(target)


@contextlib.contextmanager
def _discard_on(writer: DatasetWriter, kind: type[BaseException]):
    """Rows still buffered are not committed when ``kind`` ends the scan (they are wrong)."""
    try:
        yield
    except BaseException as exc:
        if leaf(exc, kind) is not None:
            writer.discard()
        raise


async def run_scan(config: ScanConfig, progress: Progress | None = None) -> dict:
    """Run a scan to completion; returns the final manifest."""
    return await Scan(config, progress).run()
