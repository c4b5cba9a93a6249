"""The Dask DataFrame pattern of survey.analysis.cluster agrees with DuckDB on the same parts."""

from __future__ import annotations

import pandas as pd

from survey import analysis as sa
from survey.analysis.cluster import status_counts_with_dask
from tests.test_analysis_fixture import write_fixture


def test_dask_counts_equal_duckdb_counts(tmp_path):
    scan = sa.load(write_fixture(tmp_path)[0])
    for table, column in (("hosts", "status"), ("domains", "mx_kind"), ("mx", "cert_status")):
        dask = status_counts_with_dask(scan, table, column)
        duck = scan.con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1").fetchall()
        got = {(None if pd.isna(v) else v, int(n)) for v, n in dask.itertuples(index=False)}
        assert got == {(v, n) for v, n in duck}
        assert dask["rows"].sum() == scan.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
