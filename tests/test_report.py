"""`survey report`: one self-contained HTML file plus figure files; server text escaped.

The fixture scan's banner carries ``<script>`` and terminal escapes, and a
certificate issuer carries ``<script>``; neither may reach the HTML as markup.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from survey.report import (
    ReportError,
    find_notebooks,
    inject_parameters,
    markdown_html,
    output_html,
    plan,
    render_report,
)
from tests.browser import MEASURE, Browser
from tests.requirements import needs
from tests.test_analysis_fixture import write_fixture

SURVEY = [sys.executable, "-m", "survey.cli"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    a, b = write_fixture(root)
    out = root / "out"
    result = subprocess.run(SURVEY + ["report", str(b), "--previous", str(a), "--out",
                                      str(out), "--quiet"],
                            check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out, result


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs


def test_the_report_is_one_file_with_figures_beside_it(report):
    out, result = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert str(out / "report.html") in result.stdout
    for title in ("Overview", "STARTTLS and certificates", "TLS versions and cipher suites",
                  "MTA-STS, DANE and TLSRPT", "Published figures, side by side",
                  "Comparing two scans"):
        assert f">{title}</h2>" in page
    parser = Elements()
    parser.feed(page)
    sources = [v for k, v in parser.attrs if k in ("src", "href") and v]
    assert all(v.startswith(("data:image/png;base64,", "#")) for v in sources), \
        "self-contained: no external resource"
    assert parser.tags.count("img") >= 12
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 12
    assert all(p.with_suffix(".svg").exists() and p.with_suffix(".pdf").exists() for p in pngs)
    assert len(list((out / "notebooks").glob("*.ipynb"))) == 6


def test_server_supplied_text_is_escaped(report):
    out, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;banner&#x27;)&lt;/script&gt;" in page   # the banner
    assert "&lt;script&gt;alert(&#x27;issuer&#x27;)&lt;/script&gt;" in page   # the issuer
    assert "\x1b" not in page
    parser = Elements()
    parser.feed(page)
    assert "script" not in parser.tags and not any(k.startswith("on") for k, _ in parser.attrs)
    assert "default-src 'none'" in page        # and a CSP that allows no script anyway


def test_without_previous_the_comparison_is_skipped(tmp_path):
    paths = find_notebooks()
    names = [p.name for p, _ in plan(paths, tmp_path / "scan", tmp_path / "figures")]
    assert len(names) == 5 and not any(n.startswith("06-") for n in names)
    jobs = plan(paths, tmp_path / "scan", tmp_path / "figures", previous=tmp_path / "old")
    assert jobs[-1][1]["previous"] == str(tmp_path / "old")
    assert {j[1]["scan"] for j in jobs} == {str(tmp_path / "scan")}


def test_a_missing_scan_is_one_line_of_error(tmp_path):
    result = subprocess.run(SURVEY + ["report", str(tmp_path / "nope"), "--quiet"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("survey report:") and "Traceback" not in result.stderr


def test_outputs_other_than_tables_text_and_png_are_dropped():
    hostile = "<script>alert(1)</script>"
    assert output_html({"output_type": "display_data", "data": {"text/html": hostile}}) == ""
    assert output_html({"output_type": "display_data",
                        "data": {"text/html": hostile, "text/plain": hostile}}) == \
        "<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>"
    assert "&lt;script&gt;" in output_html({"output_type": "stream", "text": hostile})
    assert output_html({"output_type": "display_data",
                        "data": {"image/png": "not base64 <script>"}}) == ""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    html = output_html({"output_type": "display_data", "data": {"image/png": png},
                        "metadata": {"survey_figure": '"><script>x'}})
    assert "<script" not in html and html.startswith("<figure><img")
    table = {"title": hostile, "note": None, "columns": ["a<b"], "rows": [[hostile]]}
    html = output_html({"output_type": "display_data",
                        "data": {"application/vnd.survey.table+json": table}})
    assert "<script" not in html and "a&lt;b" in html
    assert output_html({"output_type": "error", "ename": hostile}) == ""


def test_markdown_escapes_before_it_formats():
    html = markdown_html("# Title <b>\n\nSome *em* and **strong** `co<de>` "
                         "[ok](https://example.org) [bad](javascript:alert(1))\n\n- one\n- two")
    assert "<h2>Title &lt;b&gt;</h2>" in html
    assert "<em>em</em>" in html and "<strong>strong</strong>" in html
    assert "<code>co&lt;de&gt;</code>" in html
    assert '<a href="https://example.org">ok</a>' in html
    assert "javascript" not in html.split("bad")[0] and 'href="javascript' not in html
    assert "<ul><li>one</li><li>two</li></ul>" in html


def test_parameters_are_injected_after_the_parameters_cell():
    import nbformat

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("scan = None")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), p, nbformat.v4.new_code_cell("scan")]
    inject_parameters(nb, {"scan": "/data/it's here", "sample": None})
    assert nb.cells[2].source.splitlines()[1:] == ['scan = "/data/it\'s here"', "sample = None"]
    with pytest.raises(ReportError):
        inject_parameters(nbformat.v4.new_notebook(), {"scan": "x"})


def test_the_page_frame_escapes_provenance():
    page = render_report([], {"scan": "<script>x</script>", "list": "a&b"})
    assert "<script>x" not in page and "&lt;script&gt;x" in page and "a&amp;b" in page
    assert re.search(r"<title>[^<]*&lt;script", page)


# -- in a real browser ----------------------------------------------------------------------

ARTIFACTS = Path(os.environ.get("SURVEY_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent / "artifacts"))
PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5"
           "ErkJggg==")


def problems(measured: dict) -> list[str]:
    """What a reader would see wrong: scaled-up, distorted or clipped images, overflowing text."""
    found = []
    if measured["scripts"] or measured["handlers"] or measured["iframes"]:
        found.append(f"script: {measured['scripts']} scripts, {measured['handlers']} handlers")
    for img in measured["images"]:
        name = img["alt"][:60]
        if not (img["complete"] and img["natural_width"] and img["natural_height"]):
            found.append(f"image not loaded: {name}")
            continue
        if img["width"] > img["natural_width"] + 0.5 or img["height"] > img["natural_height"] + 0.5:
            found.append(f"image scaled above its natural size: {name}")
        if abs(img["width"] / img["height"] - img["natural_width"] / img["natural_height"]) > 0.02:
            found.append(f"image distorted: {name}")
        if img["left"] < 0 or img["right"] > measured["view"]:
            found.append(f"image clipped by the page: {name}")
    found += [f"text overflows its box: {text!r}" for text in measured["overflowing"]]
    if measured["page_width"] > measured["view"]:
        found.append(f"the page is {measured['page_width']} px wide in a {measured['view']} px window")
    return found


@needs("chromium")
def test_the_report_renders_whole_in_chromium(report, tmp_path):
    out, _ = report
    bad = tmp_path / "bad.html"       # the checks can fail: a page with every fault
    bad.write_text(f'''<!DOCTYPE html><html><body style="margin:0">
        <img alt="scaled" width="40" height="40" src="data:image/png;base64,{PNG_1x1}">
        <img alt="clipped" style="margin-left:1300px" width="1" height="1"
             src="data:image/png;base64,{PNG_1x1}">
        <table><tr><td style="max-width:3rem;overflow:hidden;white-space:nowrap">
        1,234,567,890,123,456</td></tr></table></body></html>''', encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Browser() as browser:
        browser.open(bad)
        faults = problems(browser.evaluate(MEASURE))
        browser.open(out / "report.html")
        measured = browser.evaluate(MEASURE)
        shot = browser.screenshot(ARTIFACTS / "report.png")
    print(f"report screenshot: {shot}")
    assert any("scaled above" in f for f in faults) and any("clipped" in f for f in faults)
    assert any("overflows" in f for f in faults)
    assert len(measured["images"]) >= 10
    assert problems(measured) == []
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_notes_and_warnings_are_escaped_and_warnings_stand_out():
    from survey.analysis.display import Note

    bundle = Note("profiles differ: <b>versions</b> then ciphers", "warning")._repr_mimebundle_()
    html = output_html({"output_type": "display_data", "data": bundle})
    assert html.startswith('<p class="warning"><strong>Warning:</strong>')
    assert "&lt;b&gt;versions&lt;/b&gt;" in html and "<b>" not in html
    note = output_html({"output_type": "display_data",
                        "data": Note("one provider only")._repr_mimebundle_()})
    assert note == '<p class="note">one provider only</p>'


def test_provenance_tables_are_left_to_the_top_of_the_report():
    table = {"title": "Scan", "columns": ["field", "value"], "rows": [["scan", "x"]],
             "provenance": True}
    assert output_html({"output_type": "display_data",
                        "data": {"application/vnd.survey.table+json": table}}) == ""
    page = render_report([], {"scan": "x", "profile": "versions"})
    assert page.count("<caption>Scan</caption>") == 1
