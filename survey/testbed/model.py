"""The world model: frozen value classes describing a generated testbed world.

Everything a server needs to act and everything the ground truth needs to be
written is in these classes, so servers stay dumb ("send the reply the spec
says") and the truth is read off the spec, never measured. A world is saved
as ``spec.json`` in the world directory (``World.save`` / ``World.load``).

Theory of operation
-------------------
A ``World`` holds
  * ``domains``: one ``DomainSpec`` per domain, with the generator's *labels*
    (what a correct scan must report: dns status, mx kind, TXT record status,
    MTA-STS id, TLSRPT rua) — the truth module reads these labels;
  * ``mx_hosts``: name -> ``MxHostSpec`` (addresses after following a CNAME,
    the label of its address lookup). Implicit-MX domains have an entry under
    the domain's own name;
  * ``smtp_servers``: ip -> ``SmtpServerSpec`` (one behaviour per address);
  * ``policy_hosts``: domain -> ``PolicyHostSpec`` (the HTTPS server of
    ``mta-sts.<domain>``; several domains may share one ip: SNI / Host select);
  * ``dns``: owner name -> ``DnsNode`` (records in zone-file presentation form,
    plus an optional fault). Names absent from ``dns`` that are not ancestors
    of a present name are NXDOMAIN; a present name without the asked type is
    NODATA;
  * ``ports``, ``resolver`` (the address the DNS server listens on),
    ``scanner`` (the scanner settings the truth assumes).

Names are lower-case A-labels without the trailing dot, all under ``.test``.

Address plan (127.0.0.0/16 is never used: 127.0.0.1 and 127.0.0.53 belong to
the system):
  127.53.0.1          the world's DNS server (authoritative for ``test.``)
  127.1.P.K           SMTP addresses of large provider P
  127.2.P.K           policy (mta-sts) HTTPS addresses of large provider P
  127.4.0.0-127.7.x   own policy hosts of the long tail
  127.16.0.0-...      own SMTP servers of the long tail (last octet 1..254)
  ::1                 the only IPv6 loopback address: exactly one SMTP server
                      (a dual-stack provider's MX hosts and a few long-tail
                      hosts carry AAAA ::1; its certificate names them all)

SMTP behaviour vocabulary (``SmtpServerSpec.behaviour``; ``SMTP_BEHAVIOURS``)
-----------------------------------------------------------------------------
The reply texts are all in the spec (``greeting``, ``ehlo``, ``ehlo_tls``,
``ehlo_reject``, ``starttls_reply``, ``refusal``); a server sends them verbatim.
A ``Reply`` renders as ``code-line CRLF ... code SP last-line CRLF``.
  normal                greeting; EHLO -> 250 + ``ehlo`` lines; STARTTLS ->
                        ``starttls_reply`` (220) then TLS with ``tls``; EHLO
                        again -> ``ehlo_tls``; QUIT -> 221 and close
  multiline_banner      as normal; the greeting has several lines
  no_starttls           as normal but ``tls`` is None and ``ehlo`` lacks
                        STARTTLS; STARTTLS anyway -> 502
  slow_banner           wait ``delay`` seconds, then as normal (delay is at
                        least 3x below the scanner's greeting timeout)
  tarpit                send ``220-`` continuation lines of the greeting, one
                        every ``delay`` seconds (below any per-read timeout),
                        never the final line; close after ``duration`` seconds
                        (at least 3x the greeting timeout)
  banner_421_rate_limit greeting is ``421 4.7.0 ... too many connections ...``,
                        then close
  banner_421            greeting is a 421 that names no limit, then close
  banner_554            greeting is ``554 ...``, then close
  ehlo_4xx              normal greeting; EHLO (and HELO) -> ``ehlo_reject``
                        (a 4xx naming no limit); other commands as normal
  starttls_454          EHLO offers STARTTLS; STARTTLS -> ``starttls_reply``
                        (454); the session continues in clear text
  starttls_500          EHLO offers STARTTLS; STARTTLS -> ``starttls_reply``
                        (500); the session continues in clear text
  drop_after_starttls   STARTTLS -> ``starttls_reply`` (220), then close the
                        TCP connection without a handshake
  per_ip_limit          as normal while at most ``limit`` connections from the
                        same peer address are open; a connection beyond that
                        gets ``refusal`` (421 naming a connection limit), close
  greylist              the first ``limit`` connections to this server since
                        it started get ``refusal`` (421, temporary, names no
                        limit) and are closed; later ones as normal
  reset                 accept, then close with an RST (SO_LINGER 0) before
                        sending anything
  dead                  the address never completes the TCP handshake (its SYNs
                        are dropped: smtp_server.py's dead listeners), so a
                        scanner waits its connect timeout; the realistic
                        profile's share of MX addresses that answer nothing
Hostile servers (each bounded in time for both sides; hostile.py):
  endless_banner        ``220-`` continuation lines of the greeting as fast as
                        the client reads them, never the final line; close
                        after ``duration`` seconds (a correct client's reply
                        caps end it long before its greeting deadline)
  long_line             ``220 `` then ``size`` bytes (10 MB) of one line with
                        no line end; then wait for the client to hang up, at
                        most ``duration`` seconds
  garbage               ``size`` bytes of binary noise (never a digit first,
                        derived from the address), then close
  tls_truncated         EHLO offers STARTTLS; STARTTLS -> 220; after the
                        ClientHello, one TLS record header announcing 16384
                        bytes and only ``size`` of them; then silence until
                        the client hangs up, at most ``duration`` seconds
  hostile_text          as normal, but the greeting and the EHLO lines (before
                        and after TLS) carry HTML and terminal escape sequences
Latency (``SmtpServerSpec.rtt``, ``banner_delay``, ``first_banner_delay``,
``PolicyHostSpec.rtt``, ``World.dns_latency``; profiles/realistic.json's
``timing`` block, generator.py draws them): every byte a server sends leaves
``rtt`` seconds after it is written (a delay line: the round trip of a request
and its reply), the greeting waits ``banner_delay`` more on every connection
(the server's own lookups; sendmail-style greet pauses) and
``first_banner_delay`` more on the first connection from a client address
(a postscreen-style pregreet test: a client that passed is remembered), and
the DNS server answers each query after a delay drawn from ``dns_latency``
(the same delay for the same name and type). None of these ever reaches a
scanner deadline of the world's scale, so the truth never reads them.

Other commands: HELO -> 250 hostname; NOOP/RSET -> 250; QUIT -> 221;
MAIL/RCPT/DATA/VRFY/EXPN/anything else -> 502 (a scanner never sends them).

TLS (``TlsSpec``): ``engine`` ``openssl`` (Python's ssl) or ``tlslite``
(tlslite-ng, for what this OpenSSL cannot serve: SSLv3, RC4, 3DES, NULL
suites, restricted TLS 1.3 suite sets; legacy_tls.py has the catalogue);
``versions`` (subset of TLSv1.0..TLSv1.3; SSLv3 too for tlslite, contiguous),
``ciphers`` (openssl: an OpenSSL cipher string for TLS <= 1.2, suites named
explicitly; TLS 1.3 suites are OpenSSL's defaults and cannot be restricted),
``suites`` (tlslite: per version the IANA names served, in the server's
order; the server serves exactly these), ``server_preference``,
``cert_kind`` (pki.CERT_KINDS), ``names`` (the names the certificate is *for*:
for ``wrong_name`` the pki puts another name in the leaf; for
``sni_dependent`` each of these names gets its own leaf when sent as SNI and
anything else gets a default leaf matching none), ``key_type`` (``ec`` or
``rsa``; the cipher string names suites for that key type).

Policy host behaviour vocabulary (``PolicyHostSpec.behaviour``; ``POLICY_BEHAVIOURS``)
------------------------------------------------------------------------------------
For GET ``/.well-known/mta-sts.txt`` with SNI/Host ``mta-sts.<domain>``. The
server answers ``status`` with ``content_type`` (None: no Content-Type header),
``location`` (a Location header when set) and ``body`` (UTF-8), then closes.
  ok                    200 text/plain, a valid policy (``policy`` says what)
  not_found             404
  redirect              301 with ``location``
  oversize              200 text/plain, ``body`` padded with newlines up to
                        ``pad_to`` bytes (> 65536)
  slow_body             200 text/plain; headers at once, then the body one
                        byte every ``delay`` seconds, taking ``duration``
                        seconds in all (at least 3x the scanner's policy
                        timeout)
  wrong_content_type    200 with ``content_type`` other than text/plain
  wrong_cert            as ok, but ``cert_kind`` is ``wrong_name``
  slow_headers          slowloris: the status line and endless header lines
                        dribbled a byte every ``delay`` seconds, the head
                        never finished; close after ``duration`` seconds (at
                        least 3x the scanner's policy timeout)
  no_host               ``mta-sts.<domain>`` does not resolve (``ip`` None;
                        no server involvement)
  invalid_version, invalid_mode, invalid_max_age, invalid_mx, missing_version,
  missing_mode, missing_max_age, missing_mx, syntax
                        200 text/plain with a body that has exactly that one
                        fault (the category names of tests/vectors)
Other paths -> 404. ``cert_kind`` applies to the certificate served for the
policy host's name.

DNSSEC (``zones``; signing.py): a world with zones is signed under its own root
(``""``): each ``ZoneSpec`` is a zone cut (signed or not, with or without a DS
at its parent, ``ZONE_FAULTS``); a name belongs to its closest enclosing zone,
``test`` by default. ``DnsNode.dnssec_fault`` (``DNSSEC_FAULTS``) breaks the
RRSIGs of the RRsets of ``dnssec_types`` (empty: all) at that name.

DNS faults (``DnsNode.fault``; ``DNS_FAULTS``), applying to the qtypes in
``fault_types`` (empty: every qtype)
  nxdomain   NXDOMAIN although the name has records
  servfail   SERVFAIL
  refused    REFUSED
  timeout    no answer at all (the query is dropped)
  truncate   over UDP: an empty answer with the TC bit; over TCP: the answer
Records: ``DnsRecord(rtype, value, ttl)`` with ``value`` in presentation form
(``10 mx1.example.test.``, ``127.16.0.1``, ``"v=STSv1; " "id=1;"`` — TXT as
one or more quoted character-strings, ``3 1 1 <hex>`` for TLSA).

JSON form (``spec.json``): ``{"format": 1, "seed", "profile", "resolver",
"ports": {...}, "scanner": {...}, "domains": [DomainSpec...], "mx_hosts":
[MxHostSpec...], "smtp_servers": [SmtpServerSpec...], "policy_hosts":
[PolicyHostSpec...], "dns": [DnsNode...]}``: the dict-valued fields are
written as lists (their key is a field of each element); each dataclass is an
object of its fields (fields equal to their default are left out), tuples are
lists, None is null. Readers ignore unknown keys and use defaults for missing
ones, so fields can be added compatibly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import statistics
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
TLD = "test"

SMTP_BEHAVIOURS = (
    "normal", "multiline_banner", "no_starttls", "slow_banner", "tarpit",
    "banner_421_rate_limit", "banner_421", "banner_554", "ehlo_4xx", "starttls_454",
    "starttls_500", "drop_after_starttls", "per_ip_limit", "greylist", "reset",
    "endless_banner", "long_line", "garbage", "tls_truncated", "hostile_text", "dead",
)
# behaviours only the realistic profile deals (the default profile's every-behaviour
# promise leaves them out: a dead address costs the whole connect timeout)
REALISTIC_ONLY_BEHAVIOURS = ("dead",)
POLICY_INVALID_KINDS = (
    "invalid_version", "invalid_mode", "invalid_max_age", "invalid_mx", "missing_version",
    "missing_mode", "missing_max_age", "missing_mx", "syntax",
)
POLICY_BEHAVIOURS = (
    "ok", "not_found", "redirect", "oversize", "slow_body", "wrong_content_type",
    "wrong_cert", "no_host", "slow_headers",
) + POLICY_INVALID_KINDS
DNS_FAULTS = ("nxdomain", "servfail", "refused", "timeout", "truncate")
# DNSSEC faults of an RRset (signing.py): an RRSIG whose validity ended or has not begun,
# a record changed after it was signed, an RRset served without its RRSIG.
DNSSEC_FAULTS = ("expired", "not_yet_valid", "altered", "unsigned")
ZONE_FAULTS = ("ds_mismatch",)              # the parent's DS matches none of the zone's keys
RECORD_TYPES = ("SOA", "NS", "MX", "A", "AAAA", "TXT", "CNAME", "TLSA")
CERT_KINDS = ("valid", "expired", "not_yet_valid", "self_signed", "wrong_name", "untrusted",
              "missing_intermediate", "sni_dependent")
TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
ALL_TLS_VERSIONS = ("SSLv3",) + TLS_VERSIONS        # what a tlslite server may speak
TLS_ENGINES = ("openssl", "tlslite")


# -- SMTP ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a code and its text lines (without the code)."""

    code: int
    lines: tuple[str, ...]

    def render(self) -> str:
        """The reply as sent on the wire (text, CRLF line ends)."""
        lines = self.lines or ("",)
        out = [f"{self.code}-{line}\r\n" for line in lines[:-1]]
        out.append(f"{self.code} {lines[-1]}\r\n")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class VersionSuites:
    """The suites a tlslite server serves at one version (IANA names, its order)."""

    version: str
    suites: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """How a server does TLS after STARTTLS (or how a policy host does HTTPS)."""

    versions: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    server_preference: bool = True
    cert_kind: str = "valid"
    names: tuple[str, ...] = ()
    key_type: str = "ec"
    engine: str = "openssl"                 # "openssl" or "tlslite" (legacy_tls.py)
    suites: tuple[VersionSuites, ...] = ()  # tlslite: exactly these, per version


@dataclass(frozen=True, slots=True)
class SmtpServerSpec:
    """The SMTP server behind one address (any port: the world's SMTP port)."""

    ip: str
    behaviour: str
    hostname: str
    greeting: Reply
    ehlo: tuple[str, ...] = ()              # 250 lines after the first (capabilities)
    ehlo_tls: tuple[str, ...] = ()          # the same after STARTTLS
    ehlo_reject: Reply | None = None        # ehlo_4xx
    starttls_reply: Reply | None = None     # 220 normally; 454/500 for the rejecting kinds
    refusal: Reply | None = None            # per_ip_limit / greylist
    delay: float = 0.0                      # slow_banner, tarpit (seconds)
    duration: float = 0.0                   # tarpit (seconds)
    limit: int = 0                          # per_ip_limit (connections), greylist (refusals)
    size: int = 0                           # long_line, garbage, tls_truncated (bytes)
    tls: TlsSpec | None = None
    owner: str = ""                         # provider name or "own" (information only)
    rtt: float = 0.0                        # seconds each reply takes to arrive (latency)
    banner_delay: float = 0.0               # extra wait before every greeting (seconds)
    first_banner_delay: float = 0.0         # extra wait before a client's first greeting


# -- MTA-STS policy hosts ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PolicySpec:
    """What a policy body means (when it is a valid policy)."""

    mode: str
    max_age: int
    mx: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyHostSpec:
    """The HTTPS server of ``mta-sts.<domain>``."""

    domain: str
    ip: str | None
    behaviour: str
    status: int = 200
    content_type: str | None = "text/plain"
    body: str = ""
    location: str | None = None
    pad_to: int = 0
    delay: float = 0.0
    duration: float = 0.0
    cert_kind: str = "valid"
    policy: PolicySpec | None = None        # set when the body is a valid policy
    error: str | None = None                # the mta_sts_policy_error a correct scan reports
    tls: TlsSpec | None = None              # None: the world's default policy-host TLS
    rtt: float = 0.0                        # seconds each response takes to arrive

    @property
    def host(self) -> str:
        return f"mta-sts.{self.domain}"


# -- DNS -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DnsRecord:
    rtype: str
    value: str          # presentation form, absolute names with a trailing dot
    ttl: int = 300


@dataclass(frozen=True, slots=True)
class DnsNode:
    name: str
    records: tuple[DnsRecord, ...] = ()
    fault: str | None = None
    fault_types: tuple[str, ...] = ()       # qtypes the fault applies to; () = all
    dnssec_fault: str | None = None         # DNSSEC_FAULTS, on the RRsets of dnssec_types
    dnssec_types: tuple[str, ...] = ()

    def faulty(self, qtype: str) -> str | None:
        if self.fault and (not self.fault_types or qtype in self.fault_types):
            return self.fault
        return None

    def dnssec_faulty(self, qtype: str) -> str | None:
        if self.dnssec_fault and (not self.dnssec_types or qtype in self.dnssec_types):
            return self.dnssec_fault
        return None


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A zone of a signed world: its apex, whether it is signed, whether its parent
    publishes a DS for it, and a zone-level fault (``ZONE_FAULTS``)."""

    name: str                               # "" is the world's own root
    signed: bool = True
    ds: bool = True
    fault: str | None = None



# -- domains and MX hosts ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MxRef:
    host: str
    preference: int


@dataclass(frozen=True, slots=True)
class MxHostSpec:
    """An MX target (or an implicit-MX domain) as a correct resolver sees it."""

    name: str
    ips: tuple[str, ...] = ()               # A then AAAA addresses (after a CNAME)
    status: str = "ok"                      # mx_status label: ok, nxdomain, no_data, servfail...
    cname: str | None = None                # the name is a CNAME to this target
    owner: str = ""                         # provider name or "own"


@dataclass(frozen=True, slots=True)
class TxtSpec:
    """The generator's label for a TXT RRset (``_mta-sts`` or ``_smtp._tls``)."""

    status: str = "absent"                  # absent, valid, invalid, multiple, dns_error
    txt: tuple[str, ...] | None = ()        # the records, each joined; None when dns_error
    id: str | None = None                   # MTA-STS id when valid
    rua: tuple[str, ...] | None = None      # TLSRPT rua when valid
    shape: str = ""                         # how it was built (e.g. "split", "bad_version")


@dataclass(frozen=True, slots=True)
class DomainSpec:
    name: str
    rank: int | None
    owner: str                              # provider name or "own"
    dns_status: str = "ok"                  # label of the MX query's outcome
    mx_kind: str | None = "mx"              # mx, null_mx, implicit, none; None if dns failed
    mx: tuple[MxRef, ...] = ()
    mta_sts: TxtSpec = field(default_factory=TxtSpec)
    tlsrpt: TxtSpec = field(default_factory=TxtSpec)
    traits: tuple[str, ...] = ()            # behaviour names this domain exercises


# -- the world ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ports:
    smtp: int = 25
    https: int = 443
    dns: int = 53


@dataclass(frozen=True, slots=True)
class ScannerSettings:
    """The scanner settings the truth assumes (stated in world.json)."""

    profile: str = "starttls"
    dns_timeout: float = 5.0                # per query, whole resolution
    connect_timeout: float = 10.0
    greeting_timeout: float = 30.0          # deadline for the whole greeting
    command_timeout: float = 30.0
    tls_timeout: float = 30.0
    policy_timeout: float = 60.0            # whole MTA-STS fetch (RFC 8461 §3.3 suggests 60 s)
    policy_max_bytes: int = 65536
    retries: int = 2                        # extra attempts after a temporary refusal
    per_ip_connections: int = 1


@dataclass(frozen=True, slots=True)
class Latency:
    """A delay distribution: log-normal from its median and 90th percentile, capped.

    ``at(u)`` is the delay at quantile ``u`` (0 < u < 1) in seconds, never above
    ``cap``; the servers and the generator draw ``u`` from a hash or a seeded stream.
    """

    median: float
    p90: float
    cap: float

    def at(self, u: float) -> float:
        if self.median <= 0:
            return 0.0
        u = min(max(u, 1e-9), 1 - 1e-9)
        sigma = math.log(max(self.p90, self.median) / self.median) / _Z90
        return round(min(self.cap, self.median * math.exp(sigma * _NORMAL.inv_cdf(u))), 4)


_NORMAL = statistics.NormalDist()
_Z90 = _NORMAL.inv_cdf(0.9)


@dataclass(frozen=True)
class World:
    seed: int
    profile: str
    domains: tuple[DomainSpec, ...]
    mx_hosts: dict[str, MxHostSpec]
    smtp_servers: dict[str, SmtpServerSpec]
    policy_hosts: dict[str, PolicyHostSpec]
    dns: dict[str, DnsNode]
    zones: dict[str, ZoneSpec] = field(default_factory=dict)   # empty: an unsigned world
    resolver: str = "127.53.0.1"
    ports: Ports = field(default_factory=Ports)
    scanner: ScannerSettings = field(default_factory=ScannerSettings)
    format: int = FORMAT
    dns_latency: Latency | None = None      # None: the DNS server answers at once

    # -- lookups used by the servers
    def smtp_server(self, ip: str) -> SmtpServerSpec | None:
        return self.smtp_servers.get(ip)

    def policy_host(self, server_name: str) -> PolicyHostSpec | None:
        """The policy host for an SNI / Host name ``mta-sts.<domain>``."""
        name = server_name.lower().rstrip(".")
        if not name.startswith("mta-sts."):
            return None
        return self.policy_hosts.get(name[len("mta-sts."):])

    # -- JSON
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "seed": self.seed, "profile": self.profile,
            "resolver": self.resolver, "ports": _dump(self.ports),
            "scanner": _dump(self.scanner),
            "domains": [_dump(d) for d in self.domains],
            "mx_hosts": [_dump(h) for h in self.mx_hosts.values()],
            "smtp_servers": [_dump(s) for s in self.smtp_servers.values()],
            "policy_hosts": [_dump(p) for p in self.policy_hosts.values()],
            "dns": [_dump(n) for n in self.dns.values()],
            "zones": [_dump(z) for z in self.zones.values()],
            **({"dns_latency": _dump(self.dns_latency)} if self.dns_latency else {}),
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> World:
        if data.get("format", FORMAT) > FORMAT:
            raise ValueError(f"spec format {data['format']} is newer than this code ({FORMAT})")
        return cls(
            seed=data["seed"], profile=data["profile"],
            resolver=data.get("resolver", "127.53.0.1"),
            ports=_load(Ports, data.get("ports", {})),
            scanner=_load(ScannerSettings, data.get("scanner", {})),
            domains=tuple(_load(DomainSpec, d) for d in data["domains"]),
            mx_hosts={h["name"]: _load(MxHostSpec, h) for h in data["mx_hosts"]},
            smtp_servers={s["ip"]: _load(SmtpServerSpec, s) for s in data["smtp_servers"]},
            policy_hosts={p["domain"]: _load(PolicyHostSpec, p) for p in data["policy_hosts"]},
            dns={n["name"]: _load(DnsNode, n) for n in data["dns"]},
            zones={z["name"]: _load(ZoneSpec, z) for z in data.get("zones", ())},
            dns_latency=(_load(Latency, data["dns_latency"]) if data.get("dns_latency")
                         else None),
        )

    def save(self, path: str | Path) -> None:
        # json.dumps (one shot) uses the C encoder; json.dump streams in pure Python
        with paused_gc():
            text = json.dumps(self.to_json_dict(), separators=(",", ":"))
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    @classmethod
    def load(cls, path: str | Path) -> World:
        with open(path, encoding="utf-8") as fh, paused_gc():
            return cls.from_json_dict(json.loads(fh.read()))


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic GC while building millions of acyclic objects.

    Each gen-0 collection would otherwise walk the growing young heap: with
    it paused, loading or generating a 100,000-domain world is ~3x faster.
    The model holds no reference cycles, so nothing is lost meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- dataclass <-> JSON: tuples as lists, nested dataclasses as objects, fields equal to
# their default omitted. A 100,000-domain spec holds about two million values, so the
# codec of each class is generated once as straight-line code (as dataclasses itself
# does for __init__) instead of walking type hints for every value. ----------------------

_MISSING = object()
_DUMPERS: dict[type, Any] = {}
_LOADERS: dict[type, Any] = {}


def _dump(value: Any) -> Any:
    """Any model value -> JSON-ready data (used for the odd value; classes use codecs)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dumper(type(value))(value)
    if isinstance(value, (tuple, list)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(cls: type, data: dict[str, Any]) -> Any:
    return _loader(cls)(data)


def _non_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _dump_conv(tp: Any) -> Any:
    """Value of type ``tp`` (not None) -> JSON data; None when it is JSON already."""
    tp = _non_none(tp)
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = _dump_conv(typing.get_args(tp)[0])
        return list if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        item = _dump_conv(typing.get_args(tp)[1])
        return None if item is None else (lambda v: {k: item(x) for k, x in v.items()})
    if _is_dataclass_type(tp):
        return lambda v: _dumper(tp)(v)
    return None


def _load_conv(tp: Any) -> Any:
    """JSON data (not None) -> a value of type ``tp``; None when no conversion is needed."""
    tp = _non_none(tp)
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = _load_conv(typing.get_args(tp)[0])
        return tuple if item is None else (lambda v: tuple([item(x) for x in v]))
    if origin is dict:
        item = _load_conv(typing.get_args(tp)[1])
        return None if item is None else (lambda v: {k: item(x) for k, x in v.items()})
    if _is_dataclass_type(tp):
        return lambda v: _loader(tp)(v)
    if tp is float:
        return float
    return None


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _dumper(cls: type) -> Any:
    fn = _DUMPERS.get(cls)
    if fn is not None:
        return fn
    hints = typing.get_type_hints(cls)
    defaults = _defaults(cls)
    env: dict[str, Any] = {}
    body = ["def dump(o):", "    out = {}"]
    for f in dataclasses.fields(cls):
        n = f.name
        conv = _dump_conv(hints[n])
        value = "v" if conv is None else f"c_{n}(v)"
        if conv is not None:
            env[f"c_{n}"] = conv
        body.append(f"    v = o.{n}")
        put = f"out[{n!r}] = None if v is None else {value}" if conv is not None \
            else f"out[{n!r}] = v"
        if n in defaults:
            env[f"d_{n}"] = defaults[n]
            body.append(f"    if v is not d_{n} and v != d_{n}:")
            body.append(f"        {put}")
        else:
            body.append(f"    {put}")
    body.append("    return out")
    exec("\n".join(body), env)  # noqa: S102 - generated from our own field names
    fn = _DUMPERS[cls] = env["dump"]
    return fn


def _loader(cls: type) -> Any:
    fn = _LOADERS.get(cls)
    if fn is not None:
        return fn
    hints = typing.get_type_hints(cls)
    defaults = {f.name for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING}
    env: dict[str, Any] = {"cls": cls, "MISSING": _MISSING}
    body = ["def load(d):", "    g = d.get", "    kw = {}"]
    for f in dataclasses.fields(cls):
        n = f.name
        conv = _load_conv(hints[n])
        if conv is not None:
            env[f"c_{n}"] = conv
        get = f"d[{n!r}]" if n not in defaults else f"g({n!r}, MISSING)"
        body.append(f"    v = {get}")
        indent = "    "
        if n in defaults:
            body.append("    if v is not MISSING:")
            indent = "        "
        if conv is not None:
            body.append(f"{indent}kw[{n!r}] = None if v is None else c_{n}(v)")
        else:
            body.append(f"{indent}kw[{n!r}] = v")
    body.append("    return cls(**kw)")
    exec("\n".join(body), env)  # noqa: S102 - generated from our own field names
    fn = _LOADERS[cls] = env["load"]
    return fn
