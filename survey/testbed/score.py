"""Score a scan dataset against a world's ground truth, per table and column.

Theory of operation
-------------------
Rows are joined on each table's key (``truth.KEYS``: domains by domain, mx by
(domain, mx_host, ip), hosts by (ip, port)). For every covered column (the
truth's column list for the scanner profile) each joined key counts once:
it *agrees* when the scan's value equals the truth's, and a key present on
one side only (a missing or an extra row) disagrees in every column. Cells
the truth marks unknown (``unknown.json``: the answer depends on the
scanner's own client) are skipped, not counted.

Values compare exactly, with the canonical forms of the dataset contract
(lists as written — the truth sorts set-like lists — and null vs [] differ);
only lists of structs (``cipher_suites``, ``server_preference``) compare as
sets, because the contract fixes no order for their entries.

``certs`` truth describes the leaf served for an mx row; the scan's leaf is
found through the scan's own mx row (``chain_sha256[0]`` -> ``certs.sha256``).

When the world ran with other ports than its spec (``--any-ports``), the
truth's SMTP port is replaced by the port world.json names before joining.
The disagreeing cells go to ``disagreements.csv`` (table, key, column, truth,
scan, kind), the counts to ``score.json``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from survey.store.reader import open_dataset
from survey.testbed.truth import KEYS

TABLE_ORDER = ("domains", "mx", "hosts", "certs")


class ScoreError(ValueError):
    """The world or the scan directory cannot be read."""


@dataclass
class ColumnScore:
    agree: int = 0
    total: int = 0
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return self.agree == self.total


@dataclass
class TableScore:
    table: str
    truth_rows: int = 0
    scan_rows: int = 0
    missing_rows: int = 0
    extra_rows: int = 0
    duplicate_rows: int = 0
    columns: dict[str, ColumnScore] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (not self.missing_rows and not self.extra_rows and not self.duplicate_rows
                and all(c.ok for c in self.columns.values()))


@dataclass
class Score:
    profile: str
    tables: dict[str, TableScore]
    disagreements: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "ok": self.ok,
            "tables": {name: {
                "ok": t.ok, "truth_rows": t.truth_rows, "scan_rows": t.scan_rows,
                "missing_rows": t.missing_rows, "extra_rows": t.extra_rows,
                "duplicate_rows": t.duplicate_rows,
                "columns": {c: {"agree": s.agree, "total": s.total, "skipped": s.skipped}
                            for c, s in t.columns.items()},
            } for name, t in self.tables.items()},
            "disagreements": len(self.disagreements),
        }


# -- locating the truth -------------------------------------------------------------------

@dataclass(frozen=True)
class TruthRef:
    truth_dir: Path
    info: dict[str, Any]
    smtp_port: int | None          # the port the world served SMTP on
    spec_smtp_port: int | None     # the port written in the truth


def locate_truth(world: str | Path) -> TruthRef:
    """A world directory, its world.json, or a truth directory -> where the truth is."""
    path = Path(world)
    world_json: dict[str, Any] | None = None
    if path.is_file():
        try:
            world_json = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScoreError(f"{path}: unreadable world.json: {exc}") from None
        base = path.parent
    elif (path / "world.json").is_file():
        return locate_truth(path / "world.json")
    else:
        base = path
    if world_json is not None and isinstance(world_json.get("truth"), dict):
        info = world_json["truth"]
        truth_dir = Path(info.get("dir", "truth"))
        if not truth_dir.is_absolute():
            truth_dir = base / truth_dir
        smtp = (world_json.get("smtp") or {})
        return TruthRef(truth_dir, info, smtp.get("port"), smtp.get("spec_port"))
    for candidate in (base / "truth", base):
        index = candidate / "truth.json"
        if index.is_file():
            info = json.loads(index.read_text(encoding="utf-8"))
            return TruthRef(candidate, info, None, None)
    raise ScoreError(f"{world}: neither a world.json nor a world directory with truth/")


# -- reading and comparing ----------------------------------------------------------------

def _key(row: dict[str, Any], columns: Iterable[str]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in columns)


def _canon(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=True)


def _read_truth(ref: TruthRef, table: str) -> list[dict[str, Any]]:
    name = ref.info.get("files", {}).get(table)
    if name is None:
        return []
    try:
        rows = pq.read_table(ref.truth_dir / name).to_pylist()
    except OSError as exc:
        raise ScoreError(f"{ref.truth_dir / name}: {exc}") from None
    if ref.smtp_port is not None and ref.spec_smtp_port is not None \
            and ref.smtp_port != ref.spec_smtp_port and table in ("mx", "hosts"):
        for r in rows:
            if r.get("port") == ref.spec_smtp_port:
                r["port"] = ref.smtp_port
    return rows


def _read_scan(scan_dir: Path, table: str) -> list[dict[str, Any]]:
    try:
        return open_dataset(scan_dir, table).to_table().to_pylist()
    except (OSError, ValueError) as exc:
        raise ScoreError(f"{scan_dir / table}: {exc}") from None


def _scan_leaves(scan_dir: Path, mx_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scan's certs rows re-keyed by the mx row that served them."""
    certs = {r["sha256"]: r for r in _read_scan(scan_dir, "certs")}
    out = []
    for m in mx_rows:
        chain = m.get("chain_sha256") or []
        if not chain or m.get("ip") is None:
            continue
        cert = certs.get(chain[0])
        row = dict(cert) if cert else {}
        row["sha256"] = f"mx:{m['domain']}|{m['mx_host']}|{m['ip']}"
        out.append(row)
    return out


def score(scan_dir: str | Path, world: str | Path, *, profile: str | None = None,
          max_disagreements: int = 1_000_000) -> Score:
    scan_dir = Path(scan_dir)
    if not scan_dir.is_dir():
        raise ScoreError(f"{scan_dir}: not a directory")
    if not (scan_dir / "manifest.json").is_file():
        raise ScoreError(f"{scan_dir}: no manifest (is this a scan directory?)")
    ref = locate_truth(world)
    profile = profile or _scan_profile(scan_dir) or ref.info.get("profile", "starttls")
    columns_by_profile = ref.info.get("columns", {})
    if profile not in columns_by_profile:
        raise ScoreError(f"the truth covers profiles {sorted(columns_by_profile)}, "
                         f"not {profile!r}")
    covered: dict[str, list[str]] = columns_by_profile[profile]
    keys = {t: tuple(k) for t, k in ref.info.get("keys", {t: list(k) for t, k in
                                                          KEYS.items()}).items()}
    unknown = _unknown_cells(ref)
    tables: dict[str, TableScore] = {}
    disagreements: list[dict[str, Any]] = []
    scan_mx: list[dict[str, Any]] | None = None
    for table in TABLE_ORDER:
        if table not in covered:
            continue
        key_cols = keys[table]
        truth_rows = _read_truth(ref, table)
        if table == "certs":
            if scan_mx is None:
                scan_mx = _read_scan(scan_dir, "mx")
            scan_rows = _scan_leaves(scan_dir, scan_mx)
        else:
            scan_rows = _read_scan(scan_dir, table)
            if table == "mx":
                scan_mx = scan_rows
        cols = [c for c in covered[table] if c not in key_cols]
        ts = TableScore(table, truth_rows=len(truth_rows), scan_rows=len(scan_rows),
                        columns={c: ColumnScore() for c in cols})
        truth_by_key = {_key(r, key_cols): r for r in truth_rows}
        scan_by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in scan_rows:
            k = _key(r, key_cols)
            if k in scan_by_key:
                ts.duplicate_rows += 1
                disagreements.append({"table": table, "key": _json(list(k)), "column": "*",
                                      "truth": "", "scan": "", "kind": "duplicate_row"})
                continue
            scan_by_key[k] = r
        for k in truth_by_key.keys() | scan_by_key.keys():
            t_row, s_row = truth_by_key.get(k), scan_by_key.get(k)
            if t_row is None or s_row is None:
                kind = "missing_row" if s_row is None else "extra_row"
                if s_row is None:
                    ts.missing_rows += 1
                else:
                    ts.extra_rows += 1
                for c in cols:
                    ts.columns[c].total += 1
                disagreements.append({"table": table, "key": _json(list(k)), "column": "*",
                                      "truth": "", "scan": "", "kind": kind})
                continue
            for c in cols:
                cs = ts.columns[c]
                if (table, k, c) in unknown:
                    cs.skipped += 1
                    continue
                cs.total += 1
                if _canon(t_row.get(c)) == _canon(s_row.get(c)):
                    cs.agree += 1
                else:
                    disagreements.append({"table": table, "key": _json(list(k)), "column": c,
                                          "truth": _json(t_row.get(c)),
                                          "scan": _json(s_row.get(c)), "kind": "value"})
        tables[table] = ts
    return Score(profile, tables, disagreements[:max_disagreements])


def _scan_profile(scan_dir: Path) -> str | None:
    try:
        manifest = json.loads((scan_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict):
        return None
    config = manifest.get("config")
    value = (config.get("profile") if isinstance(config, dict) else None) \
        or manifest.get("profile")
    return value if isinstance(value, str) else None


def _unknown_cells(ref: TruthRef) -> set[tuple[str, tuple[Any, ...], str]]:
    name = ref.info.get("unknown")
    if not name or not (ref.truth_dir / name).is_file():
        return set()
    cells = set()
    for u in json.loads((ref.truth_dir / name).read_text(encoding="utf-8")):
        key = list(u["key"])
        if u["table"] in ("mx", "hosts") and ref.smtp_port is not None \
                and key and key[-1] == ref.spec_smtp_port:
            key[-1] = ref.smtp_port
        cells.add((u["table"], tuple(key), u["column"]))
    return cells


# -- output -------------------------------------------------------------------------------

def write_report(result: Score, out_dir: str | Path) -> tuple[Path, Path]:
    """``disagreements.csv`` and ``score.json`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "disagreements.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["table", "key", "column", "truth", "scan",
                                                "kind"])
        writer.writeheader()
        writer.writerows(result.disagreements)
    json_path = out_dir / "score.json"
    json_path.write_text(json.dumps(result.to_json(), indent=1))
    return csv_path, json_path


def summary(result: Score, *, examples: int = 3) -> str:
    """A readable summary; every scan value is JSON-escaped (no terminal escapes)."""
    lines = [f"profile {result.profile}: " + ("ALL AGREE" if result.ok else "DISAGREEMENTS")]
    for name, t in result.tables.items():
        lines.append(f"{name}: {t.truth_rows} truth rows, {t.scan_rows} scan rows, "
                     f"{t.missing_rows} missing, {t.extra_rows} extra"
                     + (f", {t.duplicate_rows} duplicate" if t.duplicate_rows else ""))
        for c, s in t.columns.items():
            pct = 100.0 * s.agree / s.total if s.total else 100.0
            mark = " " if s.ok else "!"
            skipped = f" ({s.skipped} unknown, skipped)" if s.skipped else ""
            lines.append(f"  {mark} {c:<24} {s.agree:>8}/{s.total:<8} {pct:6.2f}%{skipped}")
        shown = [d for d in result.disagreements if d["table"] == name][:examples]
        for d in shown:
            text = (f"      e.g. {d['kind']} key={d['key']} {d['column']}: "
                    f"truth={d['truth']} scan={d['scan']}")
            lines.append(text[:200])
    return "\n".join(lines)
