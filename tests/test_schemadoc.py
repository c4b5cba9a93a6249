"""docs/schema.md is what survey/store/schemadoc.py makes of the schemas now, every column described."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey.store import schema, schemadoc

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"


def test_the_committed_schema_doc_is_current():
    assert DOC.exists(), f"docs/schema.md is missing; create it with: {schemadoc.REGENERATE}"
    if DOC.read_text(encoding="utf-8") != schemadoc.render():
        pytest.fail("docs/schema.md differs from survey/store/schema.py; regenerate it with:\n"
                    f"  {schemadoc.REGENERATE}\nand commit it", pytrace=False)


@pytest.mark.parametrize("table", schema.TABLES)
def test_every_column_has_one_meaning(table):
    columns = set(schema.SCHEMAS[table].names)
    described = set(schema.COLUMN_DOCS[table])
    assert described == columns, (f"{table}: undescribed {sorted(columns - described)}, "
                                  f"described but absent {sorted(described - columns)}")
    assert table in schema.TABLE_DOCS
    assert all(text and "\n" not in text and "|" not in text
               for text in schema.COLUMN_DOCS[table].values())


def test_value_docs_cover_their_vocabularies_exactly():
    for name, values in schema.VALUE_DOCS.items():
        assert set(values) == set(getattr(schema, name)), name


def test_the_doc_spells_out_types_nullability_and_vocabularies():
    text = schemadoc.render()
    assert "| `domain` | `string` | *required* |" in text
    assert "`list<struct{version: string, name: string, preference_order: int32}>`" in text
    assert "`rate_limited`" in text and "`DNS_STATUSES`" in text
    assert "{`ok`, `nxdomain`," in text      # a vocabulary named in a meaning, spelt out


def test_survey_schema_prints_it(capsys):
    from survey.cli import main

    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schemadoc.render()
