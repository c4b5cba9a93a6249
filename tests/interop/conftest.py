"""Package fixtures of the interop suite: the lab (real Postfix, Unbound, nginx), scans of
it with `survey scan --testbed`, and testssl.sh / sslscan runs against it.

Every daemon and peer run is started by a fixture and stopped in its
finaliser, so a failing test (or a failing start) leaves nothing running;
package scope stops them as soon as the last interop test is done, not at the
end of the whole test session.
tests/interop/setup.sh installs the packages (.ci/run calls it). Without them, or
without root, every test here skips saying so (tests/requirements.py; .ci/run fails instead).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from survey.store import open_dataset
from tests.interop.lab import LISTENERS, SCAN_DOMAINS, ZONE, Lab
from tests.interop.peers import PeerRuns

SURVEY = [sys.executable, "-m", "survey.cli"]
# Servers answer at once on loopback: short timeouts keep a wrong answer from turning into
# a slow test, while staying far from anything a healthy daemon needs.
FAST = ["--per-ip-spacing", "0", "--rate", "1000", "--dns-rate", "1000", "--retry-delay",
        "0.1", "--connect-timeout", "5", "--greeting-timeout", "10", "--command-timeout", "10",
        "--tls-timeout", "10", "--policy-timeout", "10", "--ehlo-name", "scanner.interop.test"]
# testssl.sh is slow (bash, sleeps around every hello, ~15-35 CPU seconds a listener): it
# runs on the listeners whose suite sets differ most -- modern (TLS 1.2+), legacy (TLS 1.0+,
# RSA + ECDSA), restricted (server order) -- and on the two that never reach TLS. The
# Postfix-defaults listeners (selfsigned, expired, untrusted: legacy's suites minus the
# ECDSA ones) are left to sslscan, which runs on every listener.
TESTSSL_LABELS = {"modern", "legacy", "restricted", "plain", "reject"}
# (listener, tool) -> (versions agree?, suites agree?, server order agrees?), filled by
# test_tools_agree and printed at the end of the session.
AGREEMENT: dict[tuple[str, str], tuple[str, str, str]] = {}


def pytest_terminal_summary(terminalreporter):
    finger = sys.modules.get("tests.interop.test_posttls_finger")
    if finger is not None and finger.TABLE:
        terminalreporter.section("interop: posttls-finger vs survey's certificate verdicts")
        for line in finger.pytest_terminal_summary_lines():
            terminalreporter.write_line(line)
    dane = sys.modules.get("tests.interop.test_dane_posttls_finger")
    if dane is not None and dane.TABLE:
        terminalreporter.section("interop: posttls-finger -l dane vs survey's dane column")
        for line in dane.pytest_terminal_summary_lines():
            terminalreporter.write_line(line)
    if not AGREEMENT:
        return
    write = terminalreporter.write_line
    terminalreporter.section("interop: survey scan --profile ciphers vs testssl.sh / sslscan")
    write("| listener | tool | versions agree | suites agree | server order agrees |")
    write("|---|---|---|---|---|")
    for (label, tool), cells in sorted(AGREEMENT.items()):
        write(f"| {label} | {tool} | " + " | ".join(cells) + " |")


@pytest.fixture(scope="package")
def lab():
    lab = Lab.create()
    try:
        yield lab.start()
    finally:
        lab.stop()
        lab.remove()


@pytest.fixture(scope="package")
def scan_list(lab) -> Path:
    path = lab.root / "domains.txt"
    path.write_text("".join(f"{name}.{ZONE}\n" for name in SCAN_DOMAINS))
    return path


def survey_scan(lab: Lab, domains: Path, out: Path, *extra: str,
                testbed: bool = True) -> subprocess.CompletedProcess:
    command = SURVEY + ["scan", str(domains), "--out", str(out), "--quiet",
                        "--resolver", lab.resolver, "--smtp-port", str(lab.smtp_port),
                        "--https-port", str(lab.https_port), "--ca-file", str(lab.pki.ca_file),
                        *FAST, *extra]
    if testbed:
        command.append("--testbed")
    return subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)


@dataclass
class ScanResult:
    out: Path
    domains: dict[str, dict]
    mx: dict[tuple[str, str], dict]        # (domain, mx_host) -> row
    hosts: dict[str, dict]                 # ip -> row (one port in the lab)
    certs: dict[str, dict]                 # sha256 -> row

    @classmethod
    def read(cls, out: Path) -> ScanResult:
        def rows(table):
            return open_dataset(out, table).to_table().to_pylist()
        return cls(out, {r["domain"]: r for r in rows("domains")},
                   {(r["domain"], r["mx_host"]): r for r in rows("mx")},
                   {r["ip"]: r for r in rows("hosts")}, {r["sha256"]: r for r in rows("certs")})


def scanned(lab: Lab, domains: Path, name: str, *extra: str) -> ScanResult:
    out = lab.root / "scans" / name
    done = survey_scan(lab, domains, out, *extra)
    assert done.returncode == 0, f"survey scan {' '.join(extra)} failed:\n{done.stderr}"
    return ScanResult.read(out)


@pytest.fixture(scope="package")
def peer_runs(lab):
    """testssl.sh and sslscan, started once and left running beside our scans."""
    targets = {listener.label: f"{listener.ip}:{lab.smtp_port}" for listener in LISTENERS}
    runs = PeerRuns.start(lab.root / "peers", targets, TESTSSL_LABELS)
    try:
        yield runs
    finally:
        runs.stop()


# The scans run before the peers start (test modules run in name order: test_lab,
# test_scan_*, then test_tools_agree), so Postfix's log of the scans' sessions holds ours
# alone: under load testssl.sh sends commands Postfix counts as "unknown".
@pytest.fixture(scope="package")
def starttls_scan(lab, scan_list) -> ScanResult:
    return scanned(lab, scan_list, "starttls", "--profile", "starttls")


@pytest.fixture(scope="package")
def versions_scan(lab, scan_list) -> ScanResult:
    return scanned(lab, scan_list, "versions", "--profile", "versions")


@pytest.fixture(scope="package")
def ciphers_scan(lab, scan_list) -> ScanResult:
    return scanned(lab, scan_list, "ciphers", "--profile", "ciphers")


@pytest.fixture(scope="package")
def peer_views(peer_runs):
    return peer_runs.views()
