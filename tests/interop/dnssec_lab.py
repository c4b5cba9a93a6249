"""A DNSSEC lab of generated zone shapes: signed by ldns-signzone, served by NSD, validated by
Unbound, for differential tests of survey's validator (tests/interop/test_dnssec_generated.py).

Theory of operation
-------------------
``shapes(seed, n)`` draws ``n`` child zones of ``lab.test`` (the trust anchor), each a
``Shape``: how it is delegated (signed with its DS in the parent; unsigned; signed but no
DS in the parent; a DS of another key), how it denies (NSEC, NSEC3, NSEC3 with opt-out),
when its signatures are valid (now; expired; not yet valid; or an exact offset in seconds
for the clock-skew edges), whether a record was altered after signing, a wildcard, a
grandchild zone (signed or unsigned), and a CNAME into another zone of the lab. ``build``
writes and signs every zone with ldnsutils (Ed25519 keys), children before parents so each
DS lands in its parent before the parent is signed. ``queries`` lists the lookups that
exercise every shape: positive data, the apex RRsets, NXDOMAIN, NODATA, TLSA, wildcard
answers and wildcard NODATA, a CNAME chain across zones, the grandchild's data.

``DnssecLab`` starts NSD (authoritative for every zone) and one Unbound that forwards to
it and validates from ``lab.test``'s DS with its default clock-skew allowance, on free
loopback ports; it stops both on exit. survey's validator asks that same Unbound with DO
and CD set (as a scan asks its resolver); Unbound's own verdict is read from the AD bit
and from SERVFAIL (bogus when the data still comes with +cd): ``unbound_status``.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from tests.interop.test_dnssec_unbound import _free_port, _unbound, _unbound_status
from tests.requirements import needs

# What the lab starts: the mark every module using it carries (tests/test_requirements.py)
NEEDS_LAB = needs("unbound", "nsd", "ldns-signzone", "ldns-keygen")

ANCHOR = "lab.test"
DAY = 86400
SOA = ("@ 300 IN SOA ns.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n"
       "@ 300 IN NS ns.lab.test.\n")
DELEGATIONS = ("signed", "unsigned", "no_ds", "wrong_ds")
DENIALS = ("nsec", "nsec3", "nsec3_optout")
TIMES = ("ok", "expired", "not_yet_valid")


@dataclass
class Shape:
    zone: str                        # e.g. z3.lab.test
    delegation: str = "signed"       # one of DELEGATIONS
    denial: str = "nsec"             # one of DENIALS, or nsec3_iN (N NSEC3 iterations)
    time: str = "ok"                 # one of TIMES, or "offset"
    # with time == "offset": (inception, expiration) in seconds from now
    window: tuple[int, int] | None = None
    altered: bool = False            # mx's A record changed after signing
    wildcard: bool = False           # *.w.<zone> A
    tlsa: bool = True                # _25._tcp.mx.<zone> TLSA 3 1 1
    sub: str | None = None           # a grandchild zone: "signed" or "unsigned"
    cname_to: str | None = None      # c.<zone> CNAME mx.<another zone>
    ds_text: str = field(default="", repr=False)

    @property
    def signed(self) -> bool:
        return self.delegation != "unsigned"


# The first shapes cover every single choice, and the combinations that once disagreed.
FIXED: list[dict] = (
    [{"delegation": d} for d in DELEGATIONS] + [{"denial": d} for d in DENIALS]
    + [{"time": t} for t in TIMES[1:]]
    + [{"altered": True},
       {"denial": "nsec3_optout", "wildcard": True, "sub": "unsigned"},
       {"denial": "nsec3", "wildcard": True, "sub": "signed"},
       # RFC 9276 §3.2, Unbound's val-nsec3-keysize-iterations: above 150, insecure
       {"denial": "nsec3_i150", "wildcard": True}, {"denial": "nsec3_i151", "wildcard": True}])


def shapes(seed: int, n: int) -> list[Shape]:
    """``n`` zone shapes drawn from ``seed`` (the first ones from ``FIXED``)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = Shape(f"z{i}.{ANCHOR}", delegation=rng.choice(DELEGATIONS),
                  denial=rng.choice(DENIALS), time=rng.choice(TIMES))
        s.altered = rng.random() < 0.2
        s.wildcard = rng.random() < 0.5
        s.tlsa = rng.random() < 0.7
        s.sub = rng.choice(("signed", "unsigned")) if rng.random() < 0.4 else None
        if i < len(FIXED):
            s.delegation, s.denial, s.time, s.altered = "signed", "nsec", "ok", False
            for key, value in FIXED[i].items():
                setattr(s, key, value)
        if not s.signed:
            s.sub = None
        out.append(s)
    for s in out:
        if rng.random() < 0.4:
            s.cname_to = rng.choice([o.zone for o in out if o is not s])
    return out


# Clock-skew edges (Unbound's defaults: val-sig-skew-min 3600, val-sig-skew-max 86400, a
# tenth of the validity period in between): (label, (inception, expiration) from now, the
# status both validators must give). 10 minutes of margin either side of each edge.
HOUR, MARGIN = 3600, 600
SKEW_CASES = [
    ("expired-10pct-inside", (-20 * HOUR - 2 * HOUR + MARGIN, -2 * HOUR + MARGIN), "secure"),
    ("expired-10pct-outside", (-20 * HOUR - 2 * HOUR - MARGIN, -2 * HOUR - MARGIN), "bogus"),
    ("expired-min-inside", (-5 * HOUR - HOUR + MARGIN, -HOUR + MARGIN), "secure"),
    ("expired-min-outside", (-5 * HOUR - HOUR - MARGIN, -HOUR - MARGIN), "bogus"),
    ("expired-max-inside", (-31 * DAY + MARGIN, -DAY + MARGIN), "secure"),
    ("expired-max-outside", (-31 * DAY - MARGIN, -DAY - MARGIN), "bogus"),
    ("early-10pct-inside", (2 * HOUR - MARGIN, 22 * HOUR - MARGIN), "secure"),
    ("early-10pct-outside", (2 * HOUR + MARGIN, 22 * HOUR + MARGIN), "bogus"),
    ("early-min-inside", (HOUR - MARGIN, 6 * HOUR - MARGIN), "secure"),
    ("early-min-outside", (HOUR + MARGIN, 6 * HOUR + MARGIN), "bogus"),
]


def skew_shapes() -> list[Shape]:
    return [Shape(f"{label}.{ANCHOR}", time="offset", window=window, tlsa=False)
            for label, window, _status in SKEW_CASES]


def queries(shapes: list[Shape]) -> list[tuple[str, str]]:
    """The lookups that exercise every shape, zone by zone."""
    out = [(f"ns.{ANCHOR}", "A"), (ANCHOR, "SOA"), (ANCHOR, "NS"), (f"nope.{ANCHOR}", "A")]
    for s in shapes:
        z = s.zone
        out += [(f"mx.{z}", "A"), (z, "MX"), (z, "SOA"), (z, "NS"), (f"nope.{z}", "A"),
                (f"mx.{z}", "TXT"), (f"_25._tcp.mx.{z}", "TLSA")]
        if s.signed:
            out.append((z, "DNSKEY"))
        if s.wildcard:
            out += [(f"x.w.{z}", "A"), (f"x.w.{z}", "AAAA"), (f"w.{z}", "A")]
        if s.cname_to:
            out.append((f"c.{z}", "A"))
        if s.sub:
            out += [(f"mx.sub.{z}", "A"), (f"nope.sub.{z}", "A")]
    return out


# -- signing --------------------------------------------------------------------------------

def _keygen(d: Path, zone: str) -> str:
    return subprocess.run(["ldns-keygen", "-a", "ED25519", "-k", zone], cwd=d, check=True,
                          capture_output=True, text=True).stdout.strip()


def _sign(d: Path, zone: str, body: str, *, denial: str = "nsec",
          window: tuple[int, int] | None = None, now: int | None = None) -> tuple[Path, str]:
    """Write ``zone`` and sign it; (the signed file, its DS record)."""
    key = _keygen(d, zone)
    path = d / f"{zone}.zone"
    path.write_text(f"$ORIGIN {zone}.\n$TTL 300\n{SOA}{body}")
    command = ["ldns-signzone"]
    if window is not None:
        base = int(time.time()) if now is None else now
        command += ["-i", str(base + window[0]), "-e", str(base + window[1])]
    if denial != "nsec":
        # RFC 9276: no extra iterations, no salt (nsec3_iN: N iterations)
        iterations = denial.partition("_i")[2] or "0"
        command += ["-n", "-t", iterations]
        if denial == "nsec3_optout":
            command.append("-p")
    subprocess.run(command + [str(path), key], cwd=d, check=True, capture_output=True)
    return d / f"{zone}.zone.signed", (d / f"{key}.ds").read_text().strip()


def _unsigned(d: Path, zone: str, body: str) -> Path:
    path = d / f"{zone}.zone"
    path.write_text(f"$ORIGIN {zone}.\n$TTL 300\n{SOA}{body}")
    return path


def _window(s: Shape) -> tuple[int, int] | None:
    if s.time == "expired":
        return -40 * DAY, -10 * DAY
    if s.time == "not_yet_valid":
        return 10 * DAY, 40 * DAY
    if s.time == "offset":
        return s.window
    return None


def build(d: Path, shapes: list[Shape]) -> tuple[dict[str, Path], str]:
    """Every zone written and signed under ``d``: ({zone: file}, the anchor's DS text)."""
    files: dict[str, Path] = {}
    lab_body = "ns IN A 127.0.0.1\n"
    now = int(time.time())
    for i, s in enumerate(shapes):
        z = s.zone
        body = f"@ IN MX 10 mx\nmx IN A 127.16.{i}.1\n"
        if s.tlsa:
            body += f"_25._tcp.mx IN TLSA 3 1 1 {i:064x}\n"
        if s.wildcard:
            body += f"*.w IN A 127.17.{i}.1\n"
        if s.cname_to:
            body += f"c IN CNAME mx.{s.cname_to}.\n"
        if s.sub:
            sub = f"sub.{z}"
            sub_body = f"mx IN A 127.18.{i}.1\n"
            body += "sub IN NS ns.lab.test.\n"
            if s.sub == "signed":
                files[sub], ds = _sign(d, sub, sub_body, denial="nsec", now=now)
                body += ds + "\n"
            else:
                files[sub] = _unsigned(d, sub, sub_body)
        lab_body += f"{z.removesuffix('.' + ANCHOR)} IN NS ns.lab.test.\n"
        if not s.signed:
            files[z] = _unsigned(d, z, body)
            continue
        files[z], s.ds_text = _sign(d, z, body, denial=s.denial, window=_window(s), now=now)
        if s.altered:
            signed = files[z].read_text()
            needle = f"127.16.{i}.1"
            assert needle in signed
            files[z].write_text(signed.replace(needle, f"127.19.{i}.1"))
        if s.delegation == "signed":
            lab_body += s.ds_text + "\n"
        elif s.delegation == "wrong_ds":
            other = _keygen(d, z)          # a key the zone never uses
            lab_body += (d / f"{other}.ds").read_text().strip() + "\n"
    files[ANCHOR], anchor = _sign(d, ANCHOR, lab_body, now=now)
    return files, anchor


# -- the daemons ----------------------------------------------------------------------------

def start_nsd(d: Path, zones: dict[str, Path]) -> tuple[subprocess.Popen, int]:
    """NSD serving ``zones`` (which include the anchor zone) on a free loopback port."""
    port = _free_port()
    conf = d / "nsd.conf"
    conf.write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 0
remote-control:
    control-enable: no
""" + "".join(f'zone:\n    name: "{z}."\n    zonefile: "{p}"\n' for z, p in zones.items()))
    proc = subprocess.Popen([shutil.which("nsd") or "nsd", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query(f"{ANCHOR}.", "SOA"), "127.0.0.1",
                          timeout=0.5, port=port)
            return proc, port
        except (OSError, dns.exception.Timeout):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("nsd did not start")


class DnssecLab:
    """NSD serving ``zones`` and a validating Unbound in front of it, for a ``with`` block."""

    def __init__(self, d: Path, zones: dict[str, Path], anchor: str, *,
                 plain: bool = False) -> None:
        """``plain``: also a non-validating Unbound (``plain_port``) in front of NSD."""
        self.dir, self.zones, self.anchor, self.with_plain = d, zones, anchor, plain
        self.nsd: subprocess.Popen | None = None
        self.unbound: subprocess.Popen | None = None
        self.plain: subprocess.Popen | None = None
        self.nsd_port = self.port = self.plain_port = 0

    def __enter__(self) -> DnssecLab:
        self.nsd, self.nsd_port = start_nsd(self.dir, self.zones)
        try:
            (self.dir / "unbound").mkdir(exist_ok=True)
            self.unbound, self.port = _unbound(self.dir / "unbound", self.nsd_port,
                                               self.anchor + "\n")
            if self.with_plain:
                (self.dir / "plain").mkdir(exist_ok=True)
                self.plain, self.plain_port = _unbound(self.dir / "plain", self.nsd_port,
                                                       "", validating=False)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop(self.plain)
        self._stop(self.unbound)
        self._stop(self.nsd)

    @staticmethod
    def _stop(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    def unbound_status(self, name: str, rdtype: str) -> str:
        return _unbound_status(self.port, name, rdtype)
