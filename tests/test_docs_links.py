"""The repository explains itself: no file points outside it, and its cross-references resolve.

The design document is docs/design.md. Code, notebooks and docs cite a section
by its title in quotes after the file name, or link to it with an anchor; both
must name a heading that exists. Nothing may point at a design brief or vector set that
lives beside the repository (a clone does not have it).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "design.md"
# Spelt in pieces so that this file does not match itself.
OUTSIDE = ("DESIGN" + ".md", ".." + "/shared", "/work" + "/shared", "shared" + "/vectors")
SKIP_DIRS = {".git", ".venv", ".venv-peers", "build", "dist", "data", "__pycache__",
             ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache", "node_modules"}
CITATION = re.compile(r'docs/design\.md\s+\\?"([^"\\]+)\\?"')
ANCHOR = re.compile(r"design\.md#([a-z0-9-]+)")


def repository_text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        if path.is_file() and path.suffix not in {".parquet", ".png", ".pdf", ".gz", ".pyc"}:
            files.append(path)
    return files


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def headings(markdown: str) -> dict[str, str]:
    """Heading text -> GitHub anchor, for the ## and ### headings of a document."""
    found = {}
    for line in markdown.splitlines():
        if m := re.match(r"#{2,3} (.+)", line):
            title = m.group(1).strip()
            found[title] = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
    return found


def outside_references(text: str) -> list[str]:
    return [needle for needle in OUTSIDE if needle in text]


def test_no_file_points_outside_the_repository():
    files = repository_text_files()
    assert len(files) > 100, "the walk missed the repository"
    offenders = {}
    for path in files:
        text = read_text(path)
        if text is not None and (found := outside_references(text)):
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


def test_citations_of_the_design_document_name_its_sections():
    sections = headings(DESIGN.read_text(encoding="utf-8"))
    anchors = set(sections.values())
    cited, bad = 0, []
    for path in repository_text_files():
        text = read_text(path)
        if text is None:
            continue
        for title in CITATION.findall(text):
            cited += 1
            if " ".join(title.split()) not in sections:
                bad.append((str(path.relative_to(REPO)), title))
        for anchor in ANCHOR.findall(text):
            cited += 1
            if anchor not in anchors:
                bad.append((str(path.relative_to(REPO)), "#" + anchor))
    assert cited >= 10 and bad == []


def test_the_checks_can_fail():
    assert outside_references("see " + "DESIGN" + ".md step 2") == ["DESIGN" + ".md"]
    assert outside_references("default `" + ".." + "/sha" + "red/x`") == [".." + "/shared"]
    assert outside_references("docs/design.md and docs/schema.md") == []
    assert CITATION.findall('cites docs/design.md "Verdict definitions" here') == [
        "Verdict definitions"]
    assert "Verdict definitions" in headings(DESIGN.read_text(encoding="utf-8"))
    assert headings("## Known platform pitfalls\n") == {
        "Known platform pitfalls": "known-platform-pitfalls"}
