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
import io
import math
import numbers
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


class Table:
    """A small result frame, shown with every cell escaped."""

    def __init__(self, df: pd.DataFrame, title: str | None = None,
                 note: str | None = None, columns: Iterable[str] | None = None) -> None:
        self.df = df if columns is None else df[list(columns)]
        self.title = title
        self.note = note

    def cells(self) -> list[list[str]]:
        cols = [str(c) for c in self.df.columns]
        return [[format_cell(v, c) for v, c in zip(row, cols)]
                for row in self.df.itertuples(index=False, name=None)]

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "note": self.note,
                "columns": [str(c) for c in self.df.columns], "rows": self.cells()}

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


def render_table_html(data: Mapping[str, Any]) -> str:
    """A table document (``Table.as_json``) as HTML, every string escaped."""
    esc = html.escape
    parts = ['<table class="survey-table">']
    if data.get("title"):
        parts.append(f"<caption>{esc(str(data['title']))}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in data["columns"])
                 + "</tr></thead><tbody>")
    for row in data["rows"]:
        parts.append("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table>")
    if data.get("note"):
        parts.append(f'<p class="note">{esc(str(data["note"]))}</p>')
    return "".join(parts)


def _display(obj: Any, **kwargs: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:   # plain Python: print what a notebook would show
        print(obj)
        return
    display(obj, **kwargs)


class Output:
    """Where a notebook's results go: the cell output, and figure files when asked.

    ``figures``: a directory for PNG/SVG/PDF files (None: display only);
    ``prefix``: prepended to figure file names (the notebook's name).
    """

    def __init__(self, figures: Path | str | None = None, prefix: str = "",
                 formats: Iterable[str] = plots.FORMATS) -> None:
        self.figures = Path(figures) if figures else None
        self.prefix = prefix
        self.formats = tuple(formats)
        self.saved: list[Path] = []

    def figure(self, fig: Figure, name: str, caption: str | None = None) -> None:
        stem = f"{self.prefix}{name}"
        if self.figures is not None:
            self.saved += plots.save(fig, self.figures / stem, self.formats)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=150)
        try:
            from IPython.display import Image
        except ImportError:
            print(f"[figure {stem}: {len(buffer.getvalue())} bytes of PNG]")
            return
        _display(Image(data=buffer.getvalue(), format="png"),
                 metadata={FIGURE_METADATA: stem, "caption": caption or ""})

    def table(self, df: pd.DataFrame, title: str | None = None, note: str | None = None,
              columns: Iterable[str] | None = None) -> None:
        _display(Table(df, title, note, columns))

    def provenance(self, scan: Any) -> None:
        """The scan's provenance (list, dates, state, sample) as a two-column table."""
        info = scan.describe()
        counts = info.pop("counts", None) or {}
        rows = [(k.replace("_", " "), v) for k, v in info.items() if v not in (None, "")]
        rows += [(f"rows: {k}", v) for k, v in counts.items()]
        self.table(pd.DataFrame(rows, columns=["field", "value"]), title="Scan")
