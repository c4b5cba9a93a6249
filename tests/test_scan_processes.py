"""`survey scan --processes N`: all cores of one machine, the per-IP limits global.

``--processes 2`` is a Dask local cluster of two worker processes (the same as
``--dask local:2``, scan/cluster/); ``--processes 1`` is the ordinary
single-process scan. Against a served 300-domain world: the rows equal a
single-process scan's, the manifest names the two workers, and the world's
connection log shows no connection arriving while the scan held another to the
same address (the kernel's TCP state at accept: listen.held_by_client).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from survey.store import read_manifest
from survey.testbed.listen import read_connection_log
from survey.testbed.score import score
from tests.worlds import SURVEY, assert_same_rows, served_world

pytest.importorskip("distributed")

DOMAINS = 300


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=DOMAINS, seed=11,
                      scale="fast", profile="default") as directory:
        yield directory


def scan(world: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                    "--profile", "starttls", "--quiet", *extra],
                          capture_output=True, text=True, timeout=600, check=False)


def test_processes_2_is_a_local_cluster_with_the_rows_of_one_process(world, tmp_path):
    single = tmp_path / "single"
    assert scan(world, single, "--processes", "1").returncode == 0
    assert "cluster" not in read_manifest(single)        # 1: the ordinary scan
    out = tmp_path / "two"
    started = time.time()
    result = scan(world, out, "--processes", "2")
    ended = time.time()
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["state"] == "complete" and manifest["counts"]["domains"] == DOMAINS
    assert manifest["cluster"]["local"] is True and len(manifest["cluster"]["workers"]) == 2
    assert_same_rows(single, out)
    assert score(out, world).ok
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended]
    assert log and len({r.ip for r in log}) > 50
    crowded = [r for r in log if r.held_open]
    assert not crowded, crowded[:5]


def test_processes_and_dask_together_are_refused(world, tmp_path):
    result = scan(world, tmp_path / "x", "--processes", "2", "--dask", "local:2")
    assert result.returncode == 2
    assert "not both" in result.stderr
    assert not (tmp_path / "x").exists()
