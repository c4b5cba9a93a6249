"""Every chain kind planted in a testbed world, scanned end to end, scored against its truth.

The world's own TLS servers all serve a chain kind of survey/testbed/chains.py
(``own.chain_kinds = 1``: each certificate defect alone, odd orders,
cross-signs, wildcard and CN-only names); their truth is written from
construction (testbed/truth.py asks chains.py what it built, never
survey.certs). A real ``survey scan`` of the served world must agree with it
on every certificate column.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from survey.testbed import chains
from survey.testbed.generator import generate, load_profile
from survey.testbed.score import score
from tests.worlds import SURVEY, served_world

DOMAINS = 160
SEED = 17
CERT_COLUMNS = {"cert_status", "cert_trusted", "cert_time_valid", "cert_name_match",
                "cert_untrusted_reason"}
# columns whose disagreement means the probe itself did not get through (a loaded
# machine's timeouts), not a certificate verdict
PROBE_COLUMNS = {"mx_status", "host_status", "preference", "port"}


def chain_profile() -> dict:
    profile = load_profile("default")
    profile["name"] = "chains"
    profile["own"] = {**profile["own"], "chain_kinds": 1.0, "anon_preferred": 0.0}
    profile["own"]["legacy"] = {**profile["own"]["legacy"], "share": 0.0}
    return profile


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("chains")
    profile_path = root / "chains.json"
    profile_path.write_text(json.dumps(chain_profile()))
    with served_world(root / "world", domains=DOMAINS, seed=SEED,
                      profile=str(profile_path)) as world:
        out = root / "scan"
        subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                 "--profile", "starttls", "--quiet"],
                       check=True, capture_output=True, timeout=600)
        yield out, world


def test_the_world_plants_every_chain_kind():
    world = generate(DOMAINS, SEED, profile=chain_profile(), scale="fast")
    planted = {s.tls.cert_kind for s in world.smtp_servers.values() if s.tls is not None}
    assert {f"chain:{name}" for name in chains.KIND_NAMES} <= planted
    # a leaf that may not sign is served in TLS 1.3 only (OpenSSL finds no TLS 1.2 suite)
    unsigning = [s for s in world.smtp_servers.values()
                 if s.tls is not None and s.tls.cert_kind == "chain:leaf_key_usage"]
    assert unsigning and all(s.tls.versions == ("TLSv1.3",) for s in unsigning)


def test_the_scan_scores_100_percent_on_every_certificate_column(scanned):
    out, world = scanned
    result = score(out, world)
    mx = result.tables["mx"].columns
    probe_failed = {d["key"] for d in result.disagreements
                    if d["table"] == "mx" and d["column"] in PROBE_COLUMNS}
    verdicts_wrong = [d for d in result.disagreements
                      if d["table"] == "mx" and d["column"] in CERT_COLUMNS
                      and d["key"] not in probe_failed]
    assert not verdicts_wrong, verdicts_wrong[:5]
    for column in CERT_COLUMNS:
        assert mx[column].total > 100
        # everything but rows whose probe a loaded machine's timeout cut short
        assert mx[column].agree >= mx[column].total - len(probe_failed), column
    # the certs rows (san_dns, self_signed, key_bits of each leaf): the same allowance
    certs = [d for d in result.disagreements if d["table"] == "certs"]
    assert len({d["key"] for d in certs}) <= len(probe_failed), certs[:5]
