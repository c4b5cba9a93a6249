"""Execute the analysis notebooks against a scan and write a self-contained HTML report.

`survey report SCAN_DIR [--out DIR] [--previous OLDER_SCAN_DIR]` runs every
notebook in notebooks/ (numbered, thin: a parameters cell and calls into
survey.analysis) with nbclient, injecting the scan directory and a figures
directory after each notebook's ``parameters`` cell (the papermill
convention), and writes
  DIR/report.html     one file: text, tables and PNG charts inline, no script
  DIR/figures/        every chart as PNG, SVG and PDF
  DIR/notebooks/      the executed notebooks
The comparison notebook runs only with --previous.

Theory of operation: what is trusted
-------------------------------------
Servers choose banners, EHLO lines and certificate subjects; domain lists
choose names. Any of it may reach a table or a label. The report therefore
never pastes HTML that a notebook produced: tables are rebuilt from their
JSON form (``display.TABLE_MIME``) with every cell escaped, text outputs are
escaped in ``<pre>``, images are embedded as base64 PNG, markdown cells go
through a small renderer that escapes before it formats, and any other
output type is dropped. A Content-Security-Policy that allows no script at
all backs this up in the browser. Terminal output names only paths.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from survey.store.location import RemotePath, location, location_arg

DEFAULT_TIMEOUT = 600
COMPARE_PREFIX = "06-"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ReportError(RuntimeError):
    """The report could not be made (the message says which notebook and why)."""


def default_notebooks() -> Path:
    """notebooks/ of the source tree this package runs from."""
    return Path(__file__).resolve().parent.parent / "notebooks"


def find_notebooks(directory: Path | None = None) -> list[Path]:
    directory = directory or default_notebooks()
    found = sorted(p for p in directory.glob("*.ipynb") if re.match(r"\d\d-", p.name))
    if not found:
        raise ReportError(f"no notebooks (NN-name.ipynb) in {directory}; pass --notebooks DIR")
    return found


# -- text that came from anywhere -----------------------------------------------------------

def clean_text(text: str) -> str:
    """Terminal escape sequences and control characters out (then escape for HTML)."""
    return _CONTROL.sub("\ufffd", _ANSI.sub("", text))


def escape(text: Any) -> str:
    return html.escape(clean_text(str(text)), quote=True)


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
]
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(text: str) -> str:
    """Escape, then format: the formatting can only add our own tags."""
    out = escape(text)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), html.unescape(match.group(2))
        if not re.match(r"^(https?:|mailto:|#|[\w./-]+$)", url):
            return label
        return f'<a href="{html.escape(url, quote=True)}">{label}</a>'

    return _LINK.sub(link, out)


def markdown_html(text: str) -> str:
    """The markdown the notebooks use: headings, paragraphs, lists, inline code/em/strong/links."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        bullet = re.match(r"^[-*]\s+(.*)$", stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)    # the report's h1 is its title
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet:
            if paragraph:
                flush()
            items.append(bullet.group(1))
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return "\n".join(blocks)


# -- outputs ---------------------------------------------------------------------------------

def output_html(output: dict[str, Any]) -> str:
    """One cell output as safe HTML (see the module docstring); '' for what is dropped."""
    from survey.analysis.display import NOTE_MIME, TABLE_MIME, render_table_html
    from survey.analysis.plots import png_size

    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        text = "".join(text) if isinstance(text, list) else text
        return f'<pre class="stream">{escape(text)}</pre>' if text.strip() else ""
    if kind not in ("display_data", "execute_result"):
        return ""
    data = output.get("data", {})
    if TABLE_MIME in data:
        table = data[TABLE_MIME]
        if table.get("provenance"):        # printed once, at the top of the report
            return ""
        safe = {"title": clean_text(str(table.get("title") or "")) or None,
                "note": clean_text(str(table.get("note") or "")) or None,
                "columns": [clean_text(str(c)) for c in table.get("columns", [])],
                "rows": [[clean_text(str(v)) for v in row] for row in table.get("rows", [])],
                "fold": bool(table.get("fold"))}
        return render_table_html(safe)
    if NOTE_MIME in data:
        note = data[NOTE_MIME]
        kind = "warning" if note.get("kind") == "warning" else "note"
        text = escape(note.get("text", ""))
        prefix = "<strong>Warning:</strong> " if kind == "warning" else ""
        return f'<p class="{kind}">{prefix}{text}</p>'
    if "image/png" in data:
        png = data["image/png"]
        png = "".join(png) if isinstance(png, list) else png
        png = re.sub(r"\s+", "", png)
        try:
            raw = base64.b64decode(png, validate=True)      # only real base64 gets in
        except ValueError:
            return ""
        meta = output.get("metadata", {})
        caption = str(meta.get("caption") or "")
        alt = str(meta.get("alt") or caption or "chart")
        # shown at half its pixel size (the PNG is rendered at 300 dpi): never scaled up
        width, height = png_size(raw)
        size = f' width="{width // 2}" height="{height // 2}"' if width and height else ""
        return (f'<figure><img alt="{escape(alt)}"{size} src="data:image/png;base64,{png}">'
                + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "")
                + "</figure>")
    if "text/plain" in data:
        text = data["text/plain"]
        text = "".join(text) if isinstance(text, list) else text
        return f"<pre>{escape(text)}</pre>"
    return ""


# -- notebooks -------------------------------------------------------------------------------

def inject_parameters(nb: Any, params: dict[str, Any]) -> Any:
    """Insert a cell assigning ``params`` right after the ``parameters`` cell (papermill)."""
    import nbformat

    lines = ["# Parameters injected by survey report"]
    lines += [f"{k} = {v!r}" for k, v in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    index = next((i for i, c in enumerate(nb.cells)
                  if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise ReportError("the notebook has no cell tagged 'parameters'")
    nb.cells.insert(index + 1, cell)
    return nb


async def _execute(path: Path, params: dict[str, Any], timeout: int, workdir: Path) -> Any:
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, params)
    # ipc: the kernel's channels are Unix sockets in a private directory, not TCP ports;
    # an absolute and short path (a socket path has ~100 bytes), whatever the kernel's cwd
    sockets = Path(tempfile.mkdtemp(prefix="survey-kernel-"))
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "k"))
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    _RUNNING[id(km)] = (km, sockets)
    try:
        # our own kernel manager (for the ipc transport): ask nbclient to shut the kernel
        # down all the same, or it outlives us ("Parent appears to have exited")
        await client.async_execute(cleanup_kc=True)
    except RuntimeError as exc:       # the kernel did not start or answer
        raise ReportError(f"{path.name}: the kernel failed: {clean_text(str(exc))}") from None
    except CellExecutionError as exc:
        raise ReportError(f"{path.name}: a cell failed:\n{clean_text(str(exc))[-2000:]}") from None
    except (CellTimeoutError, DeadKernelError, TimeoutError) as exc:
        raise ReportError(f"{path.name}: {type(exc).__name__}: {clean_text(str(exc))}") from None
    finally:
        _RUNNING.pop(id(km), None)
        shutil.rmtree(sockets, ignore_errors=True)
    return nb


# The kernels running now (id(manager) -> (manager, socket directory)), for Ctrl-C.
_RUNNING: dict[int, tuple[Any, Path]] = {}


def _stop_now() -> None:
    """Ctrl-C while notebooks run: kill their kernels, say so in one line, exit 130.

    Not asyncio's cancellation: nbclient's clean-up of a cancelled run fails half-way
    (it asserts on a kernel manager it has let go of) and leaves kernels behind. The
    report is written only at the end, so there is nothing of it to finish.
    """
    # every process this one started (kernels, a kernel still starting included)
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for km, sockets in list(_RUNNING.values()):
        process = getattr(getattr(km, "provisioner", None), "process", None)
        with contextlib.suppress(Exception):
            if process is not None:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(sockets, ignore_errors=True)
    print("\nsurvey report: interrupted; no report written", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(130)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
            parent = int(stat.rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def execute_notebooks(jobs: list[tuple[Path, dict[str, Any]]], *, timeout: int = DEFAULT_TIMEOUT,
                      workdir: Path, parallel: int = 2, progress: Any = None) -> list[Any]:
    """Execute notebooks (parameters injected), ``parallel`` kernels at a time, in order."""
    import asyncio

    os.environ.setdefault("MPLBACKEND", "Agg")       # kernels inherit it: no display
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    workdir.mkdir(parents=True, exist_ok=True)

    async def main() -> list[Any]:
        gate = asyncio.Semaphore(max(1, parallel))

        async def one(path: Path, params: dict[str, Any]) -> Any:
            async with gate:
                started = time.monotonic()
                nb = await _execute(path, params, timeout, workdir)
                if progress:
                    progress(f"{path.name}: {time.monotonic() - started:.1f} s")
                return nb

        # nbclient puts its own SIGINT handler on the loop for each notebook (a clean-up that
        # fails half-way for our kernel managers) and takes it off after, back to Python's
        # default: ours stays instead, from start to end (_stop_now)
        loop = asyncio.get_running_loop()
        add, remove = loop.add_signal_handler, loop.remove_signal_handler

        def add_ours(sig: int, callback: Any, *args: Any) -> None:
            add(sig, *((_stop_now,) if sig == signal.SIGINT else (callback, *args)))

        def keep_ours(sig: int) -> bool:
            if sig == signal.SIGINT and not loop.is_closed():
                add(sig, _stop_now)
                return True
            return remove(sig)

        loop.add_signal_handler = add_ours    # type: ignore[method-assign, assignment]
        loop.remove_signal_handler = keep_ours            # type: ignore[method-assign]
        with contextlib.suppress(NotImplementedError, RuntimeError):   # not the main thread
            add(signal.SIGINT, _stop_now)
        try:
            return await asyncio.gather(*(one(p, q) for p, q in jobs))
        finally:
            del loop.add_signal_handler, loop.remove_signal_handler

    handler = signal.getsignal(signal.SIGINT)
    try:
        return asyncio.run(main())
    finally:
        with contextlib.suppress(ValueError, TypeError):     # not the main thread
            signal.signal(signal.SIGINT, handler)


def execute_notebook(path: Path, params: dict[str, Any], *, timeout: int = DEFAULT_TIMEOUT,
                     workdir: Path | None = None) -> Any:
    """One notebook, parameters injected, executed (raises ReportError)."""
    return execute_notebooks([(path, params)], timeout=timeout,
                             workdir=workdir or path.parent)[0]


@dataclass
class Section:
    name: str
    title: str
    html: str
    figures: list[str] = field(default_factory=list)


def notebook_section(path: Path, nb: Any) -> Section:
    """An executed notebook as one report section (code folded, outputs shown)."""
    from survey.analysis.display import FIGURE_METADATA

    parts: list[str] = []
    title = path.stem
    figures: list[str] = []
    for cell in nb.cells:
        source = cell.get("source", "")
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "markdown":
            heading = re.match(r"^#\s+(.*)$", source.strip().splitlines()[0]) if source.strip() \
                else None
            if heading and title == path.stem:
                title = heading.group(1).strip()
                source = "\n".join(source.strip().splitlines()[1:])
            parts.append(markdown_html(source))
            continue
        if cell.get("cell_type") != "code" or "parameters" in tags:
            continue
        if "injected-parameters" not in tags:
            parts.append('<details class="code"><summary>code</summary>'
                         f"<pre>{escape(source)}</pre></details>")
        for output in cell.get("outputs", []):
            parts.append(output_html(output))
            name = output.get("metadata", {}).get(FIGURE_METADATA)
            if name:
                figures.append(str(name))
    anchor = re.sub(r"[^a-z0-9-]", "", path.stem.lower())
    return Section(anchor, title, "\n".join(p for p in parts if p), figures)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.7rem}h2{font-size:1.35rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2.5rem}h3{font-size:1.1rem}
table.survey-table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
table.survey-table caption{text-align:left;font-weight:600;padding:.3rem 0}
table.survey-table th,table.survey-table td{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top;max-width:28rem;overflow-wrap:break-word}
table.survey-table td.num{white-space:nowrap;text-align:right;font-variant-numeric:tabular-nums}
table.survey-table th{background:#f3f3f3}
details.table>summary{cursor:pointer;font-weight:600;font-size:.85rem;margin:1rem 0 .3rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.8rem;color:#555;max-width:40rem}
p.warning{border:1px solid #D55E00;background:#fff4ec;padding:.5rem .7rem}
pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;font-size:.8rem;white-space:pre-wrap}
details.code summary{cursor:pointer;color:#666;font-size:.8rem}
.note{font-size:.85rem;color:#555}nav li{margin:.2rem 0}
"""


def render_report(sections: list[Section], info: dict[str, Any]) -> str:
    """The whole report as one HTML document (no script, no external resource)."""
    rows = "".join(f"<tr><th>{escape(k.replace('_', ' '))}</th><td>{escape(v)}</td></tr>"
                   for k, v in info.items() if v not in (None, "", {}))
    toc = "".join(f'<li><a href="#{s.name}">{escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.name}"><h2>{escape(s.title)}</h2>\n{s.html}</section>'
                   for s in sections)
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           "base-uri 'none'; form-action 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Email transport security: {escape(info.get('scan', ''))}</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>Email transport security report</h1>"
        f'<table class="survey-table"><caption>Scan</caption>{rows}</table>'
        f"<nav><ul>{toc}</ul></nav>\n{body}\n</body></html>\n")


def plan(paths: list[Path], scan_dir: Path | RemotePath, figures: Path, *,
         previous: Path | RemotePath | None = None,
         sample: bool | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(notebook, parameters) to execute; the comparison only with a previous scan."""
    jobs = []
    for path in paths:
        params: dict[str, Any] = {"scan": str(scan_dir), "figures": str(figures),
                                  "sample": sample}
        if path.name.startswith(COMPARE_PREFIX):
            if previous is None:
                continue
            params["previous"] = str(previous)
        jobs.append((path, params))
    return jobs


def build_report(scan_dir: Path | str | RemotePath, out_dir: Path, *,
                 previous: Path | str | RemotePath | None = None,
                 notebooks: Path | None = None, sample: bool | None = None,
                 timeout: int = DEFAULT_TIMEOUT, parallel: int = 2,
                 progress: Any = None) -> Path:
    """Run every notebook against ``scan_dir``; write the report into ``out_dir``."""
    import nbformat

    from survey.analysis.load import AnalysisError, Scan

    scan_dir, out_dir = _absolute(scan_dir), Path(out_dir).resolve()
    try:
        info = Scan(scan_dir, sample=sample).describe()
    except AnalysisError as exc:
        raise ReportError(str(exc)) from None
    if previous is not None:
        previous = _absolute(previous)
        try:
            Scan(previous)
        except AnalysisError as exc:
            raise ReportError(f"--previous: {exc}") from None
    info.pop("counts", None)
    paths = find_notebooks(notebooks)
    figures = out_dir / "figures"
    executed = out_dir / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    jobs = plan(paths, scan_dir, figures, previous=previous, sample=sample)
    if previous is not None:
        info["previous_scan"] = str(previous)
    done = execute_notebooks(jobs, timeout=timeout, workdir=executed, parallel=parallel,
                             progress=progress)
    sections = []
    for (path, _), nb in zip(jobs, done):
        nbformat.write(nb, executed / path.name)
        sections.append(notebook_section(path, nb))
    info["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    from survey import __version__

    info["tool"] = f"survey {__version__}"
    report = out_dir / "report.html"
    temporary = out_dir / ".report.html.tmp"
    temporary.write_text(render_report(sections, info), encoding="utf-8")
    os.replace(temporary, report)
    return report


def _absolute(scan_dir: Path | str | RemotePath) -> Path | RemotePath:
    """A scan directory the kernels find from their own working directory: a URL as it is."""
    scan_dir = location(scan_dir)
    return scan_dir if isinstance(scan_dir, RemotePath) else scan_dir.resolve()


def render(scan_dir: Path | str, out_dir: Path | str, **kwargs: Any) -> Path:
    """The report of ``scan_dir`` into ``out_dir`` (``build_report``; used by `survey demo`)."""
    return build_report(Path(scan_dir), Path(out_dir), **kwargs)


# -- the command ------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=location_arg, metavar="SCAN_DIR",
                        help="a scan directory (a path or an fsspec URL)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write report.html, figures/ and notebooks/ "
                             "(default: SCAN_DIR/report)")
    parser.add_argument("--previous", type=location_arg, metavar="SCAN_DIR",
                        help="an earlier scan to compare with (runs the comparison notebook)")
    parser.add_argument("--notebooks", type=Path, metavar="DIR",
                        help="the notebooks to run (default: the source tree's notebooks/)")
    parser.add_argument("--sample", action="store_true", default=None,
                        help="the scanned list is a random subset: show intervals (--limit "
                             "and --shard scans are samples already)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds per notebook cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--jobs", type=int, default=2,
                        help="notebooks executed at a time (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    if args.out is None and isinstance(args.scan, RemotePath):
        print("survey report: a scan at a URL needs --out DIR for the report",
              file=sys.stderr)
        return 2
    out = args.out or (args.scan / "report")
    say = None if args.quiet else (lambda text: print(f"survey report: {text}",
                                                      file=sys.stderr))
    # Ctrl-C: kill the kernels and end in one line (_stop_now), wherever the report is
    previous_handler = signal.signal(signal.SIGINT, lambda *_: _stop_now())
    try:
        report = build_report(args.scan, out, previous=args.previous, notebooks=args.notebooks,
                              sample=args.sample, timeout=args.timeout, parallel=args.jobs,
                              progress=say)
    except ReportError as exc:
        print(f"survey report: {clean_text(str(exc))}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    print(f"{report}\nfigures: {report.parent / 'figures'}")
    return 0
