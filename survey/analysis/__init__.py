"""Turn scan datasets into the statistics and charts of a paper.

    from survey import analysis as sa
    scan = sa.load("data/scans/2026-11")
    sa.metrics.starttls(scan)                 # shares with explicit denominators
    sa.breakdown(scan, sa.where.STARTTLS_OFFERED, by="provider")   # named predicates
    sa.published.side_by_side(scan)           # literature next to the same definitions
    sa.compare(sa.load(older), scan)          # adopted, dropped, mode changes, renewals

Modules: ``load`` (a scan in DuckDB), ``facts`` (units of analysis and the
definitions), ``shares`` (Share, cluster bootstrap), ``metrics``,
``breakdowns``, ``providers``, ``compare``, ``published``, ``plots``,
``display`` (tables and figures for notebooks and the report), ``where``
(named conditions), ``measured`` (what a scan did not measure, and why).
``sa.columns()`` lists the fact tables' columns with their meaning (also
``help(sa.columns)`` and docs/analysis.md).
"""

from __future__ import annotations

from survey.analysis import measured, metrics, plots, published, where
from survey.analysis.breakdowns import breakdown
from survey.analysis.columns import columns
from survey.analysis.compare import Comparison, compare
from survey.analysis.display import Note, Output, Table, pivot_shares
from survey.analysis.load import AnalysisError, Scan, load, load_many
from survey.analysis.providers import ProviderMap, registrable_domain
from survey.analysis.shares import Share, cluster_bootstrap, frame, shares_of, wilson
from survey.analysis.where import Predicate

__all__ = [
    "AnalysisError", "Comparison", "Note", "Output", "Predicate", "ProviderMap", "Scan",
    "Share", "Table", "breakdown", "cluster_bootstrap", "columns", "compare", "frame", "load",
    "load_many", "measured", "metrics", "pivot_shares", "plots", "published",
    "registrable_domain", "shares_of", "where", "wilson",
]
