"""Everything a scan is told, in one value: from the command line, a testbed world, or code.

Defaults serve the real Internet politely: the system's resolver, port 25,
one connection per server at a time, a second between connections to one
address, 50 new connections per second overall, 200 DNS queries per second.
A testbed world (``--world``) supplies its resolver, ports, CA bundle and
the timeouts its truth assumes, and switches the destination policy to
loopback-only. ``--testbed`` does the latter alone, for a lab of real servers
on loopback that the user runs (tests/interop does): resolver, ports and CA
files then come from the command line.

The profile defaults to ``versions`` (one hello per TLS version after the
starttls probe; the command line uses a world's own profile with
``--world``); ``budget`` caps the connections per server.

``conversations`` caps the connections past their greeting at once
(``CONVERSATIONS_PER_PROCESS`` per process unless set; a total, like
``concurrency``): when thousands of servers answer together (greetings due
after the same pause), the scanner talks to them in turn, and the deadlines
after the greeting start with each one's turn (net/smtp.py, "Turns").
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from survey.net.smtp import Timeouts
from survey.scan.enumeration import DEFAULT_BUDGET, PROFILES
from survey.scan.targets import InputError, open_text

# What one process serves without falling behind the deadlines: a conversation costs about
# 5 ms of scanner CPU over its handshake and replies (benchmarks/README.md, slow.py), so
# 256 at once is about 1.3 s of CPU per round of replies, far inside the 30 s deadlines
# even on a shared core, and on the Internet (about a second a conversation) still more
# than one core's worth of conversations a second.
CONVERSATIONS_PER_PROCESS = 256


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line for the user."""


@dataclass
class ScanConfig:
    input: Path
    out: Path
    mode: str = "internet"                     # internet | testbed
    resolvers: list[tuple[str, int]] | None = None   # None: the system's configuration
    smtp_port: int = 25
    https_port: int = 443
    ca_files: list[Path] = field(default_factory=list)
    mozilla_roots: bool = True
    profile: str = "versions"                 # starttls | versions | ciphers
    budget: int = DEFAULT_BUDGET               # connections per server, all included
    concurrency: int = 200                     # domains in flight
    # connections past their greeting at once (None: CONVERSATIONS_PER_PROCESS per process)
    conversations: int | None = None
    per_ip: int = 1
    per_ip_spacing: float = 1.0
    rate: float | None = 50.0                  # new connections per second, all servers
    dns_rate: float | None = 200.0
    blocklist: Path | None = None
    ehlo_name: str | None = None               # None: this host's FQDN, looked up in check()
    user_agent: str = "survey (email transport security research scanner)"
    resume: bool = False
    force: bool = False                        # resume although row-changing settings differ
    ip_version: str = "both"                   # 4 | 6 | both: the address families to try
    # which families this vantage routes to: {"ipv4": bool|None, "ipv6": ...} (net/reach.py);
    # None: measured when the scan starts (a test injects its own)
    reach: dict[str, bool | None] | None = None
    shard: tuple[int, int] | None = None
    limit: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    dns_timeout: float = 5.0
    dns_lifetime: float = 15.0
    policy_timeout: float = 60.0
    retries: int = 2
    retry_delay: float = 30.0
    batch_rows: int = 5000
    world: dict[str, Any] | None = None        # world.json of a testbed world
    dnssec: bool = True                        # validate every lookup (survey/net/dnssec.py)
    dnssec_anchor: Path | None = None          # DS/DNSKEY zone file; None: IANA's root KSKs
    dnssec_trust_ad: bool = False              # the resolver's AD bit instead (net/dnssec.py)

    def check(self) -> None:
        try:
            with open_text(self.input):      # a binary or non-UTF-8 list: refused here
                pass
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; profiles: {', '.join(PROFILES)}")
        if self.mode not in ("internet", "testbed"):
            raise ConfigError(f"unknown mode {self.mode!r}")
        for name in ("concurrency", "per_ip", "batch_rows", "budget"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.conversations is not None and self.conversations < 1:
            raise ConfigError("--conversations must be at least 1")
        for name in ("smtp_port", "https_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"--{name.replace('_', '-')} must be a port number")
        if self.retries < 0 or self.retry_delay < 0 or self.per_ip_spacing < 0:
            raise ConfigError("retries, delays and spacing must not be negative")
        seconds = {"--connect-timeout": self.timeouts.connect,
                   "--greeting-timeout": self.timeouts.greeting,
                   "--command-timeout": self.timeouts.command,
                   "--tls-timeout": self.timeouts.tls, "--dns-timeout": self.dns_timeout,
                   "--policy-timeout": self.policy_timeout, "dns_lifetime": self.dns_lifetime,
                   "--rate": self.rate, "--dns-rate": self.dns_rate}
        for name, value in seconds.items():
            # None: no limit, which only a testbed world sets (its servers are ours)
            if value is None and name in ("--rate", "--dns-rate") and self.mode == "testbed":
                continue
            if value is None or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a finite number greater than 0, "
                                  f"not {value}")
        for name in ("per_ip_spacing", "retry_delay"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number")
        if self.mode == "internet" and self.per_ip_spacing <= 0:
            raise ConfigError("--per-ip-spacing must be greater than 0 on the Internet "
                              "(0 only for a loopback lab: --testbed or --world)")
        if self.ip_version not in ("4", "6", "both"):
            raise ConfigError(f"--ip-version {self.ip_version!r}: 4, 6 or both")
        if self.force and not self.resume:
            raise ConfigError("--force only goes with --resume")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be at least 1")
        if self.ehlo_name is None:
            # only now, and only when no name was given: getfqdn() may ask the resolver
            self.ehlo_name = socket.getfqdn()
        if not self.ehlo_name or any(c.isspace() for c in self.ehlo_name):
            raise ConfigError(f"--ehlo-name {self.ehlo_name!r} is not a host name")
        if self.dnssec_trust_ad and not self.dnssec:
            raise ConfigError("--dnssec-trust-ad and --no-dnssec exclude each other")
        if self.dnssec and self.dnssec_anchor is not None:
            from survey.dnssec import Anchors
            try:
                Anchors.from_file(self.dnssec_anchor)
            except ValueError as exc:
                raise ConfigError(f"--dnssec-anchor: {exc}") from None
        if self.mode == "testbed":
            if not self.resolvers:
                raise ConfigError(
                    "a testbed scan needs a loopback resolver (--resolver or --world)")
            if not all(_loopback(ip) for ip, _ in self.resolvers):
                raise ConfigError("a testbed scan uses loopback resolvers only")

    def included_versions(self) -> frozenset[int]:
        return {"4": frozenset({4}), "6": frozenset({6})}.get(self.ip_version,
                                                              frozenset({4, 6}))

    def routable_versions(self) -> frozenset[int]:
        """The IP versions this vantage routes to (measured once; loopback in a testbed)."""
        if self.mode == "testbed":
            return frozenset({4, 6})      # loopback: the policy allows nothing else
        if self.reach is None:
            from survey.net.reach import vantage_reach

            self.reach = vantage_reach()
        # unknown (None) counts as routable: try, and let the connect say
        return frozenset(v for v in (4, 6) if self.reach.get(f"ipv{v}") is not False)

    def public(self) -> dict[str, Any]:
        """The settings as JSON-ready values, for the manifest."""
        data = asdict(self)
        data.pop("world", None)
        return json.loads(json.dumps(data, default=str))


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def load_world(path: Path | str) -> dict[str, Any]:
    """A world directory or its world.json -> the world.json document of a running world."""
    path = Path(path)
    if path.is_dir():
        path = path / "world.json"
    try:
        world = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no world.json (is the world running? "
                          "start it with `survey world --serve`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable world.json: {exc}") from None
    if not isinstance(world, dict) or "scanner" not in world or "resolver" not in world:
        raise ConfigError(f"{path}: not a world.json")
    if world.get("state") == "stopped":
        raise ConfigError(f"{path}: the world has stopped; start it again")
    if not _alive(world.get("pid")):
        raise ConfigError(f"{path}: the world's server (pid {world.get('pid')}) is gone; "
                          "start it again with `survey world --serve`")
    return world


def _alive(pid: object) -> bool:
    """Whether a process of this machine is running (a world.json without a pid: assume so)."""
    import os

    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True           # someone else's process: it exists
    try:                      # a killed process its parent has not reaped yet (Linux)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def apply_world(config: ScanConfig, world: dict[str, Any]) -> None:
    """Point a scan at a testbed world with the settings its truth assumes."""
    s = world["scanner"]
    config.world = world
    config.mode = "testbed"
    config.resolvers = [(world["resolver"]["ip"], int(world["resolver"]["port"]))]
    config.smtp_port = int(world["smtp"]["port"])
    config.https_port = int(world["https"]["port"])
    config.ca_files = [Path(world["ca_bundle"]), *config.ca_files]
    config.mozilla_roots = False
    config.timeouts = Timeouts(connect=s["connect_timeout"], greeting=s["greeting_timeout"],
                               command=s["command_timeout"], tls=s["tls_timeout"])
    config.dns_timeout = s["dns_timeout"]
    config.dns_lifetime = s["dns_timeout"] * 3
    config.policy_timeout = s["policy_timeout"]
    config.retries = s["retries"]
    config.retry_delay = min(config.retry_delay, 0.2)   # the world's refusals clear by count
    config.per_ip = s.get("per_ip_connections", config.per_ip)
    config.per_ip_spacing = 0.0
    config.rate = None
    config.dns_rate = None
    # One process serves the whole world: more domains in flight than this queue up in its
    # event loop until the fast scale's one-second deadlines are missed (measured at load 5+).
    config.concurrency = min(config.concurrency, 50)
    config.ehlo_name = "scanner.survey.test"
    # A signed world names its trust anchor; an unsigned one has none to validate from
    # (its rows leave the DNSSEC columns null: not measured).
    anchor = world.get("dnssec_anchor")
    if anchor:
        config.dnssec_anchor = Path(anchor)
    else:
        config.dnssec = False
