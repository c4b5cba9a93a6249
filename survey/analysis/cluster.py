"""Analysis beyond one machine: the same Parquet read by Dask DataFrame (or Spark).

Everything else in survey.analysis already streams: DuckDB scans the part
files lazily, keeps only aggregates, and spills to disk past ``memory_limit``
(a synthetic 2M-domain scan needed 2.5 GB), so a top-1M or a full-zone scan
never sits in memory whole on one machine. When the scan directory is on
shared or object storage and a cluster is at hand, the same part files are
a plain Parquet dataset for a cluster engine; this module shows the pattern
once, with Dask DataFrame, so it can be checked against DuckDB in tests:

    from distributed import Client
    client = Client("tcp://scheduler:8786")      # or none: local threads
    hosts = dd.read_parquet("s3://bucket/scan/hosts", columns=["status"])
    hosts.groupby("status").size().compute()

Spark reads the same layout (``spark.read.parquet(".../hosts")``); the
schema and its types are in docs/schema.md. Each table is its own
directory, so a join (mx to hosts on ip, port) is an ordinary distributed
join on those keys.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from survey.analysis.load import AnalysisError, Scan
from survey.store.location import RemotePath
from survey.store.reader import part_files


def status_counts_with_dask(scan: Scan, table: str = "hosts",
                            column: str = "status") -> pd.DataFrame:
    """Rows per value of ``column``, computed by Dask DataFrame (local threads, no cluster)."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise AnalysisError("this needs Dask: pip install 'survey[dask]'") from None
    files = part_files(scan.path, table)
    if not files:
        return pd.DataFrame({column: [], "rows": []})
    # from_map with literal paths: read_parquet would take '[' or '?' in a path as a glob
    frame = dd.from_map(functools.partial(_read_part, columns=[column]), files)
    counts = frame.groupby(column, dropna=False).size().compute(scheduler="threads")
    return (counts.rename("rows").reset_index()
            .sort_values(["rows", column], ascending=[False, True]).reset_index(drop=True))


def _read_part(path: Path | RemotePath, *, columns: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    if isinstance(path, RemotePath):
        with path.fs.open(path.path, "rb") as fh:
            return pq.read_table(fh, columns=columns).to_pandas()
    return pq.read_table(path, columns=columns).to_pandas()
