"""testssl.sh and sslscan against the lab's Postfix listeners, and what they saw.

Theory of operation
-------------------
Both tools resolve names through ``/etc/resolv.conf``, whose nameserver is not
on loopback here. They are pointed at ``IP:port`` (no name to resolve), told
not to look anything up (testssl.sh ``--nodns none``), and, belt and braces,
run inside a private mount namespace (``unshare -m``) in which a loopback-only
resolv.conf is bind-mounted over the machine's file: whatever they still try to
resolve goes to 127.0.0.1 and fails at once. The machine's file is never
edited; the mount disappears with the namespace.

The runs start together (``PeerRuns.start``, one process group each, so the
session can stop every one of them on any failure) and overlap with our own
scans; the comparison waits for them. Their machine-readable reports --
testssl.sh ``--jsonfile`` (flat JSON), sslscan ``--xml`` -- are parsed into one
``PeerView`` per (tool, listener): versions offered, suites accepted per
version (IANA names), and for testssl.sh whether the server enforces its own
cipher order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from survey.proto.ciphers import by_code, by_iana_name
from tests.requirements import needs

UNSHARE_WRAPPER = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
# The peer scanners, each run in a private mount namespace (unshare -m needs root).
NEEDS_PEERS = needs("testssl", "sslscan", "unshare", "mount", root=True)
PEER_TIMEOUT_S = 200          # testssl.sh on a loaded 2-core machine; ~40 s when idle

TESTSSL_VERSIONS = {"SSLv2": "SSLv2", "SSLv3": "SSLv3", "TLS1": "TLSv1.0",
                    "TLS1_1": "TLSv1.1", "TLS1_2": "TLSv1.2", "TLS1_3": "TLSv1.3"}
TESTSSL_CIPHER_PREFIX = {"tls1": "TLSv1.0", "tls1_1": "TLSv1.1", "tls1_2": "TLSv1.2",
                         "tls1_3": "TLSv1.3", "ssl3": "SSLv3"}
SSLSCAN_VERSIONS = {("ssl", "2"): "SSLv2", ("ssl", "3"): "SSLv3", ("tls", "1.0"): "TLSv1.0",
                    ("tls", "1.1"): "TLSv1.1", ("tls", "1.2"): "TLSv1.2",
                    ("tls", "1.3"): "TLSv1.3"}
SSLSCAN_CIPHER_VERSIONS = {"SSLv3": "SSLv3", "TLSv1.0": "TLSv1.0", "TLSv1.1": "TLSv1.1",
                           "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}


class PeerError(RuntimeError):
    """A peer tool failed or wrote a report we cannot read."""


@dataclass
class PeerView:
    """What one tool saw on one listener."""

    tool: str
    label: str
    versions: set[str] = field(default_factory=set)
    suites: dict[str, set[str]] = field(default_factory=dict)
    server_order: bool | None = None      # None: the tool does not say
    unknown: list[str] = field(default_factory=list)   # suites we could not name
    error: str | None = None              # the tool found no TLS to test: why it says so
    preferred: dict[str, str] = field(default_factory=dict)   # sslscan: the server's pick
                                          # from the tool's own order, per version

    def all_suites(self) -> set[tuple[str, str]]:
        return {(v, s) for v, names in self.suites.items() for s in names}


def parse_testssl(path: Path, label: str) -> PeerView:
    """testssl.sh ``--jsonfile`` (flat JSON: a list of {id, finding, ...})."""
    try:
        records = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        raise PeerError(f"testssl.sh report {path}: {exc}") from None
    view = PeerView("testssl.sh", label)
    for record in records:
        rid, finding = record.get("id", ""), record.get("finding", "")
        if rid in TESTSSL_VERSIONS:
            if finding.startswith("offered"):
                view.versions.add(TESTSSL_VERSIONS[rid])
        elif rid.startswith("cipher-") and "_x" in rid:
            proto, _, code = rid[len("cipher-"):].rpartition("_x")
            version = TESTSSL_CIPHER_PREFIX.get(proto)
            suite = by_code(int(code, 16)) if version else None
            name = finding.split()[-1] if finding else ""
            if suite is None or (by_iana_name(name) is not None and name != suite.iana_name):
                view.unknown.append(f"{proto} {code} {name}")
                continue
            view.suites.setdefault(version, set()).add(suite.iana_name)
        elif rid == "cipher_order":
            view.server_order = finding.startswith("server")
        elif rid == "optimal_proto" and "doesn't seem to be a TLS/SSL enabled" in finding:
            view.error = finding
    if view.error:
        view.server_order = None     # testssl.sh still says "NOT a cipher order configured"
    return view


def parse_sslscan(path: Path, label: str) -> PeerView:
    """sslscan ``--xml`` (protocol and cipher elements under ssltest)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise PeerError(f"sslscan report {path}: {exc}") from None
    view = PeerView("sslscan", label)
    test = root.find("ssltest")
    if test is None:
        error = root.find("error")
        if error is None:
            raise PeerError(f"sslscan report {path}: neither ssltest nor error")
        view.error = (error.text or "").strip()
        return view
    for proto in test.findall("protocol"):
        version = SSLSCAN_VERSIONS.get((proto.get("type"), proto.get("version")))
        if version and proto.get("enabled") == "1":
            view.versions.add(version)
    for cipher in test.findall("cipher"):
        version = SSLSCAN_CIPHER_VERSIONS.get(cipher.get("sslversion", ""))
        suite = by_code(int(cipher.get("id", "0x0"), 16))
        if version is None or suite is None:
            view.unknown.append(f"{cipher.get('sslversion')} {cipher.get('id')} "
                                f"{cipher.get('cipher')}")
            continue
        view.suites.setdefault(version, set()).add(suite.iana_name)
        if cipher.get("status") == "preferred":
            view.preferred[version] = suite.iana_name
    return view


@dataclass
class PeerRun:
    tool: str
    label: str
    report: Path
    log: Path
    proc: subprocess.Popen
    started: float

    def wait(self, deadline: float) -> PeerView:
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_group(self.proc)
            raise PeerError(f"{self.tool} on {self.label} did not finish in time") from None
        if not self.report.exists() or self.report.stat().st_size == 0:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise PeerError(f"{self.tool} on {self.label} exited {self.proc.returncode} "
                            f"without a report:\n{tail}")
        parse = parse_testssl if self.tool == "testssl.sh" else parse_sslscan
        return parse(self.report, self.label)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a peer run and everything it started (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def testssl_command(target: str, report: Path) -> list[str]:
    return ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
            "--connect-timeout", "5", "--openssl-timeout", "5", "--starttls", "smtp",
            "-p", "-E", "-P", "--jsonfile", str(report), target]


def sslscan_command(target: str, report: Path) -> list[str]:
    return ["sslscan", "--no-colour", "--starttls-smtp", "--timeout=5",
            f"--xml={report}", target]


@dataclass
class PeerRuns:
    directory: Path
    runs: dict[tuple[str, str], PeerRun] = field(default_factory=dict)

    @classmethod
    def start(cls, directory: Path, targets: dict[str, str],
              testssl_labels: set[str]) -> PeerRuns:
        """Start sslscan on every target and testssl.sh on ``testssl_labels``."""
        directory.mkdir(parents=True, exist_ok=True)
        resolv = directory / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        runs = cls(directory)
        try:
            for label, target in targets.items():
                for tool in ("testssl.sh", "sslscan"):
                    if tool == "testssl.sh" and label not in testssl_labels:
                        continue
                    runs._launch(tool, label, target, resolv)
        except BaseException:
            runs.stop()
            raise
        return runs

    def _launch(self, tool: str, label: str, target: str, resolv: Path) -> None:
        stem = f"{tool.split('.')[0]}-{label}"
        report = self.directory / (f"{stem}.json" if tool == "testssl.sh" else f"{stem}.xml")
        log = self.directory / f"{stem}.log"
        command = (testssl_command(target, report) if tool == "testssl.sh"
                   else sslscan_command(target, report))
        with open(log, "wb") as out:
            proc = subprocess.Popen(["unshare", "-m", "sh", "-c", UNSHARE_WRAPPER, str(resolv),
                                     *command], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "TERM": "dumb"})
        self.runs[(tool, label)] = PeerRun(tool, label, report, log, proc, time.monotonic())

    def views(self, timeout: float = PEER_TIMEOUT_S) -> dict[tuple[str, str], PeerView]:
        deadline = time.monotonic() + timeout
        return {key: run.wait(deadline) for key, run in self.runs.items()}

    def stop(self) -> None:
        for run in self.runs.values():
            stop_group(run.proc)
