"""Scan directories behind fsspec URLs: the store, a whole scan and the analysis on one.

fsspec's memory filesystem stands in for an object store: it is a real fsspec
filesystem with an object store's rules (no rename, no directories of its
own), and it needs no server. A file:// URL goes through the same code with
the local atomic-rename rule (tests/test_scan_dask.py writes a distributed
scan that way, from several processes).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from survey import analysis as sa
from survey.analysis import metrics
from survey.cli import main
from survey.store import (
    DatasetWriter,
    count_rows,
    discard_uncommitted,
    read_manifest,
    read_pandas,
    write_manifest,
)
from survey.store.location import RemotePath, location
from tests.worlds import assert_same_rows, served_world

_names = itertools.count()
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def memory_url() -> str:
    return f"memory://survey-tests/{next(_names)}"


def domain(name: str) -> dict:
    return {"domain": name, "input": name, "rank": 1, "dns_status": "ok", "probed_at": NOW}


def test_a_url_is_a_remote_path_and_a_name_is_a_path(tmp_path):
    assert isinstance(location(memory_url()), RemotePath)
    assert location(str(tmp_path)) == tmp_path
    child = location("memory://a/b") / "c"
    assert child.name == "c" and location(str(child)) == child   # the URL round-trips


def test_batches_commit_and_uncommitted_parts_go_on_an_object_store():
    out = location(memory_url())
    with DatasetWriter(out, writer_id="w", batch_rows=2) as writer:
        for name in ("a.example", "b.example", "c.example"):
            writer.write_group([("hosts", {"ip": f"192.0.2.{len(name)}", "port": 25,
                                           "status": "ok", "probed_at": NOW}),
                                ("domains", domain(name))])
    assert count_rows(out, "domains") == 3 and count_rows(out, "hosts") == 3
    assert sorted(read_pandas(out, "domains")["domain"]) == ["a.example", "b.example",
                                                             "c.example"]
    # a crash between a batch's hosts part and its domains part
    (out / "domains" / "part-w-000001.parquet").unlink()
    removed = discard_uncommitted(out)
    assert [p.name for p in removed] == ["part-w-000001.parquet"]
    assert count_rows(out, "hosts") == 2
    assert not [p for p in (out / "hosts").iterdir() if p.name.startswith(".")]


def test_the_manifest_on_an_object_store():
    out = location(memory_url())
    write_manifest(out, {"scan_id": "x", "state": "partial"})
    assert read_manifest(out)["state"] == "partial"
    assert read_manifest(str(out))["scan_id"] == "x"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=300, seed=5) as directory:
        yield directory


def test_a_whole_scan_to_an_object_store_equals_one_on_disk(world, tmp_path):
    remote = memory_url()
    for out in (remote, str(tmp_path / "local")):
        assert main(["scan", "--world", str(world), "--out", out, "--profile", "starttls",
                     "--quiet"]) == 0
    assert_same_rows(tmp_path / "local", location(remote))
    assert read_manifest(remote)["state"] == "complete"
    scan = sa.load(remote)
    assert scan.path == location(remote)
    counts = metrics.denominators(scan)
    assert len(counts) and read_manifest(remote)["counts"]["domains"] == 300
    # an existing scan is refused without --resume, on an object store too
    assert main(["scan", "--world", str(world), "--out", remote, "--quiet"]) == 2


def test_memory_urls_are_refused_for_a_cluster(world, capsys):
    assert main(["scan", "--world", str(world), "--out", memory_url(), "--dask", "local:1",
                 "--quiet"]) == 2
    assert "shared filesystem" in capsys.readouterr().err


def test_a_report_of_a_scan_at_a_url_needs_an_out_directory(capsys):
    out = location(memory_url())
    write_manifest(out, {"scan_id": "x", "state": "complete"})
    assert main(["report", str(out), "--quiet"]) == 2
    assert "--out" in capsys.readouterr().err
