"""`survey score` against hand-made datasets (written with survey.store.DatasetWriter):
a correct dataset scores 100 %, and one planted wrong value in any table is found."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from survey.cli import main as cli_main
from survey.store.writer import DatasetWriter
from survey.testbed import serve
from survey.testbed.score import ScoreError, score, summary

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    serve.build_world(out, domains=150, seed=9, scale="fast")
    return out


def _truth(world_dir: Path, table: str) -> list[dict]:
    return pq.read_table(world_dir / "truth" / f"{table}.parquet").to_pylist()


def correct_rows(world_dir: Path, *, port: int | None = None) -> dict[str, list[dict]]:
    """What a perfect scanner would write: the truth, plus the byte-level columns."""
    rows = {t: copy.deepcopy(_truth(world_dir, t)) for t in ("domains", "mx", "hosts")}
    leaves = {r["sha256"]: r for r in _truth(world_dir, "certs")}
    certs = []
    for r in rows["mx"]:
        key = f"mx:{r['domain']}|{r['mx_host']}|{r['ip']}"
        if key in leaves:
            sha = hashlib.sha256(key.encode()).hexdigest()
            r["chain_sha256"] = [sha, "0" * 64]
            r["sni"] = r["mx_host"]
            leaf = dict(leaves[key], sha256=sha, der=b"\x30\x00", subject="CN=x",
                        probed_at=NOW)
            certs.append(leaf)
    rows["certs"] = list({c["sha256"]: c for c in certs}.values())
    for r in rows["hosts"]:
        if r["cipher_suite"] is None and r["tls_version"]:
            r["cipher_suite"] = "TLS_CHOSEN_BY_THE_CLIENT"   # an unknown cell: not scored
        r["connections"] = 1
    for table in rows.values():
        for r in table:
            r["probed_at"] = NOW
            if port is not None and r.get("port") is not None:
                r["port"] = port
    return rows


def write_scan(scan_dir: Path, rows: dict[str, list[dict]], profile: str = "starttls") -> Path:
    with DatasetWriter(scan_dir, batch_rows=64) as writer:
        for table, table_rows in rows.items():
            for r in table_rows:
                writer.write(table, r)
    (scan_dir / "manifest.json").write_text(json.dumps({"config": {"profile": profile}}))
    return scan_dir


def test_correct_dataset_scores_everything(world_dir: Path, tmp_path: Path, capsys) -> None:
    scan = write_scan(tmp_path / "scan", correct_rows(world_dir))
    result = score(scan, world_dir)
    assert result.ok, summary(result)
    assert not result.disagreements
    hosts = result.tables["hosts"]
    assert hosts.columns["cipher_suite"].skipped > 0
    assert all(c.total == c.agree > 0 for t in result.tables.values()
               for c in t.columns.values())
    assert cli_main(["score", str(scan), "--world", str(world_dir)]) == 0
    out = capsys.readouterr().out
    assert "ALL AGREE" in out and "100.00%" in out
    assert (scan / "score" / "score.json").exists()


PLANTS = [
    ("domains", "mx_kind", lambda v: "none" if v != "none" else "mx"),
    ("domains", "mta_sts_mx_patterns", lambda v: (v or []) + ["planted.test"]),
    ("mx", "cert_status", lambda v: "expired" if v != "expired" else "valid"),
    ("mx", "preference", lambda v: (v or 0) + 1),
    ("hosts", "banner", lambda v: (v or "") + "x"),
    ("hosts", "ehlo_capabilities", lambda v: None),
    ("certs", "san_dns", lambda v: ["planted.invalid"]),
]


@pytest.mark.parametrize(("table", "column", "change"), PLANTS)
def test_one_planted_wrong_value_is_found(world_dir: Path, tmp_path: Path, table: str,
                                          column: str, change, capsys) -> None:
    rows = correct_rows(world_dir)
    victim = next(r for r in rows[table] if r.get(column) is not None) \
        if column != "mta_sts_mx_patterns" else next(
            r for r in rows[table] if r.get("mta_sts_policy_status") == "ok")
    victim[column] = change(victim[column])
    scan = write_scan(tmp_path / "scan", rows)
    result = score(scan, world_dir)
    assert not result.ok
    assert [(d["table"], d["column"], d["kind"]) for d in result.disagreements] == [
        (table, column, "value")]
    col = result.tables[table].columns[column]
    assert col.total - col.agree == 1
    assert all(c.ok for name, t in result.tables.items() for c_name, c in t.columns.items()
               if (name, c_name) != (table, column))
    assert cli_main(["score", str(scan), "--world", str(world_dir)]) == 1
    with open(scan / "score" / "disagreements.csv", newline="") as fh:
        (only,) = list(csv.DictReader(fh))
    assert (only["table"], only["column"]) == (table, column)
    assert "!" in capsys.readouterr().out


def test_missing_extra_and_duplicate_rows(world_dir: Path, tmp_path: Path) -> None:
    rows = correct_rows(world_dir)
    dropped = rows["mx"].pop(3)
    rows["domains"].append(dict(rows["domains"][0], domain="extra.test", input="extra.test"))
    rows["hosts"].append(dict(rows["hosts"][0]))
    result = score(write_scan(tmp_path / "scan", rows), world_dir)
    kinds = sorted((d["table"], d["kind"]) for d in result.disagreements)
    assert ("mx", "missing_row") in kinds and ("domains", "extra_row") in kinds
    assert ("hosts", "duplicate_row") in kinds
    assert result.tables["mx"].missing_rows == 1
    assert result.tables["domains"].extra_rows == 1
    assert not result.ok
    # the missing mx row counts against every mx column
    assert all(c.total - c.agree >= 1 for c in result.tables["mx"].columns.values())
    assert dropped["domain"] in json.dumps(result.disagreements)


def test_served_port_replaces_the_spec_port(world_dir: Path, tmp_path: Path) -> None:
    world_json = json.loads(json.dumps(serve.world_json(
        world_dir, serve.World.load(world_dir / "spec.json"), dns=("127.53.0.1", 5300),
        smtp=2525, https=8443, services={"dns": "ready"})))
    (tmp_path / "w").mkdir()
    path = tmp_path / "w" / "world.json"
    path.write_text(json.dumps(world_json))
    scan = write_scan(tmp_path / "scan", correct_rows(world_dir, port=2525))
    assert score(scan, path).ok
    assert not score(scan, world_dir).ok   # without world.json the spec port (25) is truth


def test_versions_profile_compares_struct_lists_as_sets(world_dir: Path,
                                                        tmp_path: Path) -> None:
    rows = correct_rows(world_dir)
    for r in rows["hosts"]:
        if r["cipher_suites"]:
            r["cipher_suites"] = list(reversed(r["cipher_suites"]))
    scan = write_scan(tmp_path / "scan", rows, profile="ciphers")
    result = score(scan, world_dir)
    assert result.profile == "ciphers" and result.ok, summary(result)
    assert "cipher_suites" in result.tables["hosts"].columns
    # a starttls-profile scan leaves them null: not scored under that profile
    assert "cipher_suites" not in score(scan, world_dir, profile="starttls").tables[
        "hosts"].columns


def test_hostile_values_are_escaped_in_the_summary(world_dir: Path, tmp_path: Path) -> None:
    rows = correct_rows(world_dir)
    host = next(r for r in rows["hosts"] if r["banner"])
    host["banner"] = "220 \x1b[31m<script>alert(1)</script>\r\n"
    text = summary(score(write_scan(tmp_path / "scan", rows), world_dir))
    assert "\x1b" not in text and "\\u001b" in text


def test_unreadable_inputs(tmp_path: Path, world_dir: Path) -> None:
    with pytest.raises(ScoreError):
        score(tmp_path / "nope", world_dir)
    (tmp_path / "scan").mkdir()
    with pytest.raises(ScoreError):
        score(tmp_path / "scan", tmp_path)
    with pytest.raises(ScoreError):
        score(tmp_path / "scan", world_dir, profile="bogus")
    assert cli_main(["score", str(tmp_path / "scan"), "--world", str(tmp_path)]) == 2
    with pytest.raises(ScoreError, match="no manifest"):
        score(tmp_path / "scan", world_dir)      # a directory that is no scan: not "empty"


def test_empty_scan_disagrees_everywhere(world_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "manifest.json").write_text("{}")
    result = score(tmp_path / "scan", world_dir)
    assert not result.ok
    assert result.tables["domains"].missing_rows == 150
