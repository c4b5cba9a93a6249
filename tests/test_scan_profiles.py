"""`survey scan --profile versions|ciphers` end to end against a served 2,000-domain world.

One world process serves every test here (OpenSSL servers, tlslite-ng legacy
servers, hostile servers); scans run as real `survey scan` subprocesses one
after another, so the world's connection log tells, per address, how many
connections each scan made and whether two were ever open at once.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from survey.store import read_manifest, read_pandas
from survey.testbed.listen import connections_by_ip, read_connection_log
from survey.testbed.model import World
from survey.testbed.score import score
from tests.worlds import SURVEY, served_world

DOMAINS = 2000
VERSIONS = 5
# Enough domains in flight to keep the world busy, few enough that its one event loop
# still answers DNS and policy fetches within the fast scale's one-second deadlines
# while thousands of hellos go by (200 made policy fetches time out on a loaded
# two-core machine; 25 and 50 did not).
CONCURRENCY = "25"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=DOMAINS, seed=2026,
                      scale="fast", profile="default") as directory:
        yield directory


def scan(world: Path, out: Path, *extra: str) -> Path:
    result = subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                      "--quiet", "--concurrency", CONCURRENCY, *extra],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return out


def smtp_log(world: Path, out: Path):
    """The world's SMTP connections made while the scan in ``out`` ran."""
    manifest = read_manifest(out)
    started = datetime.fromisoformat(manifest["started_at"]).timestamp()
    ended = datetime.fromisoformat(manifest["ended_at"]).timestamp()
    return [r for r in read_connection_log(world / "connections.jsonl")
            if started <= r.start <= ended and r.service == "smtp"]


@pytest.fixture(scope="module")
def versions_scan(world, tmp_path_factory):
    return scan(world, tmp_path_factory.mktemp("scans") / "versions", "--profile", "versions")


@pytest.fixture(scope="module")
def ciphers_scan(world, tmp_path_factory):
    return scan(world, tmp_path_factory.mktemp("scans") / "ciphers", "--profile", "ciphers")


def assert_scores_100(out: Path, world: Path, profile: str) -> None:
    result = score(out, world)
    assert result.profile == profile
    bad = {t: {c: (s.agree, s.total) for c, s in ts.columns.items() if s.agree != s.total}
           for t, ts in result.tables.items()}
    assert result.ok, (bad, result.disagreements[:5])
    assert "versions_supported" in result.tables["hosts"].columns


def test_versions_profile_agrees_with_the_truth_everywhere(world, versions_scan):
    assert_scores_100(versions_scan, world, "versions")
    hosts = read_pandas(versions_scan, "hosts")
    assert hosts["cipher_suites"].isna().all() and hosts["server_preference"].isna().all()


def test_ciphers_profile_agrees_with_the_truth_everywhere(world, ciphers_scan):
    assert_scores_100(ciphers_scan, world, "ciphers")
    assert "cipher_suites" in score(ciphers_scan, world).tables["hosts"].columns


def test_legacy_servers_are_enumerated_through_hand_built_hellos(world, ciphers_scan):
    spec = World.load(world / "spec.json")
    legacy = {ip for ip, s in spec.smtp_servers.items()
              if s.tls is not None and s.tls.engine == "tlslite"}
    hosts = read_pandas(ciphers_scan, "hosts").set_index("ip")
    found = hosts.loc[sorted(legacy & set(hosts.index))]
    assert len(found), "the default world has tlslite-ng servers"
    versions = {v for vs in found["versions_supported"].dropna() for v in vs}
    names = {s["name"] for rows in found["cipher_suites"].dropna() for s in rows}
    assert "SSLv3" in versions
    assert any("RC4" in n for n in names) and any("3DES" in n for n in names)
    assert any("NULL" in n for n in names)


def test_probe_status_says_what_was_measured(world, versions_scan, ciphers_scan):
    spec = World.load(world / "spec.json")
    for out in (versions_scan, ciphers_scan):
        hosts = read_pandas(out, "hosts")
        for row in hosts.itertuples():
            behaviour = spec.smtp_servers[row.ip].behaviour
            if behaviour == "tls_truncated":
                expected = "failed"         # no hello can be decided: not measured
            elif row.status in ("ok", "tls_handshake_failed"):
                expected = "ok"
            else:
                expected = "not_run"        # STARTTLS's 220 never came
            assert row.probe_status == expected, (row.ip, behaviour, row.status)
        assert read_manifest(out)["stats"]["partial_enumerations"] == 0


def sni_checks(spec: World) -> dict[str, int]:
    """SNI probes per address: one check when several MX names share it, then one per
    further name when its certificate depends on SNI (scan/servers.py)."""
    names: dict[str, set[str]] = defaultdict(set)
    for host in spec.mx_hosts.values():
        for ip in host.ips:
            names[ip].add(host.name)
    checks = {}
    for ip, server in spec.smtp_servers.items():
        shared = len(names[ip])
        per_name = server.tls is not None and server.tls.cert_kind == "sni_dependent"
        checks[ip] = 0 if shared < 2 else shared - 1 if per_name else 1
    return checks


def extra_connections(spec: World) -> dict[str, int]:
    """Connections the starttls stage may add per address: greylisting refusals that
    were retried, and SNI checks."""
    checks = sni_checks(spec)
    return {ip: checks[ip] + (s.limit if s.behaviour == "greylist" else 0)
            for ip, s in spec.smtp_servers.items()}


def test_connections_per_server_stay_within_the_bound(world, versions_scan, ciphers_scan):
    spec = World.load(world / "spec.json")
    extra = extra_connections(spec)
    truth = {r["ip"]: r for r in pq.read_table(world / "truth" / "hosts.parquet").to_pylist()}
    for out, with_pairs in ((versions_scan, False), (ciphers_scan, True)):
        counts = connections_by_ip(smtp_log(world, out))
        assert counts
        over = {}
        for ip, n in counts.items():
            pairs = len(truth[ip]["cipher_suites"] or ()) if with_pairs else 0
            bound = pairs + VERSIONS + 2 + extra[ip]
            if n > bound:
                over[ip] = (n, bound, spec.smtp_servers[ip].behaviour)
        assert not over, over
        # a hosts row counts its server's connections but the SNI checks
        rows = read_pandas(out, "hosts").set_index("ip")["connections"]
        checks = sni_checks(spec)
        for ip, n in counts.items():
            assert 0 <= n - rows[ip] <= checks[ip], (ip, n, rows[ip])


def test_one_connection_at_a_time_per_server_even_under_a_421_limit(world, versions_scan,
                                                                   ciphers_scan):
    # held_open is the kernel's view at accept time (listen.py), immune to the world's lag;
    # the probes wait for the server's close before the next connection (net/probes.py)
    for out in (versions_scan, ciphers_scan):
        log = smtp_log(world, out)
        assert log and not [r for r in log if r.held_open]
    # servers that answer 421 beyond a few concurrent connections never had to
    spec = World.load(world / "spec.json")
    limited = [ip for ip, s in spec.smtp_servers.items() if s.behaviour == "per_ip_limit"]
    hosts = read_pandas(ciphers_scan, "hosts").set_index("ip")
    assert limited and set(hosts.loc[limited, "probe_status"]) == {"ok"}


def test_a_budget_cuts_enumerations_short_as_partial(world, tmp_path):
    out = scan(world, tmp_path / "budget", "--profile", "ciphers", "--budget", "6",
               "--limit", "150")
    hosts = read_pandas(out, "hosts")
    truth = {r["ip"]: r for r in pq.read_table(world / "truth" / "hosts.parquet").to_pylist()}
    partial = hosts[hosts["probe_status"] == "partial"]
    assert len(partial) and (hosts["connections"] <= 6).all()
    for row in partial.itertuples():
        found = {(s["version"], s["name"]) for s in row.cipher_suites}
        true = {(s["version"], s["name"]) for s in truth[row.ip]["cipher_suites"]}
        assert found <= true and set(row.versions_supported) <= set(truth[row.ip]
                                                                    ["versions_supported"])
        assert "budget" in row.transcript.splitlines()[-1]
    assert read_manifest(out)["stats"]["partial_enumerations"] == len(partial)
