"""`survey scan --testbed --profile versions|ciphers` against the real Postfix listeners.

The expected versions and suites are the listeners' configuration expanded by
OpenSSL itself (tests/interop/expected.py), not a previous scan.
"""

from __future__ import annotations

import re

import pytest

from tests.interop.expected import TLS_LISTENERS, configured
from tests.interop.lab import LISTENERS, NEEDS_LAB

pytestmark = [pytest.mark.interop, NEEDS_LAB]
BUDGET = 200          # survey scan's default --budget: connections per server


def ids(listener) -> str:
    return listener.label


NO_TLS = [listener for listener in LISTENERS if listener not in TLS_LISTENERS]


def suite_pairs(row) -> set[tuple[str, str]]:
    return {(s["version"], s["name"]) for s in row["cipher_suites"]}


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=ids)
def test_versions_profile(versions_scan, listener):
    row = versions_scan.hosts[listener.ip]
    assert (row["status"], row["probe_status"]) == ("ok", "ok")
    assert row["versions_supported"] == list(configured(listener).versions)
    assert row["cipher_suites"] is None            # null: not measured by this profile


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=ids)
def test_ciphers_profile_versions_and_suites(ciphers_scan, listener):
    expected = configured(listener)
    row = ciphers_scan.hosts[listener.ip]
    assert (row["status"], row["probe_status"]) == ("ok", "ok")
    assert row["versions_supported"] == list(expected.versions)
    got = suite_pairs(row)
    assert {"missing": sorted(expected.suite_set() - got),
            "extra": sorted(got - expected.suite_set())} == {"missing": [], "extra": []}
    assert row["connections"] <= BUDGET


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=ids)
def test_ciphers_profile_server_preference(ciphers_scan, listener):
    expected = configured(listener)
    row = ciphers_scan.hosts[listener.ip]
    assert row["server_preference"] == [{"version": v, "enforced": expected.server_order}
                                        for v in expected.versions]
    if expected.server_order:
        for version, names in expected.suites.items():
            ranked = sorted((s for s in row["cipher_suites"] if s["version"] == version),
                            key=lambda s: s["preference_order"])
            assert [s["name"] for s in ranked] == list(names), version


@pytest.mark.parametrize("listener", NO_TLS, ids=ids)
def test_ciphers_profile_without_tls(ciphers_scan, starttls_scan, listener):
    row = ciphers_scan.hosts[listener.ip]
    assert row["status"] == starttls_scan.hosts[listener.ip]["status"]
    assert row["probe_status"] == "not_run"
    assert row["versions_supported"] is None and row["cipher_suites"] is None


def test_profiles_do_not_change_the_verdicts(starttls_scan, versions_scan, ciphers_scan):
    """The deeper profiles add host columns; domain and mx verdicts stay the same."""
    volatile = {"probed_at", "sni"}

    def stable(rows):
        return {key: {c: v for c, v in row.items() if c not in volatile}
                for key, row in rows.items()}
    for scan in (versions_scan, ciphers_scan):
        assert stable(scan.domains) == stable(starttls_scan.domains)
        assert stable(scan.mx) == stable(starttls_scan.mx)


def test_smtp_dialogue_never_goes_beyond_starttls(lab, starttls_scan, versions_scan,
                                                  ciphers_scan):
    """Postfix counts each session's commands: EHLO, STARTTLS and QUIT only, in every
    profile. The peers start after the scans (conftest), so these sessions are the lab
    checks' and ours; testssl.sh under load sends commands Postfix counts as "unknown"."""
    counts = re.findall(r"disconnect from \S+ (.*)$", lab.maillog.read_text(), re.MULTILINE)
    assert len(counts) > 100                       # the enumeration's hellos are in there
    used = {item.split("=")[0] for line in counts for item in line.split()}
    assert used <= {"ehlo", "starttls", "quit", "commands"}, used
