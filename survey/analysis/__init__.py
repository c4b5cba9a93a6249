"""Turn scan datasets into the statistics and charts of a paper.

    from survey import analysis as sa
    scan = sa.load("data/scans/2026-11")
    sa.metrics.starttls(scan)                 # shares with explicit denominators
    sa.breakdown(scan, "any_offered", by="provider")
    sa.published.side_by_side(scan)           # literature next to the same definitions
    sa.compare(sa.load(older), scan)          # adopted, dropped, mode changes, renewals

Modules: ``load`` (a scan in DuckDB), ``facts`` (units of analysis and the
definitions), ``shares`` (Share, cluster bootstrap), ``metrics``,
``breakdowns``, ``providers``, ``compare``, ``published``, ``plots``,
``display`` (tables and figures for notebooks and the report).
"""

from __future__ import annotations

from survey.analysis import metrics, plots, published
from survey.analysis.breakdowns import breakdown
from survey.analysis.compare import Comparison, compare
from survey.analysis.display import Output, Table
from survey.analysis.load import AnalysisError, Scan, load, load_many
from survey.analysis.providers import ProviderMap, registrable_domain
from survey.analysis.shares import Share, cluster_bootstrap, frame, wilson

__all__ = [
    "AnalysisError", "Comparison", "Output", "ProviderMap", "Scan", "Share", "Table",
    "breakdown", "cluster_bootstrap", "compare", "frame", "load", "load_many", "metrics",
    "plots", "published", "registrable_domain", "wilson",
]
