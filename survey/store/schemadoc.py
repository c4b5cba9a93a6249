"""docs/schema.md from survey/store/schema.py, so the dataset's documentation cannot drift.

The schemas give the tables, columns, types and nullability; ``TABLE_DOCS``
and ``COLUMN_DOCS`` beside them give the meanings. A vocabulary named in a
meaning in backticks (`` `HostStatus` ``) is spelt out from survey/vocabulary.py,
and every vocabulary's values are listed with their meanings from there, so a
new status value shows up here without an edit.
tests/test_schemadoc.py fails when the committed file differs from ``render()``.

    python -m survey.store.schemadoc > docs/schema.md      (or: survey schema)
"""

from __future__ import annotations

import argparse
import re

import pyarrow as pa

from survey import vocabulary
from survey.store import schema

REGENERATE = ".venv/bin/python -m survey.store.schemadoc > docs/schema.md"
VOCABULARIES: dict[str, type[vocabulary.Vocabulary]] = {v.__name__: v for v in vocabulary.ALL}
# Rules stated once in survey/vocabulary.py, printed under their vocabulary.
RULES: dict[str, str] = {"HostStatus": vocabulary.FINAL_STATUS_RULE}
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
        lambda m: "{" + ", ".join(f"`{v}`" for v in VOCABULARIES[m.group(1)].values()) + "}",
        text)


def first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def columns_of(name: str) -> list[str]:
    """``table.column`` of every column whose values come from vocabulary ``name``."""
    return [f"`{table}.{column}`" for table, columns in schema.VOCABULARIES.items()
            for column, v in columns.items() if v.__name__ == name]


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
              "Declared in survey/vocabulary.py (one `StrEnum` each); writing a table with a",
              "value outside its column's vocabulary fails.", "",
              "| vocabulary | columns | values |", "|---|---|---|"]
    lines += [f"| [`{name}`](#{name.lower()}) | {', '.join(columns_of(name)) or '-'} "
              f"| {', '.join(f'`{v}`' for v in values.values())} |"
              for name, values in VOCABULARIES.items()]
    for name, values in VOCABULARIES.items():
        lines += ["", f"### {name}", "", first_line(values.__doc__)]
        if name in RULES:
            lines += ["", RULES[name]]
        lines += ["", "| value | meaning |", "|---|---|"]
        lines += [f"| `{member.value}` | {member.meaning} |" for member in values]
    return "\n".join(lines) + "\n"


def configure(p: argparse.ArgumentParser) -> None:
    """`survey schema`: no options."""


def run(args: argparse.Namespace | None = None) -> int:
    print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
