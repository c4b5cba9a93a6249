"""`survey scan` meets bad input with one clear line and a non-zero exit, before any packet."""

from __future__ import annotations

import subprocess
import sys

import pytest

SURVEY = [sys.executable, "-m", "survey.cli", "scan"]


def run(*args):
    return subprocess.run(SURVEY + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def domains(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("example.test\n")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["{missing}", "--out", "{out}"], "cannot read input"),
    (["{list}", "--out", "{out}", "--shard", "5/4"], "--shard"),
    (["{list}", "--out", "{out}", "--resolver", "dns.example"], "bad resolver"),
    (["{list}", "--out", "{out}", "--per-ip", "0"], "--per-ip: 0 must be at least 1"),
    (["{list}", "--out", "{out}", "--conversations", "0"], "--conversations: 0 must be at least 1"),
    (["{list}", "--out", "{out}", "--ehlo-name", "two words"], "--ehlo-name"),
    (["{list}", "--out", "{out}", "--world", "{tmp}"], "no world.json"),
    (["{list}", "--out", "{out}", "--blocklist", "{missing}"], "cannot read blocklist"),
    (["--out", "{out}"], "give a domain list"),
    (["{list}", "--out", "{out}", "--dnssec-trust-ad", "--no-dnssec"], "exclude each other"),
])
def test_bad_options_get_one_line_and_exit_2(tmp_path, domains, args, message):
    values = {"missing": tmp_path / "nope.txt", "out": tmp_path / "out", "list": domains,
              "tmp": tmp_path}
    result = run(*[a.format(**values) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_existing_scan_is_not_overwritten(tmp_path, domains):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    result = run(domains, "--out", out, "--resolver", "127.0.0.1:9")
    assert result.returncode == 2 and "--resume" in result.stderr


def test_help_explains_the_options():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--world", "--resolver", "--per-ip", "--rate", "--blocklist", "--resume",
                   "--shard", "--ehlo-name", "--dns-rate", "--dnssec-anchor",
                   "--dnssec-trust-ad", "--conversations"):
        assert option in result.stdout
