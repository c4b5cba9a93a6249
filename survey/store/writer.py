"""Parquet part files, written atomically, so a crash never leaves half a file.

A scan streams rows into a ``DatasetWriter``; every ``batch_rows`` rows (and
on close) the buffered rows of each table become one Parquet part file:
written under a dot-prefixed temporary name, fsynced, then renamed into place. Readers
(pyarrow.dataset ignores names starting with "." or "_") therefore only ever
see whole part files, and a resumed scan can trust every part it finds.

Writing without pandas. pyarrow's first conversion of Python objects (``pa.array``,
``Table.from_pylist``) imports pandas when it is installed, only to recognise pandas
objects (its pandas shim) and ``pd.NA`` (its C++ converter, on every conversion until
the import succeeds): 0.3 s of CPU, about a third of a small ``survey scan``'s whole
run (benchmarks/peers.py). Rows are dicts of Python values, never pandas objects, so
``pandas_unloaded()`` lets a scan write with pandas refused: when pandas is not loaded
yet, it is not importable inside the block, and pyarrow converts without it. After
the block pandas imports as usual (``read_pandas``, ``to_pandas``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from survey.store.location import RemotePath, location, write_atomic
from survey.store.schema import TABLES, to_table

DEFAULT_BATCH_ROWS = 5000


class _PandasRefused(importlib.abc.MetaPathFinder):
    """Refuses ``pandas`` and its submodules (module doc, "Writing without pandas")."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"{fullname} is not loaded while a scan writes "
                                      "(survey.store.writer.pandas_unloaded)", name=fullname)
        return None


@contextlib.contextmanager
def pandas_unloaded() -> Iterator[None]:
    """Inside: ``import pandas`` fails, unless pandas was loaded before (then: no change)."""
    if "pandas" in sys.modules:
        yield
        return
    finder = _PandasRefused()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def write_part(directory: Path | RemotePath, name: str, table: str,
               rows: Sequence[Mapping[str, Any]]) -> Path | RemotePath:
    """Write ``rows`` as ``directory/name`` atomically; returns the final path."""
    directory = location(directory)
    final = directory / name
    sink = pa.BufferOutputStream()
    pq.write_table(to_table(table, rows), sink, compression="zstd")
    write_atomic(final, sink.getvalue().to_pybytes())
    return final


class TableWriter:
    """Buffers rows of one table and writes them as numbered part files.

    ``writer_id`` distinguishes concurrent writers (shards, workers, resumed
    runs) so their part names never collide.
    """

    def __init__(self, directory: Path | str | RemotePath, table: str, *,
                 writer_id: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.directory = location(directory)
        self.table = table
        self.writer_id = writer_id or secrets.token_hex(4)
        self.batch_rows = batch_rows
        self.rows_written = 0
        self.parts: list[Path | RemotePath] = []
        self._buffer: list[Mapping[str, Any]] = []

    def write(self, row: Mapping[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows:
            self.flush()

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def flush(self) -> None:
        if not self._buffer:
            return
        name = f"part-{self.writer_id}-{len(self.parts):06d}.parquet"
        self.parts.append(write_part(self.directory, name, self.table, self._buffer))
        self.rows_written += len(self._buffer)
        self._buffer = []

    def close(self) -> None:
        self.flush()


class DatasetWriter:
    """Rows of all four tables, written in batches that commit together.

    A batch is one part file per table with the same name
    (``part-<writer>-<seq>.parquet``); the ``domains`` part is written last,
    always (empty if need be), and is the batch's commit marker. A crash can
    leave ``mx``/``hosts``/``certs`` parts of a batch whose ``domains`` part
    never appeared: ``discard_uncommitted`` removes them before a resume, so
    every domain is either wholly in the dataset or wholly absent.
    On an exception inside ``with`` the buffered rows are still committed:
    rows are independent, and every row measured before a crash is kept.
    """

    def __init__(self, scan_dir: Path | str, *, writer_id: str | None = None,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.scan_dir = location(scan_dir)
        self.writer_id = writer_id or secrets.token_hex(4)
        self.batch_rows = batch_rows
        self.batches = 0
        self._buffers: dict[str, list[Mapping[str, Any]]] = {t: [] for t in TABLES}
        self._counts = {t: 0 for t in TABLES}
        self._buffered = 0

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        self.write_group([(table, row)])

    def write_group(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Rows that must land in the same batch (a domain row and its mx rows)."""
        for table, row in rows:
            self._buffers[table].append(row)
            self._buffered += 1
        if self._buffered >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered rows as one batch (nothing to do when all are empty)."""
        if not any(self._buffers.values()):
            return
        name = f"part-{self.writer_id}-{self.batches:06d}.parquet"
        for table in (*(t for t in TABLES if t != "domains"), "domains"):
            rows = self._buffers[table]
            if rows or table == "domains":
                write_part(self.scan_dir / table, name, table, rows)
                self._counts[table] += len(rows)
            self._buffers[table] = []
        self._buffered = 0
        self.batches += 1

    def discard(self) -> None:
        """Drop the buffered rows (measurements known to be wrong, e.g. a dead resolver's)."""
        self._buffers = {t: [] for t in TABLES}
        self._buffered = 0

    def counts(self) -> dict[str, int]:
        """Rows committed so far, per table."""
        return dict(self._counts)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def discard_uncommitted(scan_dir: Path | str | RemotePath) -> list[Path | RemotePath]:
    """Remove part files of batches whose ``domains`` part (the commit marker) is missing."""
    where = location(scan_dir)
    committed = {p.name for p in (where / "domains").glob("part-*.parquet")}
    removed: list[Path | RemotePath] = []
    for table in TABLES:
        directory = where / table
        for path in directory.glob("*"):
            stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
            orphan = path.name.startswith("part-") and path.name not in committed
            if stale_tmp or (table != "domains" and orphan):
                path.unlink()
                removed.append(path)
    return removed
