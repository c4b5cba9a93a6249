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

import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from survey.analysis.shares import Share, frame

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green,
# vermillion, reddish purple, sky blue, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
GREY = "#999999"
COLUMN_WIDTH = 3.4   # inches, one column of a two-column paper
FULL_WIDTH = 7.0
FORMATS = ("png", "svg", "pdf")

STYLE: dict[RcKeyType, Any] = {
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
    "axes.prop_cycle": cycler(color=PALETTE),
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


def describe(fig: Figure, *, caption: str, alt: str, omit: str | None = None) -> Figure:
    """Attach a chart's caption (what is counted, over what), alt text, and omission.

    ``omit``: why the chart says nothing worth a picture (one bar, identical
    bars, nothing changed); ``display.Output`` then shows this sentence
    instead of the chart.
    """
    fig.survey_caption = caption          # type: ignore[attr-defined]
    fig.survey_alt = alt                  # type: ignore[attr-defined]
    fig.survey_omit = omit                # type: ignore[attr-defined]
    return fig


def caption_of(fig: Figure) -> str | None:
    return getattr(fig, "survey_caption", None)


def alt_of(fig: Figure) -> str | None:
    return getattr(fig, "survey_alt", None)


def omitted(fig: Figure) -> str | None:
    return getattr(fig, "survey_omit", None)


def units_of(fig: Figure) -> list[str]:
    """The units (denominators) the chart's bars are shares of, one per distinct unit."""
    return list(getattr(fig, "survey_units", []))


def _pct(value: float) -> str:
    pct = 100 * value
    return f"{pct:.2g}%" if pct and abs(pct) < 0.1 else f"{pct:.1f}%"


def _interval_text(df: pd.DataFrame) -> str:
    if "interval" not in df:
        return ""
    methods = {m for m in df["interval"].dropna()}
    if not methods:
        return ""
    if len(methods) == 1:
        method = methods.pop()
        return "Census: no interval." if method.startswith("census") \
            else f"Error bars: {method}."
    return "Intervals: " + "; ".join(sorted(methods)) + "."


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


def _not_measured(df: pd.DataFrame) -> np.ndarray:
    if "not_measured" not in df:
        return np.zeros(len(df), dtype=bool)
    return np.array([isinstance(v, str) and bool(v) for v in df["not_measured"]], dtype=bool)


def shares_bar(data: pd.DataFrame | Iterable[Share], *, label: str | None = None,
               title: str | None = None, xlabel: str | None = None,
               colour: str = PALETTE[0], width: float = COLUMN_WIDTH) -> Figure:
    """Horizontal bars of shares (0-100%), one per row, with ``count/total`` at each bar.

    Takes a list of ``Share`` or any shares frame (``metric``/``category``/
    group column, ``share``, ``count``, ``total``, optional ``low``/``high``).

    One unit per axis: when the bars are shares of different units (IP
    addresses beside MX host names), each bar's label names its unit and
    the axis says so. A share that was not measured gets no bar but the
    words "not measured" (never a zero-length bar). The chart is marked
    omitted (``omitted``) when it would show one bar, or bars that are all
    the same count of the same total: the caption says the number instead.
    """
    if not isinstance(data, pd.DataFrame):
        data = frame(list(data))
    label = label or next(c for c in data.columns if c not in
                          ("measure", "count", "total", "share", "low", "high", "unit",
                           "interval", "not_measured"))
    df = data.reset_index(drop=True)
    n = len(df)
    missing = _not_measured(df)
    units = list(dict.fromkeys(df["unit"][~missing])) if "unit" in df and n else []
    mixed = len(units) > 1
    names = [clean_label(v) for v in df[label]]
    if mixed:
        names = [f"{nm}\n(of {clean_label(u, 40)})" for nm, u in zip(names, df["unit"])]
    per_bar = 0.36 if mixed else 0.22
    fig = _figure(width, 0.45 + per_bar * max(n, 1))
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        values = 100 * df["share"].astype(float).fillna(0).to_numpy(dtype=float)
        values[missing] = 0
        err = _errors(df)
        if err is not None:
            err[:, missing] = 0
        ax.barh(y, values, color=colour, height=0.7, xerr=err,
                error_kw={"ecolor": "#333333", "elinewidth": 0.8})
        ax.set_yticks(y, names)
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.xaxis.grid(True)
        ax.set_axisbelow(True)
        for yi, gone, (_, row) in zip(y, missing, df.iterrows()):
            if gone:
                ax.text(1, yi, "not measured", va="center", ha="left", fontsize=6,
                        color=GREY, style="italic")
                ax.text(101, yi, "n/a", va="center", ha="left", fontsize=6, color=GREY,
                        clip_on=False)
                continue
            total = row["total"]
            text = f"{int(row['count']):,}/{int(total):,}" if not pd.isna(total) and total \
                else "none"
            ax.text(101, yi, text, va="center", ha="left", fontsize=6, color="#333333",
                    clip_on=False)
        if xlabel is None:
            xlabel = (f"share of {units[0]}" if len(units) == 1 else
                      "share (each bar of the unit under its label)" if mixed else "share")
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
        ax.tick_params(axis="y", length=0)
    fig.survey_units = units                         # type: ignore[attr-defined]
    parts = []
    for nm, gone, (_, row) in zip(df[label], missing, df.iterrows()):
        if gone:
            parts.append(f"{nm}: {row['not_measured']}")
        elif not pd.isna(row["total"]) and row["total"]:
            parts.append(f"{nm}: {_pct(float(row['share']))} ({int(row['count']):,} of "
                         f"{int(row['total']):,}{' ' + row['unit'] if mixed else ''})")
    what = title or "Shares"
    over = (f"share of {units[0]}" if len(units) == 1 else
            "shares of " + ", ".join(units) + " (each bar's unit in its label)")
    caption = f"{what}: {over}; count/total at each bar. {_interval_text(df)}".strip()
    alt = f"Horizontal bar chart, {what}. " + "; ".join(parts) + "."
    measured = df[~missing]
    omit = None
    if not len(measured):
        reasons = sorted({str(r) for r in df["not_measured"].dropna()}) if n else []
        omit = f"{what}: " + ("; ".join(reasons) if reasons else "nothing to show") + "."
    elif len(measured) == 1:
        omit = (f"{what}: one {label} only, so no chart: {parts[int(np.flatnonzero(~missing)[0])]}"
                ". See the table.")
    elif measured[["count", "total"]].drop_duplicates().shape[0] == 1 \
            and measured["unit"].nunique() == 1:
        row = measured.iloc[0]
        omit = (f"{what}: all {len(measured)} bars are the same, "
                f"{int(row['count']):,} of {int(row['total']):,} {row['unit']} "
                f"({_pct(float(row['share']))}), so no chart. See the table.")
    return describe(fig, caption=caption, alt=alt, omit=omit)


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
    fig.survey_units = units                          # type: ignore[attr-defined]
    parts = []
    for u, t in zip(units, totals):
        part = outcomes[(outcomes["unit"] == u) & (outcomes["count"].fillna(0) > 0)]
        shares = ", ".join(f"{OUTCOME_LABELS.get(str(r.category), r.category)} "
                           f"{_pct(float(r.share))}" for r in part.itertuples())
        parts.append(f"{u} (n={t:,}): {shares}")
    what = title or "Outcomes"
    return describe(
        fig, caption=(f"{what}: one bar per unit, each bar's unit in its label (with its n: "
                      f"{', '.join(units)}); shares of the best outcome of each."),
        alt=f"Stacked bar chart, {what}. " + "; ".join(parts) + ".")


def funnel(df: pd.DataFrame, *, title: str | None = None,
           width: float = COLUMN_WIDTH) -> Figure:
    """The MTA-STS funnel: bars shrinking step by step, each with count and step ratio.

    Every bar counts domains (one unit); ``excluded``/``excluded_as``
    (``metrics.mta_sts_funnel``) go to the caption, so the steps add up.
    """
    n = len(df)
    fig = _figure(width, 0.5 + 0.24 * n)
    counts = df["count"].fillna(0).to_numpy(dtype=float)
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        colours = [GREY] + [PALETTE[0]] * (n - 1)
        ax.barh(y, counts, color=colours, height=0.7)
        ax.set_yticks(y, [clean_label(s, 30) for s in df["step"]])
        top = max(counts.max(initial=0), 1)
        ax.set_xlim(0, top * 1.35)
        for yi, c, (_, row) in zip(y, counts, df.iterrows()):
            ratio = row.get("of_previous")
            extra = "" if ratio is None or pd.isna(ratio) \
                else f"  ({100 * ratio:.0f}% of previous)"
            ax.text(c + top * 0.01, yi, f"{int(c):,}{extra}", va="center", fontsize=6,
                    color="#333333")
        ax.set_xlabel("domains")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
        ax.tick_params(axis="y", length=0)
        if title:
            ax.set_title(clean_label(title, 80), loc="left")
    unit = str(df["unit"].iloc[0]) if "unit" in df and n else "domains"
    fig.survey_units = [unit]                         # type: ignore[attr-defined]
    left = []
    if "excluded" in df:
        left = [f"{int(r.excluded):,} {r.excluded_as}" for r in df.iloc[1:].itertuples()
                if not pd.isna(r.excluded)]
    what = title or "MTA-STS funnel"
    caption = (f"{what}: {unit} at each step (each step a subset of the one above)"
               + (f"; left out, step by step: {'; '.join(left)}." if left else "."))
    if df.attrs.get("outside"):
        caption += (f" Not in the funnel: {int(df.attrs['outside']):,} domains that accept no "
                    "mail (MX lookup failed, null MX) yet have a verdict in the dataset.")
    alt = f"Funnel bar chart, {what}. " + "; ".join(
        f"{s}: {int(c):,}" for s, c in zip(df["step"], counts)) + "."
    return describe(fig, caption=caption, alt=alt)


def published_dots(side: pd.DataFrame, *, title: str | None = None,
                   width: float = FULL_WIDTH) -> Figure:
    """Published value (open circle) and the scan's (filled, with interval), per figure.

    Only shares that could be computed are drawn; a log axis keeps 0.01% and
    76% on one chart.
    """
    df = side[(side["kind"] == "share") & side["measured"].notna()].reset_index(drop=True)
    n = len(df)
    fig = _figure(width, 0.7 + 0.36 * max(n, 1))
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
        marks = df["calibration"] if "calibration" in df else pd.Series([None] * n)
        labels = [clean_label(f"{r.source}: {r.metric}", 70) + "\n"
                  + clean_label(f"of {r.unit}" + (f" \u00b7 testbed: {mark}" if mark else ""), 70)
                  for r, mark in zip(df.itertuples(), marks)]
        ax.set_yticks(y, labels)
        ax.set_xscale("log")
        ax.set_xlim(floor * 100 / 2, 150)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
        ax.xaxis.grid(True)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="lower left")
        ax.set_xlabel("share (log scale; each row's unit in its label)")
        if title:
            ax.set_title(clean_label(title, 100), loc="left")
    units = list(dict.fromkeys(df["unit"]))
    fig.survey_units = units                          # type: ignore[attr-defined]
    marks = df["calibration"].dropna() if "calibration" in df else pd.Series(dtype=object)
    what = title or "Published figures and this scan"
    tally = ""
    if len(marks):
        counted = marks.value_counts()
        tally = (" Testbed calibration: " + ", ".join(
            f"{int(counted.get(k, 0))} {k}" for k in ("calibrated", "not calibrated",
                                                       "definition unclear")) + ".")
    parts = [f"{r.source}, {r.metric}: published {100 * r.published_value:.3g}%, "
             f"this scan {100 * r.measured:.3g}% of {r.unit}" for r in df.itertuples()]
    return describe(
        fig, caption=(f"{what}: each published share (open circle) and the same definition "
                      f"on this scan (dot), each row's unit in its label; log scale.{tally}"),
        alt=f"Dot chart, {what}. " + "; ".join(parts) + ".")


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
    fig.survey_units = ["domains in both scans"]      # type: ignore[attr-defined]
    what = title or "Adopted and dropped"
    parts = [f"{r.feature}: {int(r.adopted):,} adopted, {int(r.dropped):,} dropped"
             for r in changes.itertuples()]
    nothing = n == 0 or not changes[["adopted", "dropped"]].to_numpy().any()
    return describe(
        fig, caption=f"{what}: domains in both scans whose feature appeared or disappeared.",
        alt=f"Bar chart, {what}. " + "; ".join(parts) + ".",
        omit=(f"{what}: no changes. No domain in both scans adopted or dropped "
              + ", ".join(changes["feature"]) + "." if nothing and n else
              f"{what}: no domain is in both scans." if nothing else None))


def render(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as a file's bytes: the one way every figure is saved.

    The files in ``figures/``, the notebook's inline image and the report's
    embedded copy all come from here, so they are the same picture: whole
    (the style's tight bounding box) and at the style's resolution
    (``savefig.dpi``, 300). A PNG is meant to be shown at half its pixel size
    (150 CSS pixels per inch: sharp on high-density screens); ``png_size``
    reads its size.
    """
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format=fmt, metadata={"Creator": "survey"})
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, from its IHDR chunk (0, 0 if not a PNG)."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return 0, 0
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def save(fig: Figure, stem: Path | str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.png``, ``stem.svg`` and ``stem.pdf`` (or the ``formats`` given)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        path.write_bytes(render(fig, fmt))
        paths.append(path)
    return paths
