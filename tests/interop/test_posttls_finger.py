"""Postfix as the sender oracle: survey's certificate verdicts against ``posttls-finger``.

For every TLS listener of the lab (tests/interop/lab.py ``LISTENERS``) and a
real Postfix listener per chain kind of survey.testbed.chains
(``CHAIN_LISTENERS``: each defect alone, odd orders, cross-signs, wildcard and
CN-only names), Postfix's own TLS client, ``posttls-finger`` (postfix
package), connects at ``-l verify`` and at ``-l secure`` with the lab's CA
file and the listener's host name as the name to match, and says:

  Verified   chain trusted, in date, and the name matches
  Untrusted  anything else: Postfix 3.7 hands the name to OpenSSL, so a name
             mismatch is a verify error (62) too; "Trusted" (chain good, name
             not checked) does not come at these levels

survey's row for the same (domain, MX host) must say the same
(docs/certificates.md has the mapping and the table): Verified <=> cert_status
valid, Untrusted otherwise. And where posttls-finger names a verify error,
survey's cert_untrusted_reason stands for it.

posttls-finger is pointed at ``[IP]:port`` (no name to resolve, no MX lookup)
and runs in a private mount namespace with a loopback-only resolv.conf, as the
peer scanners do (tests/interop/peers.py): it cannot reach past loopback.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.interop.conftest import ScanResult, scanned
from tests.interop.expected import TLS_LISTENERS
from tests.interop.lab import CHAIN_DOMAINS, CHAIN_LISTENERS, NEEDS_LAB, ZONE, Listener
from tests.interop.peers import UNSHARE_WRAPPER
from tests.requirements import needs

pytestmark = [pytest.mark.interop, NEEDS_LAB, needs("posttls-finger", "unshare", "mount",
                                                    root=True)]

LEVELS = ("verify", "secure")
OUTCOME = re.compile(r"(Verified|Trusted|Untrusted|Anonymous) TLS connection established")
FAILED = re.compile(r"verification failed for [^:]*:\d+: (?:num=\d+:)?(.*)")
# posttls-finger's verify messages (OpenSSL's X509_verify_cert_error_string, or Postfix's
# own "untrusted issuer") -> the reasons they stand for
MESSAGES = {
    "self-signed certificate": {"self_signed"},
    "self-signed certificate in certificate chain": {"untrusted_root"},
    "unable to get local issuer certificate": {"unknown_issuer", "akid_mismatch"},
    "unable to get issuer certificate": {"unknown_issuer", "akid_mismatch"},
    "unable to verify the first certificate": {"unknown_issuer", "akid_mismatch"},
    "invalid CA certificate": {"not_ca", "key_usage"},
    "unsuitable certificate purpose": {"purpose", "key_usage"},
    "path length constraint exceeded": {"path_length"},
    "permitted subtree violation": {"name_constraints"},
    "excluded subtree violation": {"name_constraints"},
    "unhandled critical extension": {"unknown_critical_extension"},
    "certificate signature failure": {"signature_invalid"},
    "EE certificate key too weak": {"weak_key"},
    "CA certificate key too weak": {"weak_key"},
    "CA signature digest algorithm too weak": {"weak_signature"},
    "untrusted issuer": {"untrusted_root", "unknown_issuer", "akid_mismatch"},  # Postfix's
    "not designated for use as a server certificate": {"purpose", "key_usage"},  # Postfix's
    "not designated for use as a CA certificate": {"purpose"},
    "certificate has expired": {None},        # time: survey's reason stays null
    "certificate not yet valid": {None},
    "hostname mismatch": {None},              # a name: survey's reason stays null
}
# (listener label, level) -> (posttls-finger's outcome, survey's, its verify message)
TABLE: dict[tuple[str, str], tuple[str, str, str]] = {}


def pytest_terminal_summary_lines() -> list[str]:
    lines = ["| listener | level | posttls-finger | survey | posttls-finger's error |",
             "|---|---|---|---|---|"]
    for (label, level), (theirs, ours, message) in sorted(TABLE.items()):
        lines.append(f"| {label} | {level} | {theirs} | {ours} | {message} |")
    return lines


def survey_outcome(row: dict) -> str:
    # Postfix 3.7 hands the name to OpenSSL (X509_VERIFY_PARAM_set1_host): a name that
    # does not match is a verify error (62), so "Trusted" never comes at these levels
    return "Verified" if row["cert_status"] == "valid" else "Untrusted"


@pytest.fixture(scope="package")
def chain_scan(lab) -> ScanResult:
    domains = lab.root / "chain-domains.txt"
    domains.write_text("".join(f"{name}.{ZONE}\n" for name in CHAIN_DOMAINS))
    return scanned(lab, domains, "chains", "--profile", "starttls")


@pytest.fixture(scope="package")
def finger_env(lab):
    resolv = lab.root / "finger-resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
    env["MAIL_CONFIG"] = str(lab.root / "postfix" / "conf")
    return resolv, env


def posttls_finger(lab, finger_env, listener: Listener, level: str) -> tuple[str, str]:
    resolv, env = finger_env
    command = ["unshare", "-m", "sh", "-c", UNSHARE_WRAPPER, str(resolv),
               "posttls-finger", "-c", "-l", level, "-F", str(lab.pki.ca_file),
               "-o", "smtp_dns_support_level=disabled",
               f"[{listener.ip}]:{lab.smtp_port}", listener.host]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    text = done.stdout + done.stderr
    outcome = OUTCOME.search(text)
    assert outcome, text
    failed = FAILED.search(text)
    return outcome.group(1), failed.group(1).strip() if failed else ""


def check(lab, finger_env, listener: Listener, row: dict) -> None:
    for level in LEVELS:
        theirs, message = posttls_finger(lab, finger_env, listener, level)
        ours = survey_outcome(row)
        TABLE[(listener.label, level)] = (theirs, ours, message)
        assert theirs == ours, (listener.label, level, message, row)
        if message:
            reasons = next((r for m, r in MESSAGES.items() if message.startswith(m)), None)
            assert reasons is not None, f"unmapped posttls-finger message {message!r}"
            assert row["cert_untrusted_reason"] in reasons, (listener.label, message, row)


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=lambda listener: listener.label)
def test_every_interop_listener_agrees_with_posttls_finger(lab, starttls_scan, finger_env,
                                                            listener):
    rows = [r for (domain, host), r in starttls_scan.mx.items() if host == listener.host]
    assert rows, f"no mx row for {listener.host}"
    check(lab, finger_env, listener, rows[0])


@pytest.mark.parametrize("listener", CHAIN_LISTENERS, ids=lambda listener: listener.label)
def test_every_chain_kind_served_by_postfix_agrees_with_posttls_finger(
        lab, chain_scan, finger_env, listener):
    from survey.testbed.chains import kind

    row = chain_scan.mx[(f"{listener.label}.{ZONE}", listener.host)]
    assert row["host_status"] == "ok", row
    check(lab, finger_env, listener, row)
    # and survey's verdicts are those the chain was built to have
    built = kind(listener.cert.removeprefix("chain:"), listener.host)
    assert (row["cert_trusted"], row["cert_untrusted_reason"], row["cert_time_valid"],
            row["cert_name_match"]) == (built.trusted, built.reason, built.time_valid,
                                        built.name_match), built.note
