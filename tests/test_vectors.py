"""Conformance vectors: every case of every file in the vector directory.

The directory is ``$SURVEY_VECTORS_DIR``, else ``tests/vectors`` (the RFC-derived
vectors; tests/vectors/README.md says how they were written). A file no checker
claims fails the run rather than being skipped, so a new vector file cannot go
unchecked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.vectorcheck import all_checkers

REPO = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    if env := os.environ.get("SURVEY_VECTORS_DIR"):
        return Path(env)
    return REPO / "tests" / "vectors"


def checker_for(stem: str, checkers: dict):
    keys = [k for k in checkers if stem.startswith(k)]
    return checkers[max(keys, key=len)] if keys else None


def collect():
    directory = vectors_dir()
    files = sorted(directory.glob("*.json"))
    if not files:
        return [pytest.param(None, None, id=f"no-vector-files-in-{directory}")]
    params = []
    for path in files:
        for case in json.loads(path.read_text(encoding="utf-8")):
            params.append(pytest.param(path.stem, case, id=f"{path.stem}:{case['id']}"))
    return params


@pytest.mark.parametrize(("stem", "case"), collect())
def test_vector(stem, case):
    assert stem is not None, f"no *.json vector files in {vectors_dir()}"
    check = checker_for(stem, all_checkers())
    assert check is not None, f"no checker claims vector file {stem}.json"
    check(case)
