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


def test_every_vocabulary_value_has_a_one_line_meaning():
    assert schemadoc.VOCABULARIES, "no vocabularies"
    for name, vocabulary in schemadoc.VOCABULARIES.items():
        for member in vocabulary:
            assert member.meaning and "\n" not in member.meaning and "|" not in member.meaning, \
                f"{name}.{member.name}"
        assert vocabulary.__doc__, name


@pytest.mark.parametrize("table", schema.TABLES)
def test_a_column_with_a_vocabulary_names_it_in_its_meaning(table):
    """Its vocabulary by name, or a column of the same vocabulary it copies."""
    for column, vocabulary in schema.VOCABULARIES[table].items():
        if "." in column:
            continue
        names = [f"`{vocabulary.__name__}`"] + schemadoc.columns_of(vocabulary.__name__)
        assert any(name in schema.COLUMN_DOCS[table][column] for name in names), column


def test_every_vocabulary_is_listed_with_its_values_and_meanings():
    text = schemadoc.render()
    for name, vocabulary in schemadoc.VOCABULARIES.items():
        assert f"### {name}" in text
        for member in vocabulary:
            assert f"| `{member.value}` | {member.meaning} |" in text


def test_the_doc_spells_out_types_nullability_and_vocabularies():
    text = schemadoc.render()
    assert "| `domain` | `string` | *required* |" in text
    assert "`list<struct{version: string, name: string, preference_order: int32}>`" in text
    assert "`rate_limited`" in text and "`DnsStatus`" in text
    assert "{`ok`, `nxdomain`," in text      # a vocabulary named in a meaning, spelt out


def test_survey_schema_prints_it(capsys):
    from survey.cli import main

    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schemadoc.render()
