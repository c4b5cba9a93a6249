"""Packaging stays consistent: environment.yml mirrors pyproject.toml, the CLI starts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# conda-forge names where they differ from PyPI's
CONDA_NAMES = {"duckdb": "python-duckdb"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    pairs = (REQUIREMENT.match(line).groups() for line in lines)
    return {CONDA_NAMES.get(name.lower(), name.lower()): spec.replace(" ", "")
            for name, spec in pairs}


def conda_requirements() -> dict[str, str]:
    found = {}
    text = (REPO / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+)(\S*)\s*$", line)
        if match and match.group(1) not in {"python", "pip"}:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_environment_yml_mirrors_pyproject():
    assert conda_requirements() == pyproject_requirements()


def test_python_floor_is_the_same():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert "  - python>=3.11" in (REPO / "environment.yml").read_text().splitlines()


def test_the_console_script_answers_help():
    out = subprocess.run([sys.executable, "-m", "survey.cli", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and "usage: survey" in out.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
