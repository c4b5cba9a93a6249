"""The dataset store: Arrow schemas, atomic Parquet part files, manifest, reader.

A scan directory holds ``manifest.json`` and one Parquet dataset per table
(``domains/``, ``mx/``, ``hosts/``, ``certs/``), each written as part files.
"""

from survey.store.manifest import read_manifest, write_manifest
from survey.store.reader import count_rows, open_dataset, read_pandas
from survey.store.schema import SCHEMA_VERSION, SCHEMAS, TABLES, to_table
from survey.store.writer import DatasetWriter, TableWriter, discard_uncommitted

__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TABLES",
    "DatasetWriter",
    "TableWriter",
    "count_rows",
    "discard_uncommitted",
    "open_dataset",
    "read_manifest",
    "read_pandas",
    "to_table",
    "write_manifest",
]
