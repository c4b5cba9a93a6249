"""Every notebook executes against a testbed scan, and every notebook stays thin.

A small default-profile world (providers, rate limits, every MTA-STS
behaviour) is built, served on loopback and scanned twice with `survey scan
--world`: once whole, once as a shard (a sample, so intervals appear). The
notebooks run with nbclient exactly as `survey report` runs them.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import nbformat
import pytest

from survey import analysis as sa
from survey.report import execute_notebooks, find_notebooks
from tests.worlds import SURVEY, served_world

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ["01-overview", "02-starttls-certificates", "03-tls-versions-ciphers",
            "04-mta-sts-tlsrpt", "05-published-figures", "06-compare-scans"]
DOMAINS = 300


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("nb-world"), domains=DOMAINS, seed=11,
                      scale="fast", profile="default") as directory:
        yield directory


@pytest.fixture(scope="module")
def scans(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("nb-scans")
    for name, extra in (("full", []), ("shard", ["--shard", "1/2"])):
        subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(root / name),
                                 "--quiet", *extra], check=True, timeout=300,
                       capture_output=True)
    return root / "full", root / "shard"


def test_the_six_notebooks_are_there():
    assert [p.stem for p in find_notebooks(NOTEBOOKS)] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_each_notebook_is_thin_with_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    params = ast.parse(tagged[0].source)
    names = {t.id for node in params.body for t in getattr(node, "targets", [])}
    assert {"scan", "figures", "sample"} <= names
    assert nb.cells[0].cell_type == "markdown" and "Scheitle" in nb.cells[0].source
    for cell in nb.cells:
        assert not cell.get("outputs"), "notebooks are committed without outputs"
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            # logic lives in survey.analysis, where tests reach it
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While,
                                         ast.Lambda)), f"{name}: {cell.source[:60]}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert module.startswith("survey"), f"{name} imports {module}"
        assert len(cell.source.splitlines()) <= 12


def test_every_notebook_executes_against_a_testbed_scan(scans, tmp_path):
    full, shard = scans
    assert sa.load(shard).is_sample and not sa.load(full).is_sample
    figures = tmp_path / "figures"
    jobs = []
    for path in find_notebooks(NOTEBOOKS):
        params = {"scan": str(shard), "figures": str(figures), "sample": None}
        if path.stem.startswith("06"):
            params.update(scan=str(shard), previous=str(full))
        jobs.append((path, params))
    executed = execute_notebooks(jobs, timeout=300, workdir=tmp_path / "run")
    for (path, _), nb in zip(jobs, executed):
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], path.name
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images, f"{path.name} drew no chart"
    pngs = sorted(figures.glob("*.png"))
    assert len(pngs) >= 12
    for png in pngs:
        assert png.with_suffix(".svg").exists() and png.with_suffix(".pdf").exists()
    # the sample's tables carry intervals (a cluster bootstrap over providers)
    overview = executed[0]
    tables = [o["data"]["application/vnd.survey.table+json"] for c in overview.cells
              if c.cell_type == "code" for o in c.get("outputs", [])
              if "application/vnd.survey.table+json" in o.get("data", {})]
    headline = next(t for t in tables if t["title"] == "Headline shares")
    low = headline["columns"].index("low")
    assert all(row[low].endswith("%") for row in headline["rows"])
