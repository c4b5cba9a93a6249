"""The fact tables' columns are documented, discoverable and in step with what facts.py builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey import analysis as sa
from survey.analysis.columns import COLUMNS, markdown
from tests.test_analysis_fixture import write_fixture

DOC = Path(__file__).resolve().parent.parent / "docs" / "analysis.md"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return sa.load(write_fixture(tmp_path_factory.mktemp("columns"))[0]).facts()


def test_every_column_facts_builds_is_documented_and_no_other(scan):
    for table, documented in COLUMNS.items():
        built = [r[0] for r in scan.rows(f"DESCRIBE {table}")]
        assert set(built) - set(documented) == set(), \
            f"{table}: document the new columns in survey/analysis/columns.py"
        assert set(documented) - set(built) == set(), f"{table}: documented but not built"


def test_columns_are_discoverable():
    df = sa.columns("domain")
    assert set(df["table"]) == {"domain_facts"} and "sts_verdict" in set(df["column"])
    assert len(sa.columns()) == sum(len(c) for c in COLUMNS.values())
    assert "sts_verdict" in (sa.columns.__doc__ or "")       # help(sa.columns) lists them
    with pytest.raises(ValueError):
        sa.columns("nope")


def test_docs_list_the_columns():
    text = DOC.read_text(encoding="utf-8")
    assert markdown() in text, "regenerate docs/analysis.md's column list from columns.markdown()"


def test_every_named_predicate_runs_on_its_table(scan):
    for name, predicate in sa.where.predicates().items():
        table = {"domain": "domain_facts", "host": "host_facts", "ip": "ip_facts"}[predicate.table]
        count = scan.scalar(f"SELECT count(*) FILTER (WHERE {predicate}) FROM {table}")
        assert count is not None, name
    both = sa.where.STS_ACTIVE & ~sa.where.TLSRPT_VALID
    assert both.name == "MTA-STS active and not valid TLSRPT record"
    got = sa.breakdown(scan, both, by="tld")
    assert got.attrs["metric"] == both.name
    with pytest.raises(ValueError):
        sa.where.STS_ACTIVE & sa.where.IP_TLS        # different fact tables
