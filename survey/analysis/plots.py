"""Publication charts: functions that take analysis results and return a Figure.

One style for every chart (``STYLE``): sized for a single column of a
two-column paper (3.4 in wide) and readable there (7-9 pt text), the
Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies, and in greyscale by its lightness order), no chart junk,
intervals drawn as error bars whenever a share carries one, and every bar
labelled with its exact count and denominator.

Figures are built with ``matplotlib.figure.Figure`` directly, never through
pyplot: no GUI backend, no global figure registry, nothing to close, and it
works on a headless machine (rendering uses Agg for PNG, and the SVG and PDF
backends). ``save`` writes PNG, SVG and PDF.

Labels may come from servers (certificate issuers) or lists (domain names):
``clean_label`` removes control characters, escapes ``$`` (matplotlib would
read mathtext) and shortens long text, so no label can break a chart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from survey.analysis.shares import Share, frame

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green,
# vermillion, reddish purple, sky blue, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
GREY = "#999999"
COLUMN_WIDTH = 3.4   # inches, one column of a two-column paper
FULL_WIDTH = 7.0
FORMATS = ("png", "svg", "pdf")

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.grid": False,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "errorbar.capsize": 2,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,      # TrueType in PDF: editable text, accepted by publishers
    "svg.fonttype": "path",  # SVG looks the same without the font installed
}

# Outcome colours: TLS good -> bad, then the ones that are not "no STARTTLS".
OUTCOME_COLOURS = {
    "starttls_ok": "#009E73", "starttls_failed": "#F0E442", "no_starttls": "#D55E00",
    "rejected": "#CC79A7", "rate_limited": "#E69F00", "protocol_error": "#56B4E9",
    "unreachable": "#0072B2", "no_address": "#000000", "not_scanned": GREY,
}
OUTCOME_LABELS = {
    "starttls_ok": "STARTTLS works", "starttls_failed": "STARTTLS fails",
    "no_starttls": "no STARTTLS", "rejected": "refused (4xx/5xx)",
    "rate_limited": "rate-limited", "protocol_error": "protocol error",
    "unreachable": "unreachable", "no_address": "no address", "not_scanned": "not scanned",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_label(text: object, limit: int = 44) -> str:
    """Text safe to draw: no control characters, no mathtext, at most ``limit`` characters."""
    s = _CONTROL.sub(" ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    return s.replace("$", r"\$")


def _figure(width: float = COLUMN_WIDTH, height: float | None = None) -> Figure:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height or 2.4), layout="constrained")
    return fig


def _as_frame(data: pd.DataFrame | Iterable[Share], label: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    df = frame(list(data))
    return df.rename(columns={"metric": label}) if label != "metric" else df


def _errors(df: pd.DataFrame) -> np.ndarray | None:
    if "low" not in df or df["low"].isna().all():
        return None
    share = df["share"].to_numpy(dtype=float)
    low = df["low"].to_numpy(dtype=float)
    high = df["high"].to_numpy(dtype=float)
    lower = np.where(np.isnan(low), 0, share - low)
    upper = np.where(np.isnan(high), 0, high - share)
    return 100 * np.vstack([np.clip(lower, 0, None), np.clip(upper, 0, None)])


def shares_bar(data: pd.DataFrame | Iterable[Share], *, label: str | None = None,
               title: str | None = None, xlabel: str | None = None,
               colour: str = PALETTE[0], width: float = COLUMN_WIDTH) -> Figure:
    """Horizontal bars of shares (0-100%), one per row, with ``count/total`` at each bar.

    Takes a list of ``Share`` or any shares frame (``metric``/``category``/
    group column, ``share``, ``count``, ``total``, optional ``low``/``high``).
    """
    if not isinstance(data, pd.DataFrame):
        data = frame(list(data))
    label = label or next(c for c in data.columns if c not in
                          ("measure", "count", "total", "share", "low", "high", "unit"))
    df = data.reset_index(drop=True)
    n = len(df)
    fig = _figure(width, 0.45 + 0.22 * max(n, 1))
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        values = 100 * df["share"].fillna(0).to_numpy(dtype=float)
        ax.barh(y, values, color=colour, height=0.7, xerr=_errors(df),
                error_kw={"ecolor": "#333333", "elinewidth": 0.8})
        ax.set_yticks(y, [clean_label(v) for v in df[label]])
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.xaxis.grid(True)
        ax.set_axisbelow(True)
        for yi, (_, row) in zip(y, df.iterrows()):
            text = f"{int(row['count']):,}/{int(row['total']):,}" if row["total"] else "n/a"
            ax.text(101, yi, text, va="center", ha="left", fontsize=6, color="#333333",
                    clip_on=False)
        unit = df["unit"].iloc[0] if "unit" in df and n and df["unit"].nunique() == 1 else None
        ax.set_xlabel(xlabel or (f"share of {unit}" if unit else "share"))
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
        ax.tick_params(axis="y", length=0)
    return fig


def outcome_bars(outcomes: pd.DataFrame, *, title: str | None = None,
                 width: float = COLUMN_WIDTH) -> Figure:
    """One 100% stacked bar per unit (domains, MX host names, IPs) of probe outcomes."""
    units = list(dict.fromkeys(outcomes["unit"]))
    fig = _figure(width, 1.1 + 0.35 * len(units))
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(len(units))[::-1]
        left = np.zeros(len(units))
        categories = [c for c in OUTCOME_COLOURS if c in set(outcomes["category"])]
        for cat in categories:
            values = np.array([100 * float(outcomes[(outcomes["unit"] == u)
                                                    & (outcomes["category"] == cat)]["share"]
                                          .fillna(0).sum()) for u in units])
            if not values.any():
                continue
            ax.barh(y, values, left=left, height=0.6, color=OUTCOME_COLOURS[cat],
                    label=OUTCOME_LABELS[cat], edgecolor="white", linewidth=0.4)
            left += values
        totals = [int(outcomes[outcomes["unit"] == u]["total"].iloc[0]) for u in units]
        ax.set_yticks(y, [f"{clean_label(u, 28)}\n(n={t:,})" for u, t in zip(units, totals)])
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.22), ncol=3,
                  handlelength=1, columnspacing=0.8)
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
    return fig


def funnel(df: pd.DataFrame, *, title: str | None = None,
           width: float = COLUMN_WIDTH) -> Figure:
    """The MTA-STS funnel: bars shrinking step by step, each with count and step ratio."""
    n = len(df)
    fig = _figure(width, 0.5 + 0.24 * n)
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        counts = df["count"].to_numpy(dtype=float)
        colours = [GREY] + [PALETTE[0]] * (n - 1)
        ax.barh(y, counts, color=colours, height=0.7)
        ax.set_yticks(y, [clean_label(s, 30) for s in df["step"]])
        top = max(counts.max(), 1)
        ax.set_xlim(0, top * 1.35)
        for yi, (_, row) in zip(y, df.iterrows()):
            ratio = row.get("of_previous")
            extra = "" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) \
                else f"  ({100 * ratio:.0f}% of previous)"
            ax.text(row["count"] + top * 0.01, yi, f"{int(row['count']):,}{extra}",
                    va="center", fontsize=6, color="#333333")
        ax.set_xlabel("domains")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
        ax.tick_params(axis="y", length=0)
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
    return fig


def published_dots(side: pd.DataFrame, *, title: str | None = None,
                   width: float = FULL_WIDTH) -> Figure:
    """Published value (open circle) and the scan's (filled, with interval), per figure.

    Only shares that could be computed are drawn; a log axis keeps 0.01% and
    76% on one chart.
    """
    df = side[(side["kind"] == "share") & side["measured"].notna()].reset_index(drop=True)
    n = len(df)
    fig = _figure(width, 0.7 + 0.24 * max(n, 1))
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        floor = 1e-4
        pub = np.clip(100 * df["published_value"].to_numpy(dtype=float), floor * 100, 100)
        meas = np.clip(100 * df["measured"].to_numpy(dtype=float), floor * 100, 100)
        # drawn over the scan's dot: where the two agree, a ring around a dot
        ax.scatter(pub, y, s=42, facecolors="none", edgecolors=PALETTE[1], linewidths=1.3,
                   label="published", zorder=5)
        err = _errors(df.assign(share=df["measured"]))
        ax.errorbar(meas, y, xerr=err, fmt="o", color=PALETTE[0], markersize=4,
                    elinewidth=0.8, label="this scan", zorder=4)
        labels = [clean_label(f"{r.source}: {r.metric}", 70) for r in df.itertuples()]
        ax.set_yticks(y, labels)
        ax.set_xscale("log")
        ax.set_xlim(floor * 100 / 2, 150)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
        ax.xaxis.grid(True)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="lower left")
        ax.set_xlabel("share (log scale)")
        if title:
            ax.set_title(clean_label(title, 100), loc="left")
    return fig


def comparison_bars(changes: pd.DataFrame, *, title: str | None = None,
                    width: float = COLUMN_WIDTH) -> Figure:
    """Adopted and dropped, per feature, between two scans (domains in both)."""
    n = len(changes)
    fig = _figure(width, 0.9 + 0.35 * max(n, 1))
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        ax.barh(y + 0.18, changes["adopted"], height=0.34, color=PALETTE[2], label="adopted")
        ax.barh(y - 0.18, changes["dropped"], height=0.34, color=PALETTE[3], label="dropped")
        for yi, a, d in zip(y, changes["adopted"], changes["dropped"]):
            ax.text(a, yi + 0.18, f" {int(a):,}", va="center", fontsize=6)
            ax.text(d, yi - 0.18, f" {int(d):,}", va="center", fontsize=6)
        ax.set_yticks(y, [clean_label(f) for f in changes["feature"]])
        top = max(int(changes[["adopted", "dropped"]].to_numpy().max(initial=0)), 1)
        ax.set_xlim(0, top * 1.25)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
        ax.set_xlabel("domains (in both scans)")
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.35), ncol=2)
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
    return fig


def save(fig: Figure, stem: Path | str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.png``, ``stem.svg`` and ``stem.pdf`` (or the ``formats`` given)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            fig.savefig(path, format=fmt, metadata={"Creator": "survey"})
            paths.append(path)
    return paths
