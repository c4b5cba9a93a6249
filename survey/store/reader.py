"""Read a scan directory's tables as pyarrow datasets or pandas frames.

Datasets are opened with the declared schema, so every reader sees the same
types whatever the part files' age, and a table with no part files yet reads
as empty rather than failing. Large scans stay in Arrow (filter and project
before converting); pandas is for the small results, and is imported only
when asked for (``pyarrow.dataset`` imports it too): a scan's start never
needs it, and importing it took longer than a small scan's work
(benchmarks/peers.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from survey.store.location import RemotePath, location
from survey.store.schema import SCHEMAS, TABLES

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as ds


@cache
def _pandas_types() -> dict:
    """Nullable pandas dtypes, so an integer column with nulls stays integer."""
    import pandas as pd

    return {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
            pa.bool_(): pd.BooleanDtype()}


def open_dataset(scan_dirs: Path | str | RemotePath | Sequence[Path | str | RemotePath],
                 table: str) -> ds.Dataset:
    """The ``table`` of one scan directory, or of several (a longitudinal union)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    import pyarrow.dataset as ds  # imports pandas too: only when a table is read

    if isinstance(scan_dirs, (str, Path, RemotePath)):
        dirs = [location(scan_dirs)]
    else:
        dirs = [location(d) for d in scan_dirs]
    remote = [d for d in dirs if isinstance(d, RemotePath)]
    if not remote:
        files = sorted(str(p) for d in dirs for p in part_files(d, table))
        return ds.dataset(files, schema=SCHEMAS[table], format="parquet")
    if len(remote) != len(dirs) or len({id(d.fs) for d in remote}) > 1:
        raise ValueError("scans read together must be on one filesystem")
    filesystem, _ = remote[0].arrow()
    files = sorted(p.path for d in remote for p in part_files(d, table)
                   if isinstance(p, RemotePath))
    return ds.dataset(files, schema=SCHEMAS[table], format="parquet", filesystem=filesystem)


def part_files(scan_dir: Path | str | RemotePath, table: str) -> list[Path | RemotePath]:
    """The committed part files of ``table``, as literal paths (never glob patterns).

    A single-process scan that has not completed may hold parts of a batch whose
    ``domains`` part (the commit marker, store/writer.py) was never written: they
    are left out, so a reader sees every domain wholly or not at all.
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    scan_dir = location(scan_dir)
    parts = sorted((p for p in (scan_dir / table).glob("*.parquet")
                    if not p.name.startswith((".", "_"))), key=str)
    committed = committed_batches(scan_dir) if table != "domains" else None
    return parts if committed is None else [p for p in parts if p.name in committed]


def committed_batches(scan_dir: Path | RemotePath) -> set[str] | None:
    """Names of the committed batches of an unfinished single-process scan; None when
    every part counts (a complete scan, a cluster scan, a directory without manifest)."""
    import json

    try:
        manifest = json.loads((scan_dir / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("state") == "complete" \
            or manifest.get("cluster"):
        return None
    return {p.name for p in (scan_dir / "domains").glob("part-*.parquet")}


def count_rows(scan_dir: Path | str | RemotePath, table: str) -> int:
    """Rows of a table, from the part files' footers (reads no data, imports no pandas)."""
    import pyarrow.parquet as pq

    total = 0
    for part in part_files(scan_dir, table):
        if isinstance(part, RemotePath):
            with part.fs.open(part.path, "rb") as fh:
                total += pq.read_metadata(fh).num_rows
        else:
            total += pq.read_metadata(part).num_rows
    return total


def read_pandas(scan_dirs: Path | str | Sequence[Path | str], table: str, *,
                columns: list[str] | None = None, filter: ds.Expression | None = None,
                ) -> pd.DataFrame:
    arrow = open_dataset(scan_dirs, table).to_table(columns=columns, filter=filter)
    return arrow.to_pandas(types_mapper=_pandas_types().get)
