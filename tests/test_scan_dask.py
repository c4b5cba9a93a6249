"""`survey scan --dask local:2` against a served 2,000-domain world: same rows, caps held.

The distributed scan runs as a real `survey scan` subprocess with a local
Dask cluster of two worker processes. Its rows are compared with a
single-process scan of the same world, the world's connection log shows the
per-IP cap held across both workers, and two crashes are survived: one
worker killed mid-run (Dask redoes its tasks elsewhere), and the whole
cluster killed (the same command with --resume finishes it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from survey.scan.cluster import tasks
from survey.scan.cluster.driver import TASKS_PER_WORKER, DistributedScan
from survey.scan.cluster.stage import read_pickle
from survey.scan.config import CONVERSATIONS_PER_PROCESS, ScanConfig
from survey.store import open_dataset, read_manifest
from survey.testbed.listen import read_connection_log
from survey.testbed.score import score
from tests.worlds import SURVEY, assert_same_rows, served_world

DOMAINS = 2000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=DOMAINS, seed=7,
                      scale="fast", profile="default") as directory:
        yield directory


def scan_command(world: Path, out: Path | str, *extra: str) -> list[str]:
    return SURVEY + ["scan", "--world", str(world), "--out", str(out), "--profile", "starttls",
                     "--quiet", *extra]


def scan(world: Path, out: Path | str, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(scan_command(world, out, *extra), capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def single(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "scan"
    scan(world, out)
    return out


@pytest.fixture(scope="module")
def distributed(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("dask") / "scan"
    started = time.time()
    # as a URL: the workers write through fsspec, as they would to an object store
    scan(world, f"file://{out}", "--dask", "local:2")
    return out, started, time.time()


def test_two_workers_give_the_rows_of_a_single_process_scan(single, distributed, world):
    out, _, _ = distributed
    assert_same_rows(single, out)
    assert score(out, world).ok
    manifest = read_manifest(out)
    assert manifest["state"] == "complete" and manifest["counts"]["domains"] == DOMAINS
    cluster = manifest["cluster"]
    assert len(cluster["workers"]) == 2
    assert all(p["done"] == p["tasks"] for p in cluster["phases"].values())
    assert manifest["stats"]["servers"] == manifest["counts"]["hosts"]


def test_the_per_ip_cap_holds_across_workers(distributed, world):
    out, started, ended = distributed
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended]
    assert {r.service for r in log} >= {"smtp", "https"}
    # Asked of the kernel, not of the handlers' end times: on a loaded 2-core machine the
    # world's one event loop noted ends up to 0.33 s after the scanner had closed and opened
    # its next connection to the address, and an end-time check with 0.1 s of slack failed CI.
    crowded = [r for r in log if r.held_open]
    assert not crowded, crowded[:5]
    # and the addresses really were spread over both workers' tasks
    per_partition = [json.loads(p.read_text())["hosts"]
                     for p in (out / "_cluster" / "done").glob("r0-p*.json")]
    assert len([n for n in per_partition if n]) >= 4


def test_a_worker_killed_midway_has_its_tasks_redone(single, world, tmp_path):
    out = tmp_path / "killed-worker"
    process = subprocess.Popen(scan_command(world, out, "--dask", "local:2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        victim = wait_for_worker_then_servers(out, process)
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert_same_rows(single, out)
    manifest = read_manifest(out)
    assert manifest["state"] == "complete"
    survivors = {w["pid"] for w in manifest["cluster"]["workers_at_end"].values()}
    assert victim not in survivors and len(survivors) == 2   # the nanny started a new one


def test_the_same_command_resumes_after_the_whole_cluster_stops(single, world, tmp_path):
    out = tmp_path / "killed-cluster"
    command = scan_command(world, out, "--dask", "local:2")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_worker_then_servers(out, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert read_manifest(out)["state"] == "partial"
    assert not (out / "domains").exists() or open_dataset(out, "domains").count_rows() < DOMAINS
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    scan(world, out, "--dask", "local:2", "--resume")
    assert_same_rows(single, out)
    assert read_manifest(out)["state"] == "complete"


def test_a_ctrl_c_records_the_run_as_interrupted_and_the_resume_finishes_it(single, world,
                                                                          tmp_path):
    out = tmp_path / "interrupted"
    command = scan_command(world, out, "--dask", "local:2")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        wait_for_worker_then_servers(out, process)
        os.killpg(process.pid, signal.SIGINT)     # what a terminal's Ctrl-C sends: the group
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == 130, err[-3000:]
    runs = read_manifest(out)["runs"]
    assert [run["state"] for run in runs] == ["interrupted"] and runs[0]["ended_at"]
    scan(world, out, "--dask", "local:2", "--resume")
    assert_same_rows(single, out)
    manifest = read_manifest(out)
    assert [run["state"] for run in manifest["runs"]] == ["interrupted", "complete"]


def test_a_single_process_resume_of_a_dask_scan_is_refused(distributed, world):
    out, _, _ = distributed
    result = subprocess.run(scan_command(world, out, "--resume"), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2 and "--dask" in result.stderr


def wait_for_worker_then_servers(out: Path, process: subprocess.Popen) -> int:
    """Wait until the server phase is under way; a worker's pid from the manifest."""
    deadline = time.monotonic() + 300
    done = out / "_cluster" / "done"
    shards = None
    while shards is None or len(list(done.glob("dns-*.json"))) < shards:
        assert process.poll() is None, "the scan ended before the server phase"
        assert time.monotonic() < deadline, "the DNS phase did not end"
        time.sleep(0.05)
        if shards is None and (out / "manifest.json").exists():
            plan = read_manifest(out)["cluster"]["plan"]
            shards = plan["shards"] if plan else None
    time.sleep(2.0)   # into the server phase (about 15 s here)
    assert process.poll() is None and not list(done.glob("join-*.json"))
    workers = read_manifest(out)["cluster"]["workers"]
    return next(iter(workers.values()))["pid"]


@pytest.mark.parametrize("domains, slots, shards, partitions", [
    (2000, 8, 8, 8),        # one wave: a shard per task slot
    (100, 8, 2, 8),         # small shards are not worth a task: 50 domains at least
    (1, 4, 1, 4),
    (0, 4, 1, 4),           # an empty list still has its (empty) shard
])
def test_the_plan_cuts_the_input_into_shards_once(tmp_path, domains, slots, shards, partitions):
    names = tmp_path / "list.txt"
    names.write_text("".join(f"d{i}.example\n" for i in range(domains)))
    config = ScanConfig(input=names, out=tmp_path / "out", ehlo_name="scanner.example")
    planner = DistributedScan(config, "local:1")
    plan = planner._plan(slots, slots // TASKS_PER_WORKER)
    assert (plan.shards, plan.partitions, plan.share) == (shards, partitions, slots)
    # the conversations past their greeting: the default per process, shared by its tasks
    assert plan.conversations == CONVERSATIONS_PER_PROCESS // TASKS_PER_WORKER
    cut = [read_pickle(tasks.input_path(config.out, s)) for s in range(plan.shards)]
    assert [t.domain for chunk in cut for t in chunk] == [f"d{i}.example"
                                                          for i in range(domains)]
    assert planner._plan(slots * 2, slots) == plan   # kept on resume, whatever the cluster


def test_conversations_are_a_total_shared_by_the_tasks(tmp_path):
    names = tmp_path / "list.txt"
    names.write_text("d.example\n")
    config = ScanConfig(input=names, out=tmp_path / "out", ehlo_name="scanner.example",
                        conversations=100)
    assert DistributedScan(config, "local:2")._plan(8, 2).conversations == 12
