"""What a notebook shows: escaped tables and saved figures, in a form the report can trust.

Cells of a result may hold text a remote server chose (a certificate issuer,
a banner) or a domain list supplied. ``Table`` therefore renders its HTML
itself, escaping every cell, and also carries its rows as JSON under
``TABLE_MIME``: the HTML report rebuilds tables from that JSON and never
pastes HTML produced inside a notebook.

``Output`` is the one object a notebook uses to show results: ``table`` for
frames, ``figure`` for charts (saved as PNG, SVG and PDF when the notebook
was given a figures directory, and displayed as a PNG).
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from survey.analysis import plots

TABLE_MIME = "application/vnd.survey.table+json"
FIGURE_METADATA = "survey_figure"
PERCENT_COLUMNS = frozenset({"share", "low", "high", "of_previous", "share_of_domains",
                             "published_value", "measured"})


def format_cell(value: Any, column: str = "") -> str:
    """One cell as text: percentages for share columns, thousands separators, '' for null."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in PERCENT_COLUMNS and isinstance(value, numbers.Real):
        pct = 100 * float(value)
        if pct != 0 and abs(pct) < 0.1:
            return f"{pct:.2g}%"
        return f"{pct:.1f}%"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):,.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_cell(v) for v in value)
    return str(value)


FOLD_ROWS = 15     # longer tables are folded (a <details> element) in the report


def _blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _readable(df: pd.DataFrame) -> pd.DataFrame:
    """A shares frame as a reader sees it: one interval column, "not measured" said.

    ``low``/``high``/``interval`` become one ``interval`` column (the bounds
    and the method, or "census: no interval"); a row whose ``not_measured``
    holds a reason shows "not measured" as its share, the reason in a
    ``not measured because`` column, and blank counts (never a zero). The
    column is left out when every row was measured.
    """
    df = df.copy()
    if {"low", "high"} <= set(df.columns):
        methods = df["interval"] if "interval" in df.columns else pd.Series([None] * len(df),
                                                                            index=df.index)
        texts = []
        for low, high, method in zip(df["low"], df["high"], methods):
            if not _blank(low) and not _blank(high):
                bounds = f"{format_cell(low, 'low')}\u2013{format_cell(high, 'high')}"
                texts.append(f"{bounds} ({method})" if not _blank(method) else bounds)
            else:
                texts.append("" if _blank(method) else str(method))
        at = list(df.columns).index("low")
        df = df.drop(columns=[c for c in ("low", "high", "interval") if c in df.columns])
        df.insert(min(at, len(df.columns)), "interval", texts)
    if "not_measured" in df.columns:
        reasons = df["not_measured"]
        missing = [not _blank(r) for r in reasons]
        if any(missing):
            for column in ("share", "share_of_domains"):
                if column in df.columns:
                    df[column] = df[column].astype(object)
                    df.loc[missing, column] = "not measured"
            df = df.rename(columns={"not_measured": "not measured because"})
            df["not measured because"] = [
                str(r).removeprefix("not measured: ") if m else ""
                for r, m in zip(reasons, missing)]
        else:
            df = df.drop(columns=["not_measured"])
    return df


class Table:
    """A small result frame, shown with every cell escaped.

    Shares frames are shown readable (``_readable``: one interval column,
    "not measured" with its reason); tables longer than ``fold`` rows are
    folded in the report.
    """

    def __init__(self, df: pd.DataFrame, title: str | None = None,
                 note: str | None = None, columns: Iterable[str] | None = None,
                 fold: int | None = None) -> None:
        df = df if columns is None else df[list(columns)]
        self.df = _readable(df)
        self.title = title
        self.note = note
        self.fold = FOLD_ROWS if fold is None else fold
        self.provenance = False

    def cells(self) -> list[list[str]]:
        cols = [str(c) for c in self.df.columns]
        return [[format_cell(v, c) for v, c in zip(row, cols)]
                for row in self.df.itertuples(index=False, name=None)]

    def as_json(self) -> dict[str, Any]:
        rows = self.cells()
        return {"title": self.title, "note": self.note,
                "columns": [str(c) for c in self.df.columns], "rows": rows,
                "fold": bool(self.fold) and len(rows) > self.fold,
                "provenance": self.provenance}

    def to_html(self) -> str:
        return render_table_html(self.as_json())

    def __str__(self) -> str:
        data = self.as_json()
        widths = [max([len(c)] + [len(r[i]) for r in data["rows"]])
                  for i, c in enumerate(data["columns"])]
        lines = [self.title] if self.title else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(data["columns"], widths)))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in data["rows"]]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": str(self), "text/html": self.to_html(), TABLE_MIME: self.as_json()}


NUMERIC = re.compile(r"^[-+]?[\d,.]+%?( \(|$)|^[\d,.]+/[\d,.]+$")


def render_table_html(data: Mapping[str, Any]) -> str:
    """A table document (``Table.as_json``) as HTML, every string escaped.

    Cells holding a number get ``class="num"`` (the report never breaks them);
    a table with ``fold`` set is wrapped in ``<details>`` with its title as
    the summary.
    """
    esc = html.escape
    parts = ['<table class="survey-table">']
    title = str(data["title"]) if data.get("title") else ""
    if title:
        parts.append(f"<caption>{esc(title)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in data["columns"])
                 + "</tr></thead><tbody>")
    for row in data["rows"]:
        cells = []
        for v in row:
            text = str(v)
            kind = ' class="num"' if NUMERIC.match(text) else ""
            cells.append(f"<td{kind}>{esc(text)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if data.get("note"):
        parts.append(f'<p class="note">{esc(str(data["note"]))}</p>')
    body = "".join(parts)
    if data.get("fold"):
        summary = f"{title}: {len(data['rows']):,} rows" if title else \
            f"{len(data['rows']):,} rows"
        body = f'<details class="table"><summary>{esc(summary)}</summary>{body}</details>'
    return body


def pivot_shares(df: pd.DataFrame, *, index: str = "category",
                 columns: str = "unit") -> tuple[pd.DataFrame, str | None]:
    """A long shares frame as a wide one: cells "count (share)", all-zero rows left out.

    Returns the wide frame and a note naming the rows left out (every count
    zero) and the intervals' method.
    """
    order = list(dict.fromkeys(df[index]))
    heads = list(dict.fromkeys(df[columns]))
    totals = {h: df[df[columns] == h]["total"].iloc[0] for h in heads}
    rows, empty = [], []
    for key in order:
        part = df[df[index] == key].set_index(columns)
        if not part["count"].fillna(0).any():
            empty.append(str(key))
            continue
        row: dict[str, Any] = {index: key}
        for h in heads:
            if h not in part.index:
                row[h] = ""
                continue
            r = part.loc[h]
            row[h] = f"{format_cell(r['count'])} ({format_cell(r['share'], 'share')})"
        rows.append(row)
    wide = pd.DataFrame(rows, columns=[index, *heads]).rename(
        columns={h: f"{h} (n={format_cell(totals[h])})" for h in heads})
    notes = []
    if empty:
        notes.append("None of any unit: " + ", ".join(empty) + ".")
    methods = {m for m in df.get("interval", pd.Series(dtype=object)).dropna()}
    if methods:
        notes.append("Intervals: " + "; ".join(sorted(methods)) + ".")
    return wide, " ".join(notes) or None


def _display(obj: Any, **kwargs: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:   # plain Python: print what a notebook would show
        print(obj)
        return
    display(obj, **kwargs)


NOTE_MIME = "application/vnd.survey.note+json"


class Note:
    """A sentence shown instead of (or beside) a result: why a chart is left out, a warning.

    ``kind``: ``note`` or ``warning`` (the report shows a warning in a box).
    """

    def __init__(self, text: str, kind: str = "note") -> None:
        self.text = text
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind.upper()}: {self.text}" if self.kind == "warning" else self.text

    def to_html(self) -> str:
        return f'<p class="{html.escape(self.kind)}">{html.escape(self.text)}</p>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": str(self), "text/html": self.to_html(),
                NOTE_MIME: {"text": self.text, "kind": self.kind}}


class Output:
    """Where a notebook's results go: the cell output, and figure files when asked.

    ``figures``: a directory for PNG/SVG/PDF files (None: display only);
    ``prefix``: prepended to figure file names (the notebook's name).

    Every figure is rendered once (``plots.render``): the inline image is the
    PNG file's bytes, shown at half its pixel size. Its caption says what is
    counted, over what, and (once ``provenance`` has been called) which scan.
    A figure the plot function marked degenerate (one bar, identical bars:
    ``plots.omitted``) is replaced by a sentence saying why.
    """

    def __init__(self, figures: Path | str | None = None, prefix: str = "",
                 formats: Iterable[str] = plots.FORMATS) -> None:
        self.figures = Path(figures) if figures else None
        self.prefix = prefix
        self.formats = tuple(formats)
        self.saved: list[Path] = []
        self.scan_label: str | None = None

    def caption(self, fig: Figure, caption: str | None = None) -> str:
        text = caption or plots.caption_of(fig) or ""
        if self.scan_label and "Scan " not in text:
            text = (text.rstrip(". ") + ". " if text else "") + f"Scan {self.scan_label}."
        return text

    def figure(self, fig: Figure, name: str, caption: str | None = None) -> None:
        stem = f"{self.prefix}{name}"
        why = plots.omitted(fig)
        if why:
            self.note(why)
            return
        png = plots.render(fig, "png")
        if self.figures is not None:
            self.figures.mkdir(parents=True, exist_ok=True)
            path = (self.figures / stem).with_suffix(".png")
            path.write_bytes(png)
            self.saved.append(path)
            others = [f for f in self.formats if f != "png"]
            self.saved += plots.save(fig, self.figures / stem, others)
        width, height = plots.png_size(png)
        text = self.caption(fig, caption)
        alt = plots.alt_of(fig) or text
        try:
            from IPython.display import Image
        except ImportError:
            print(f"[figure {stem}: {text}]")
            return
        _display(Image(data=png, format="png", width=width // 2 or None),
                 metadata={FIGURE_METADATA: stem, "caption": text, "alt": alt,
                           "units": plots.units_of(fig),
                           "width": width // 2, "height": height // 2})

    def table(self, df: pd.DataFrame, title: str | None = None, note: str | None = None,
              columns: Iterable[str] | None = None, fold: int | None = None) -> None:
        if df.empty:          # a header without rows says nothing: say "none" instead
            self.note(f"{title or 'Table'}: none.")
            return
        _display(Table(df, title, note, columns, fold=fold))

    def pivot(self, df: pd.DataFrame, title: str | None = None, *, index: str = "category",
              columns: str = "unit") -> None:
        """A long shares frame shown as one row per ``index``, one column per ``columns``."""
        wide, note = pivot_shares(df, index=index, columns=columns)
        self.table(wide, title=title, note=note)

    def warnings(self, texts: Iterable[str]) -> None:
        """Each text as a warning (nothing when there is none)."""
        for text in texts:
            self.note(text, "warning")

    def note(self, text: str, kind: str = "note") -> None:
        """A sentence in the output (``kind="warning"`` for a warning)."""
        _display(Note(text, kind))

    def provenance(self, scan: Any) -> None:
        """The scan's provenance (list, dates, state, sample) as a two-column table.

        The report prints provenance once, at its top: it drops these tables.
        """
        info = scan.describe()
        self.scan_label = str(info.get("scan") or "")
        counts = info.pop("counts", None) or {}
        rows = [(k.replace("_", " "), v) for k, v in info.items() if v not in (None, "")]
        rows += [(f"rows: {k}", v) for k, v in counts.items()]
        table = Table(pd.DataFrame(rows, columns=["field", "value"]), title="Scan")
        table.provenance = True
        _display(table)
