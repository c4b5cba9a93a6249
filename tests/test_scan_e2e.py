"""`survey scan` end to end against a served 2,000-domain testbed world.

One world process serves every test here; scans run as real `survey scan`
subprocesses, so the CLI, the manifest, crash safety and the world's
connection log are all exercised as a user would meet them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from survey.store import open_dataset, read_manifest, read_pandas
from survey.testbed.listen import read_connection_log
from survey.testbed.score import score
from tests.worlds import SURVEY, assert_same_rows, served_world

DOMAINS = 2000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=DOMAINS, seed=2026,
                      scale="fast", profile="default") as directory:
        yield directory


def scan(world, out, *extra, check=True):
    return subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                    "--profile", "starttls", "--quiet", *extra],
                          capture_output=True, text=True, timeout=600, check=check)


@pytest.fixture(scope="module")
def full_scan(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("scans") / "full"
    started = time.time()
    scan(world, out)
    return out, started, time.time()


def test_the_scan_agrees_with_the_truth_everywhere(world, full_scan):
    out, _, _ = full_scan
    result = score(out, world)
    bad = {t: {c: (s.agree, s.total) for c, s in ts.columns.items() if s.agree != s.total}
           for t, ts in result.tables.items()}
    assert result.ok, (bad, result.disagreements[:5])
    manifest = read_manifest(out)
    assert manifest["state"] == "complete" and manifest["counts"]["domains"] == DOMAINS


def test_each_server_once_and_the_per_ip_cap_held(world, full_scan):
    out, started, ended = full_scan
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended]
    assert log, "the world logged no connections during the scan"
    # held_open is the kernel's view at accept time (listen.py), immune to the world's lag
    assert not [r for r in log if r.held_open]
    hosts = read_pandas(out, "hosts")
    assert hosts[["ip", "port"]].duplicated().sum() == 0
    manifest = read_manifest(out)
    stats, retries = manifest["stats"], manifest["config"]["retries"]
    # Each server: one probe plus at most `retries` retries of a temporary refusal (counted in
    # hosts.connections); plus one SNI check per shared address (itself retried at most as often).
    assert hosts["connections"].max() <= 1 + retries
    smtp = [r for r in log if r.service == "smtp"]
    assert len(smtp) <= int(hosts["connections"].sum()) + stats["sni_probes"] * (1 + retries)


def test_a_blocklisted_range_gets_no_connection(world, tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# the large providers\n127.1.0.0/16\n")
    started = time.time()
    scan(world, tmp_path / "blocked", "--blocklist", str(blocklist), "--limit", "300")
    ended = time.time()
    hosts = read_pandas(tmp_path / "blocked", "hosts")
    providers = hosts[hosts["ip"].str.startswith("127.1.")]
    assert len(providers) and set(providers["status"]) == {"blocked_by_policy"}
    assert set(hosts[~hosts["ip"].str.startswith("127.1.")]["status"]) - {"blocked_by_policy"}
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended]
    assert not [r for r in log if r.ip.startswith("127.1.")]


def test_internet_mode_never_touches_loopback_mx_hosts(world, tmp_path):
    info = json.loads((world / "world.json").read_text())
    resolver = f"{info['resolver']['ip']}:{info['resolver']['port']}"
    started = time.time()
    result = subprocess.run(SURVEY + ["scan", info["domain_list"], "--out",
                                      str(tmp_path / "internet"), "--resolver", resolver,
                                      "--limit", "200", "--quiet", "--ehlo-name", "x.test",
                                      "--profile", "starttls"],
                            capture_output=True, text=True, timeout=300, check=False)
    ended = time.time()
    assert result.returncode == 0, result.stderr
    hosts = read_pandas(tmp_path / "internet", "hosts")
    assert len(hosts) and set(hosts["status"]) == {"blocked_by_policy"}
    assert set(hosts["connections"]) == {0}
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended]
    assert log == []


def test_sigkill_midway_then_resume_gives_the_same_rows(world, full_scan, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                         "--profile", "starttls", "--quiet",
                                         "--batch-rows", "200"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((out / "domains").glob("part-*.parquet"))) < 3:
        assert process.poll() is None, "the scan ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    committed = open_dataset(out, "domains").count_rows()
    assert 0 < committed < DOMAINS
    assert read_manifest(out)["state"] == "partial"
    resumed = scan(world, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    full, _, _ = full_scan
    assert_same_rows(full, out)
    assert read_manifest(out)["state"] == "complete"
