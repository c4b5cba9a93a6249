"""docs/schema.md from survey/store/schema.py, so the dataset's documentation cannot drift.

The schemas give the tables, columns, types and nullability; ``TABLE_DOCS``
and ``COLUMN_DOCS`` beside them give the meanings. A vocabulary named in a
meaning in backticks (`` `SERVER_STATUSES` ``) is spelt out from the tuple of
that name, so a new status value shows up here without an edit.
tests/test_schemadoc.py fails when the committed file differs from ``render()``.

    python -m survey.store.schemadoc > docs/schema.md      (or: survey schema)
"""

from __future__ import annotations

import argparse
import re

import pyarrow as pa

from survey.store import schema

REGENERATE = ".venv/bin/python -m survey.store.schemadoc > docs/schema.md"
VOCABULARIES: dict[str, tuple[str, ...]] = {
    name: getattr(schema, name)
    for name in ("DNS_STATUSES", "MX_KINDS", "TXT_STATUSES", "POLICY_STATUSES", "STS_MODES",
                 "STS_VERDICTS", "SERVER_STATUSES", "PROBE_STATUSES", "CERT_STATUSES",
                 "TLS_VERSIONS")
}
_VOCABULARY = re.compile(r"`(" + "|".join(VOCABULARIES) + r")`")


def type_name(t: pa.DataType) -> str:
    """A short, readable Arrow type: ``list<string>``, ``struct{version: string, ...}``."""
    if pa.types.is_list(t):
        return f"list<{type_name(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct{" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in t) + "}"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, {t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    return str(t)


def meaning(text: str) -> str:
    """A column's meaning with its vocabulary names spelt out as value sets."""
    return _VOCABULARY.sub(
        lambda m: "{" + ", ".join(f"`{v}`" for v in VOCABULARIES[m.group(1)]) + "}", text)


def render() -> str:
    lines = [
        "# Dataset schema",
        "",
        "<!-- Generated from survey/store/schema.py; do not edit. Regenerate with:",
        f"     {REGENERATE} -->",
        "",
        f"Schema version {schema.SCHEMA_VERSION}. One directory per scan holds `manifest.json`",
        "(provenance: tool version, command line, settings, input checksum, resolvers, trust",
        "store, vantage, counts) and one Parquet dataset per table below, written as part",
        "files (`<table>/*.parquet`); pandas, pyarrow, polars and DuckDB read them unchanged.",
        "",
        "Conventions: names are lower-case A-labels without the trailing dot; IPv6 in",
        "RFC 5952 text; TLS versions `SSLv3` .. `TLSv1.3`; cipher suites by IANA name;",
        "lists that are sets are sorted; **null means \"not measured\", an empty list means",
        "\"measured, none\"**. *required* columns are never null.",
        "",
        "Tables: " + ", ".join(f"[`{t}`](#{t})" for t in schema.TABLES) + ".",
    ]
    for table, arrow in schema.SCHEMAS.items():
        docs = schema.COLUMN_DOCS[table]
        about = schema.TABLE_DOCS[table]
        lines += ["", f"## {table}", "", about[0].upper() + about[1:] + ".", "",
                  "| column | type | null? | meaning |", "|---|---|---|---|"]
        for field in arrow:
            nullable = "nullable" if field.nullable else "*required*"
            lines.append(f"| `{field.name}` | `{type_name(field.type)}` | {nullable} "
                         f"| {meaning(docs[field.name])} |")
    lines += ["", "## Value vocabularies", "",
              "| name in survey/store/schema.py | values |", "|---|---|"]
    lines += [f"| `{name}` | {', '.join(f'`{v}`' for v in values)} |"
              for name, values in VOCABULARIES.items()]
    for name, values in schema.VALUE_DOCS.items():
        lines += ["", f"### {name}", "", "| value | meaning |", "|---|---|"]
        lines += [f"| `{value}` | {values[value]} |" for value in VOCABULARIES[name]]
    return "\n".join(lines) + "\n"


def configure(p: argparse.ArgumentParser) -> None:
    """`survey schema`: no options."""


def run(args: argparse.Namespace | None = None) -> int:
    print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
