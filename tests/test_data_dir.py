"""data/ in the repository: its README, the example list, and what git keeps out."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from survey.scan.targets import read_targets
from survey.testbed.generator import generate

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
EXAMPLE = DATA / "lists" / "example.csv"


def readme_command(program: str) -> list[str]:
    """The first ``survey PROGRAM ...`` line of data/README.md's shell block."""
    for line in (DATA / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"survey {program} "):
            return shlex.split(line.split("#", 1)[0])
    raise AssertionError(f"data/README.md shows no `survey {program}` command")


def option(argv: list[str], name: str, default: str | None = None) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else default


def test_the_example_list_is_tranco_format_and_every_name_is_valid():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    assert 10 <= len(lines) <= 100
    assert all(re.fullmatch(r"[1-9][0-9]*,[a-z0-9.-]+\.test", line) for line in lines), lines
    targets = list(read_targets(EXAMPLE))
    assert [(t.rank, t.domain) for t in targets] == [
        (int(r), d) for r, d in (line.split(",") for line in lines)]
    assert all(t.valid for t in targets)                     # none is invalid_input


def test_the_readme_world_holds_every_example_name_at_its_rank():
    build = readme_command("world")
    assert option(build, "--out") == "data/worlds/w1"
    world = generate(int(option(build, "--domains")), int(option(build, "--seed", "0")),
                     option(build, "--profile", "default"))
    ranks = {d.name: d.rank for d in world.domains}
    example = {t.domain: t.rank for t in read_targets(EXAMPLE)}
    # A generator change that renames seed 1's domains fails here: pick the list again from
    # the new world's truth (one domain per outcome data/README.md names).
    assert {name: ranks.get(name) for name in example} == example, \
        "data/lists/example.csv names domains the README's world no longer holds"


def test_the_readme_scans_the_example_list_against_that_world():
    scan = readme_command("scan")
    assert scan[2] == "data/lists/example.csv" and option(scan, "--world") == "data/worlds/w1"
    serve = readme_command("world --serve")
    assert option(serve, "--out") == "data/worlds/w1"


@pytest.mark.parametrize(("path", "ignored"), [
    ("data/README.md", False), ("data/lists/example.csv", False),
    ("data/lists/top-1m.csv", True), ("data/scans/example/manifest.json", True),
    ("data/worlds/w1/spec.json", True), ("data/report/report.html", True),
    ("data/scans/latest", True),
])
def test_git_tracks_the_readme_and_the_example_only(path, ignored):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO,
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == (0 if ignored else 1), result.stderr
