"""Read a scan directory's tables as pyarrow datasets or pandas frames.

Datasets are opened with the declared schema, so every reader sees the same
types whatever the part files' age, and a table with no part files yet reads
as empty rather than failing. Large scans stay in Arrow (filter and project
before converting); pandas is for the small results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from survey.store.schema import SCHEMAS, TABLES

# Nullable pandas dtypes, so an integer column with nulls stays integer.
_PANDAS_TYPES = {
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def open_dataset(scan_dirs: Path | str | Sequence[Path | str], table: str) -> ds.Dataset:
    """The ``table`` of one scan directory, or of several (a longitudinal union)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    schema = SCHEMAS[table]
    dirs = [scan_dirs] if isinstance(scan_dirs, (str, Path)) else list(scan_dirs)
    files = sorted(str(p) for d in dirs for p in Path(d, table).glob("*.parquet")
                   if not p.name.startswith((".", "_")))
    return ds.dataset(files, schema=schema, format="parquet")


def read_pandas(scan_dirs: Path | str | Sequence[Path | str], table: str, *,
                columns: list[str] | None = None, filter: ds.Expression | None = None,
                ) -> pd.DataFrame:
    arrow = open_dataset(scan_dirs, table).to_table(columns=columns, filter=filter)
    return arrow.to_pandas(types_mapper=_PANDAS_TYPES.get)
