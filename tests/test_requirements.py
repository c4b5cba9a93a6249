"""Tests that need Debian programs or root say so, and CI turns their skips into failures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.requirements import INSTALL, STRICT, missing

REPO = Path(__file__).resolve().parent.parent
NO_SUCH = "survey-no-such-program"
# Programs a test might run that `make test` on a laptop does not bring: each test or helper
# module that starts one must carry a needs(...) mark or call require(...).
PROGRAMS = ("openssl", "curl", "postfix", "postconf", "posttls-finger", "unbound",
            "unbound-checkconf", "unbound-host", "nginx", "testssl", "sslscan", "sslyze",
            "unshare", "nsd", "dig", "kdig", "delv", "drill", "ldns-verify-zone",
            "ldns-signzone", "dnssec-signzone", "dnssec-keygen", "chromium", "sudo")
ARGV = re.compile(r"""[\[(]\s*["'](%s|ip(?=["']\s*,\s*["'](?:netns|link|addr)))["']\s*,"""
                  % "|".join(re.escape(p) for p in PROGRAMS))
# A module declares what it starts with needs(...), require(...) or a NEEDS_* mark of a helper.
DECLARED = re.compile(r"\b(needs|require)\(|\bNEEDS_[A-Z]+\b")
WHICH = re.compile(r"""which\(\s*["'](%s)["']""" % "|".join(re.escape(p) for p in PROGRAMS))


def programs_started(text: str) -> set[str]:
    return set(ARGV.findall(text)) | set(WHICH.findall(text))


def test_every_module_that_starts_a_program_declares_it():
    undeclared = {}
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name == "test_requirements.py":
            continue
        text = path.read_text(encoding="utf-8")
        if (started := programs_started(text)) and not DECLARED.search(text):
            undeclared[str(path.relative_to(REPO))] = sorted(started)
    assert undeclared == {}


def test_the_readme_names_every_module_that_needs_something():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tests_section = readme[readme.index("## Tests"):]
    unnamed = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name != "test_requirements.py" and re.search(r"\bneeds\(", text) \
                and f"`{path.name}`" not in tests_section:
            unnamed.append(path.name)
    assert unnamed == [], "add them to the README's table under ## Tests"


def test_the_scan_for_programs_can_fail():
    assert programs_started('cmd = ["openssl", "s_client", "-connect", x]') == {"openssl"}
    assert programs_started('subprocess.run(("unbound-checkconf", conf))') == {
        "unbound-checkconf"}
    assert programs_started('shutil.which("nginx")') == {"nginx"}
    assert programs_started('[sys.executable, "-m", "survey.cli"]') == set()
    assert programs_started('cmd = ["ip", "netns", "add", "x"]') == {"ip"}
    assert programs_started('columns = ["ip", "port"]') == set()


def test_the_reason_names_what_is_missing_and_how_to_install_it():
    reason = missing(NO_SUCH)
    assert reason == f"needs {NO_SUCH}: install with `{INSTALL}`"
    assert missing() is None
    if os.geteuid() != 0:
        assert missing(root=True) == "needs root: run as root, as .ci/run does"
    else:
        assert missing(root=True) is None


def _run_sample(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    needs: see tests/requirements.py\n")
    (tmp_path / "test_sample.py").write_text(
        "from tests.requirements import needs\n\n"
        f"@needs({NO_SUCH!r})\n"
        "def test_needs_a_program():\n    pass\n\n"
        "def test_needs_nothing():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != STRICT}
    env["PYTHONPATH"] = str(REPO)
    if strict:
        env[STRICT] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-q", "-rsE",
         str(tmp_path / "test_sample.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_missing_program_is_a_named_skip(tmp_path):
    result = _run_sample(tmp_path, strict=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert f"needs {NO_SUCH}: install with `{INSTALL}`" in result.stdout


def test_under_strict_a_missing_program_fails(tmp_path):
    result = _run_sample(tmp_path, strict=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith("1 passed, 1 error")
    assert f"{STRICT} is set" in result.stdout


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("", False)])
def test_strict_reads_the_variable(monkeypatch, value, expected):
    from tests.requirements import strict
    monkeypatch.setenv(STRICT, value)
    assert strict() is expected


def test_a_program_off_path_is_named_as_such(tmp_path, monkeypatch):
    import tests.requirements as req
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / NO_SUCH).write_text("#!/bin/sh\n")
    (sbin / NO_SUCH).chmod(0o755)
    monkeypatch.setattr(req, "SBIN", (str(sbin),))
    assert missing(NO_SUCH) == f"needs {NO_SUCH} (in /usr/sbin, not on PATH): add /usr/sbin to PATH"
    monkeypatch.setenv("PATH", f"{sbin}{os.pathsep}{os.environ['PATH']}")
    assert missing(NO_SUCH) is None
