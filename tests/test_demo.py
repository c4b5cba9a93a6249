"""`survey demo`: world, scan, score (and report when present), all on loopback, world stopped."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_demo_runs_end_to_end(tmp_path):
    # the default profile (published) in its smallest size: what `make demo` runs, halved
    result = subprocess.run([sys.executable, "-m", "survey.cli", "demo", "--domains", "1000",
                             "--data", str(tmp_path)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "dataset:" in result.stdout and "100.00%" in result.stdout
    world = json.loads(next((tmp_path / "worlds").glob("*/world.json")).read_text())
    assert world["state"] == "stopped"          # the demo stops its servers
    manifest_path = next((tmp_path / "scans").glob("*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["state"] == "complete" and manifest["counts"]["domains"] == 1000
    assert (tmp_path / "scans" / "latest").resolve() == manifest_path.parent.resolve()


def test_a_world_that_cannot_be_built_is_an_error_not_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "survey.cli", "demo", "--domains", "200",
                             "--profile", "published", "--data", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "multiple of 1000" in result.stderr and "Traceback" not in result.stderr
