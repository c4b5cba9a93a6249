"""The `survey` entry point: what a command's start imports, and how the program ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from survey.cli import COMMANDS

OTHER_COMMANDS = [module for name, (module, _) in COMMANDS.items() if name != "scan"]


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, cwd=cwd, check=False)


def test_a_command_imports_its_own_module_only(tmp_path):
    result = _python(f"""
        import sys
        from survey.cli import build_parser
        parser = build_parser("scan")
        print(sorted(set({OTHER_COMMANDS!r}) & set(sys.modules)))
        parser.parse_args(["scan", "--help"])
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[]\n")                  # world, score, report, ... not
    assert "--smtp-port" in result.stdout                     # scan's own options are there


def test_the_top_level_help_still_lists_every_command(tmp_path):
    result = _python("""
        from survey.cli import build_parser
        build_parser("scan").parse_args(["--help"])
        """, tmp_path)
    assert all(name in result.stdout for name in COMMANDS)


END_OF_A_SCAN = """
    import atexit, sys, threading

    class Teardown:
        def __del__(self):
            print("teardown ran", flush=True)

    keep = Teardown()
    atexit.register(lambda: print("exit handler ran; pandas loaded:", "pandas" in sys.modules,
                                  flush=True))
    returned = threading.Event()
    if {thread}:      # alive until main() returns: it must, for the thread to end
        threading.Thread(target=lambda: (returned.wait(), print("thread done", flush=True)),
                         daemon=False).start()
    sys.argv = ["survey", "scan", "empty.txt", "--out", "out", "--testbed",
                "--resolver", "127.0.0.1:9"]
    from survey.cli import main
    status = main()
    returned.set()
    sys.exit(status)
    """


def test_a_scan_ends_without_the_interpreters_teardown(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    result = _python(END_OF_A_SCAN.format(thread=False), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "held no domain" in result.stderr and "dataset: out" in result.stdout
    assert "exit handler ran; pandas loaded: False" in result.stdout   # store/writer.py
    assert "teardown ran" not in result.stdout


def test_a_thread_still_running_keeps_the_normal_exit(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    result = _python(END_OF_A_SCAN.format(thread=True), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "thread done" in result.stdout and "teardown ran" in result.stdout
