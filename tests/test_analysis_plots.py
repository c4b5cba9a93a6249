"""Charts: every plot function returns a Figure, exports PNG/SVG/PDF, survives hostile labels."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from survey import analysis as sa
from survey.analysis import metrics as m
from survey.analysis import plots
from tests.test_analysis_fixture import write_fixture


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    a, b = write_fixture(tmp_path_factory.mktemp("plots"))
    return sa.load(a), sa.load(b, sample=True)


def all_figures(a, b):
    yield "shares", plots.shares_bar(m.starttls_domains(b), title="STARTTLS")
    yield "distribution", plots.shares_bar(m.top_issuers(a), title="Issuers")
    yield "breakdown", plots.shares_bar(sa.breakdown(b, "any_offered", by="rank"))
    yield "outcomes", plots.outcome_bars(m.outcomes(a), title="Outcomes")
    yield "funnel", plots.funnel(m.mta_sts_funnel(a), title="Funnel")
    yield "published", plots.published_dots(sa.published.side_by_side(b), title="Published")
    yield "comparison", plots.comparison_bars(sa.compare(a, b).changes, title="Changes")


def test_every_chart_is_a_figure_and_exports_three_formats(scans, tmp_path):
    a, b = scans
    for name, fig in all_figures(a, b):
        assert isinstance(fig, Figure), name
        paths = plots.save(fig, tmp_path / name)
        assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
        png, svg, pdf = (p.read_bytes() for p in paths)
        assert png.startswith(b"\x89PNG") and b"<svg" in svg and pdf.startswith(b"%PDF")


def test_column_width_and_colour_blind_palette():
    fig = plots.shares_bar([sa.Share("x", 1, 2, "domains")])
    assert fig.get_figwidth() == pytest.approx(plots.COLUMN_WIDTH)
    # Okabe-Ito: the eight colours of the colour-universal-design palette
    assert plots.PALETTE[:3] == ("#0072B2", "#E69F00", "#009E73") and len(plots.PALETTE) == 8
    assert set(plots.OUTCOME_COLOURS.values()) <= set(plots.PALETTE) | {plots.GREY}


def test_intervals_are_drawn_as_error_bars(scans):
    _, b = scans
    def error_bars(fig):
        return [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]

    assert error_bars(plots.shares_bar(m.starttls_domains(b)))
    assert not error_bars(plots.shares_bar(m.starttls_domains(scans[0])))   # a census


def test_hostile_labels_cannot_break_a_chart(tmp_path):
    df = pd.DataFrame({"category": ["$x^2$ \x1b[31mred", "<script>" + "A" * 200, "$"],
                       "count": [1, 2, 3], "total": [6, 6, 6], "share": [1 / 6, 2 / 6, 3 / 6],
                       "low": [None] * 3, "high": [None] * 3, "unit": ["IPs"] * 3})
    fig = plots.shares_bar(df, title="$$ \x00 title")
    plots.save(fig, tmp_path / "hostile", formats=("png",))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == r"\$x^2\$  [31mred" and len(labels[1]) == 44
    assert plots.clean_label("a$b") == r"a\$b"


def test_empty_results_still_draw(tmp_path):
    empty = sa.frame([])
    plots.save(plots.shares_bar(empty), tmp_path / "empty", formats=("png",))
    funnel = pd.DataFrame({"step": ["domains accepting mail"], "count": [0], "total": [0],
                           "share": [float("nan")], "of_previous": [float("nan")]})
    plots.save(plots.funnel(funnel), tmp_path / "funnel", formats=("png",))


def test_output_saves_figures_and_shows_tables(scans, tmp_path, capsys):
    a, _ = scans
    out = sa.Output(tmp_path / "figs", prefix="t-")
    out.figure(plots.funnel(m.mta_sts_funnel(a)), "funnel")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "t-funnel.pdf", "t-funnel.png", "t-funnel.svg"]
    out.table(m.mta_sts_modes(a), title="Modes")
    out.provenance(a)
    shown = capsys.readouterr().out
    assert "Modes" in shown and "fixture-a" in shown


def test_degenerate_charts_are_replaced_by_a_sentence():
    one = plots.shares_bar([sa.Share("self-hosted", 3, 4, "domains")], title="By provider")
    assert "one metric only" in plots.omitted(one) and "75.0% (3 of 4)" in plots.omitted(one)
    same = plots.shares_bar([sa.Share(f"s{i}", 5, 8, "domains") for i in range(6)],
                            title="STARTTLS")
    assert "all 6 bars are the same, 5 of 8 domains" in plots.omitted(same)
    differ = plots.shares_bar([sa.Share("a", 5, 8, "domains"), sa.Share("b", 4, 8, "domains")])
    assert plots.omitted(differ) is None
    nothing = pd.DataFrame({"feature": ["MTA-STS policy"], "adopted": [0], "dropped": [0]})
    assert "no changes" in plots.omitted(plots.comparison_bars(nothing, title="Changes"))
    unmeasured = plots.shares_bar([sa.Share.missing("x", "IPs", "not measured: needs y")])
    assert "needs y" in plots.omitted(unmeasured)


def test_rank_buckets_stop_at_the_list_length():
    from survey.analysis.breakdowns import rank_buckets

    assert [b for b, _ in rank_buckets(2_000)] == ["top 1k"]
    assert [b for b, _ in rank_buckets(1_000_000)] == ["top 1k", "top 10k", "top 100k"]
    assert rank_buckets(None) == ()


def test_a_not_measured_share_draws_no_bar():
    fig = plots.shares_bar([sa.Share("measured", 1, 2, "IPs"),
                            sa.Share.missing("offered", "IPs", "not measured: needs ciphers")])
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths[1] == 0 and any(t.get_text() == "not measured" for t in fig.axes[0].texts)


def test_an_empty_table_is_a_sentence(capsys):
    sa.Output().table(pd.DataFrame({"from_mode": [], "to_mode": []}), title="Mode changes")
    assert capsys.readouterr().out.strip() == "Mode changes: none."
