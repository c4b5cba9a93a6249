"""What a newcomer meets first: the help texts, the errors of `survey scan`, the demo's pointers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from survey.cli import build_parser, main
from survey.demo import _point_latest


def test_the_top_level_help_points_at_the_demo(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "survey demo" in capsys.readouterr().out


def test_scan_help_keeps_its_example_line_breaks():
    text = build_parser()._subparsers._group_actions[0].choices["scan"].format_help()
    assert "--smtp-port 2525 \\\n" in text                  # not joined into one long line
    assert "--out DIR" in text


def _scan(*args, cwd):
    return subprocess.run([sys.executable, "-m", "survey.cli", "scan", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def test_an_out_that_cannot_be_created_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "list.txt").write_text("example.test\n")
    (tmp_path / "file").write_text("")
    result = _scan("list.txt", "--out", "file/scan", "--testbed", "--resolver", "127.0.0.1:1",
                   cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("survey scan: ") and "file/scan" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["missing.txt", "--out", "o"], "no such file"),
    (["--out", "o", "--world", "nowhere"], "no world.json"),
    (["--out", "o"], "give a domain list"),
])
def test_bad_inputs_say_what_is_wrong(tmp_path, args, words):
    result = _scan(*args, cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_latest_points_at_the_demo_scan_but_never_replaces_a_directory(tmp_path):
    scans = tmp_path / "scans"
    first, second = scans / "a", scans / "b"
    first.mkdir(parents=True)
    second.mkdir()
    assert _point_latest(first) == scans / "latest"
    assert _point_latest(second) == scans / "latest"
    assert (scans / "latest").resolve() == second.resolve()
    (scans / "latest").unlink()
    (scans / "latest").mkdir()                       # the user's own directory
    assert _point_latest(first) is None and (scans / "latest").is_dir()


def test_an_input_without_domains_warns(tmp_path):
    (tmp_path / "empty.txt").write_text("# only a comment\n")
    result = _scan("empty.txt", "--out", "scan", "--testbed", "--resolver", "127.0.0.1:1",
                   "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "held no domain" in result.stderr
