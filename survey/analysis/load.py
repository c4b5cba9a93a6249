"""Open a scan directory for analysis: DuckDB over the Parquet parts, facts built once.

A ``Scan`` registers the four tables of one scan directory (pyarrow
datasets with the declared schemas, so old and new part files read alike and
a table without parts reads as empty) in its own in-process DuckDB
connection. Nothing is read until a query runs; DuckDB scans the parts with
projection and filter pushdown and spills to disk when it must, so tens of
millions of rows never need to fit in memory, let alone in pandas.

``facts()`` builds the per-unit tables of ``facts.py`` once (domains, MX
host names, addresses); every metric is an aggregation over them.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from survey.analysis import facts
from survey.analysis.providers import NO_MX, SELF_HOSTED, ProviderMap
from survey.proto.ciphers import all_suites
from survey.store import TABLES, open_dataset
from survey.store.location import RemotePath, location
from survey.store.manifest import ManifestError, read_manifest


class AnalysisError(ValueError):
    """A scan directory that cannot be analysed (the message says why)."""


def _suites_table() -> pa.Table:
    suites = all_suites()
    return pa.table({
        "iana_name": [s.iana_name for s in suites],
        "forward_secrecy": [s.forward_secrecy for s in suites],
        "ncsc_class": [s.ncsc_class for s in suites],
        "kx": [s.kx for s in suites],
        "cipher": [s.cipher for s in suites],
    })


def sample_reason(manifest: Mapping[str, Any]) -> str | None:
    """Why a scan covers only part of its list (``--limit``/``--shard``), or None."""
    config = manifest.get("config") or {}
    if config.get("limit"):
        return f"--limit {config['limit']}"
    shard = config.get("shard")
    if shard:
        k, n = shard
        return f"--shard {k}/{n}"
    return None


def completeness(manifest: Mapping[str, Any]) -> str | None:
    """A warning for a scan that did not finish (None when it did, or cannot say)."""
    state = manifest.get("state")
    if not manifest or state in (None, "complete"):
        return None
    return (f"{state}: the scan has not finished; only its committed batches are read, "
            "so some domains of its list are missing")


def runs_note(manifest: Mapping[str, Any]) -> str | None:
    """How many runs made the scan, and the settings a forced resume changed."""
    runs = manifest.get("runs")
    if not isinstance(runs, list) or len(runs) < 2:
        return None
    changed = [c for r in runs if isinstance(r, dict) for c in r.get("forced_changes") or []]
    text = f"{len(runs)} runs (resumed {len(runs) - 1} times)"
    if changed:
        text += "; resumed with different settings: " + "; ".join(changed)
    return text


class Scan:
    """One scan directory, ready for queries.

    ``sample``: None reads it from the manifest (``--limit``/``--shard``);
    pass True for a list that is itself a random subset, False to force a
    census. ``providers``: extra registrable-domain -> provider entries.
    """

    def __init__(self, path: Path | str | RemotePath, *, sample: bool | None = None,
                 providers: Mapping[str, str] | None = None, replicates: int = 1000,
                 seed: int = 0, memory_limit: str | None = None) -> None:
        self.path = location(path)
        if not self.path.is_dir():
            raise AnalysisError(f"{self.path}: not a scan directory")
        try:
            self.manifest: dict[str, Any] = read_manifest(self.path)
        except ManifestError:
            if not any((self.path / t).is_dir() for t in TABLES):
                raise AnalysisError(f"{self.path}: no manifest.json and no tables") from None
            self.manifest = {}
        self.sample_reason = sample_reason(self.manifest)
        if sample is True and self.sample_reason is None:
            self.sample_reason = "declared a sample"
        self.is_sample = bool(self.sample_reason) if sample is None else sample
        self.providers = ProviderMap(providers)
        self.replicates = replicates
        self.seed = seed
        self.con = duckdb.connect()
        # No query here relies on row order; dropping it lets DuckDB stream and spill.
        self.con.execute("SET preserve_insertion_order = false")
        self._spill = tempfile.mkdtemp(prefix="survey-duckdb-")
        weakref.finalize(self, shutil.rmtree, self._spill, True)
        self.con.execute(f"SET temp_directory = '{self._spill}'")
        if memory_limit:     # e.g. "8GB"; DuckDB's default is 80% of the machine's memory
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        for table in TABLES:
            self.con.register(table, open_dataset(self.path, table))
        self.con.register("suites", _suites_table())
        self._facts = False
        self._physical: dict[str, set[str] | None] = {}

    # -- identity ---------------------------------------------------------------------

    @property
    def scan_id(self) -> str:
        return str(self.manifest.get("scan_id") or self.path.name)

    @property
    def label(self) -> str:
        """A short name for charts and tables: the scan id or directory name."""
        return self.scan_id

    def describe(self) -> dict[str, Any]:
        """Provenance worth printing above every result (list, date, state, sample)."""
        m = self.manifest
        inp = m.get("input") or {}
        world = m.get("world") or {}
        return {
            "scan": self.scan_id,
            "directory": str(self.path),
            "list": inp.get("name"),
            "list_sha256": inp.get("sha256"),
            "tranco_id": inp.get("tranco_id"),
            "started_at": m.get("started_at"),
            "ended_at": m.get("ended_at"),
            "state": m.get("state"),
            "profile": (m.get("config") or {}).get("profile"),
            "sample": self.sample_reason if self.is_sample else None,
            "testbed_world": (f"{world.get('profile')} profile, seed {world.get('seed')}, "
                              f"{world.get('domains')} domains") if world else None,
            "completeness": completeness(m),
            "runs": runs_note(m),
            "counts": m.get("counts"),
        }

    # -- what was measured -------------------------------------------------------------

    def physical_columns(self, table: str) -> set[str] | None:
        """The columns the scan's first part file of ``table`` holds (None: no part file).

        Reading a table fills the columns a part file lacks with nulls (an
        older scan); this says which ones those are.
        """
        if table not in self._physical:
            import pyarrow.parquet as pq

            from survey.store.reader import part_files

            parts = part_files(self.path, table)
            if not parts:
                self._physical[table] = None
            else:
                first = parts[0]
                if isinstance(first, Path):
                    schema = pq.read_schema(first)
                else:       # a remote part: through its filesystem
                    filesystem, path = first.arrow()
                    schema = pq.read_schema(path, filesystem=filesystem)
                self._physical[table] = set(schema.names)
        return self._physical[table]

    def not_measured(self, key: str) -> str | None:
        """Why this scan lacks a measurement of ``measured.MEASUREMENTS`` (None: it has it)."""
        from survey.analysis.measured import not_measured

        return not_measured(self, key)

    # -- queries ----------------------------------------------------------------------

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        return self.con.sql(query, params=params) if params else self.con.sql(query)

    def df(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """A (small) query result as pandas."""
        self.facts()
        return self.con.execute(query, params or []).df()

    def rows(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        self.facts()
        return self.con.execute(query, params or []).fetchall()

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def facts(self) -> Scan:
        """Build the per-unit tables (once)."""
        if self._facts:
            return self
        con = self.con
        tails = [r[0] for r in con.execute(facts.DISTINCT_TAILS).fetchall()]
        by_tail = self.providers.arrow(tails)
        con.register("mx_providers", by_tail)
        # tails that are public suffixes themselves: their names are looked up whole
        deep = [t for t, r in zip(tails, by_tail.column("registrable").to_pylist())
                if r is None and t and t.count(".") >= facts.TAIL_LABELS - 1]
        con.register("deep_tails", pa.table({"tail": pa.array(deep, pa.string())}))
        names = [r[0] for r in con.execute(facts.NAMES_UNDER_TAILS).fetchall()] if deep else []
        con.register("mx_providers_full", self.providers.arrow(names))
        con.execute(facts.HOSTS_DEDUP)
        con.execute(facts.CERTS_DEDUP)
        con.execute(facts.MX_ROWS)
        con.execute(facts.domain_facts_sql(NO_MX, SELF_HOSTED))
        con.execute(facts.HOST_FACTS)
        con.execute(facts.IP_FACTS)
        self._facts = True
        return self

    def close(self) -> None:
        self.con.close()

    def __repr__(self) -> str:
        kind = f"sample ({self.sample_reason})" if self.is_sample else "census of its list"
        return f"<Scan {self.scan_id} at {self.path}: {kind}>"


def load(path: Path | str, **kwargs: Any) -> Scan:
    """Open one scan directory (see ``Scan`` for the options)."""
    return Scan(path, **kwargs)


def load_many(paths: Sequence[Path | str] | Path | str, **kwargs: Any) -> list[Scan]:
    """Several scans (a longitudinal dataset), oldest first by start time.

    A single parent directory loads every scan directory under it.
    """
    if isinstance(paths, (str, Path)):
        parent = Path(paths)
        paths = sorted(p for p in parent.iterdir() if (p / "manifest.json").exists())
    scans = [Scan(p, **kwargs) for p in paths]
    return sorted(scans, key=lambda s: str(s.manifest.get("started_at") or s.path.name))
