"""The `survey` command: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``configure(parser)`` (add
its options) and ``run(args) -> int`` (the exit status), so this file stays a
table and a subcommand's imports cost nothing until it is used: ``survey scan``
imports the scan's module only, not the world's, the report's or the demo's.

A module may also set ``EXIT_AT_ONCE = True``: everything it writes is closed
(and synced) when ``run`` returns, so the program then ends without the
interpreter's teardown, which frees every object and module one by one (0.15-0.2
s of CPU after a scan, with pyarrow, pandas and numpy loaded; benchmarks/peers.py).
The exit handlers still run (``atexit``), and a thread left running still keeps
the program alive.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from importlib import import_module

# name -> (module, one-line help). Add a subcommand by adding a line.
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("survey.scan.cli_scan", "scan a domain list into a Parquet dataset"),
    "world": ("survey.testbed.cli_world",
              "build (and serve) a simulated mail Internet on loopback"),
    "score": ("survey.testbed.cli_score", "compare a scan dataset with a world's ground truth"),
    "report": ("survey.report", "run the analysis notebooks on a scan into an HTML report"),
    "demo": ("survey.demo", "build, serve, scan, score and report a simulated world (loopback)"),
    "schema": ("survey.store.schemadoc", "print the dataset schema (docs/schema.md) as Markdown"),
}


class _Parser(argparse.ArgumentParser):
    """Option errors in one line (the usage is one `--help` away), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (a command's name) only that command's module
    is imported and its options added: the others are listed in the help, unconfigured."""
    from survey import __version__

    parser = _Parser(
        prog="survey",
        description="Measure email transport security: STARTTLS, TLS versions and "
        "cipher suites, certificates, MTA-STS (RFC 8461) and TLSRPT (RFC 8460).",
        epilog="New here? `survey demo` builds a simulated mail Internet on loopback, scans, "
        "scores and reports it. `survey COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"survey {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        command = import_module(module)
        sp = sub.add_parser(name, help=help_text, description=command.__doc__)
        command.configure(sp)
        sp.set_defaults(_run=command.run, _module=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    from survey.interrupts import INTERRUPTED, ctrl_c_deferred, interrupted

    words = sys.argv[1:] if argv is None else argv
    try:
        with ctrl_c_deferred():     # a Ctrl-C never leaves an import half done
            parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
            args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        undecodable = _not_utf8(args)
        if undecodable:
            print(f"survey {args.command}: {undecodable}", file=sys.stderr)
            return 2
        status = args._run(args)
        if argv is None and getattr(args._module, "EXIT_AT_ONCE", False):
            _late_ctrl_c_ignored()
            _exit_at_once(status)
        return status
    except BaseException as exc:
        # A command handles its own Ctrl-C when it has more to say (scan: how to resume);
        # any other ends here in one line, whatever task group wrapped it.
        if interrupted(exc):
            command = (argv if argv is not None else sys.argv[1:])[:1] or ["survey"]
            print(f"\nsurvey {command[0]}: interrupted", file=sys.stderr)
            return INTERRUPTED
        if isinstance(exc, BrokenPipeError):
            # the reader went away (`survey score | head`): what it read was whole
            _quiet_stdout()
            return 0
        raise
    finally:
        if argv is None:        # the program itself, not a caller in its own process
            _late_ctrl_c_ignored()


def _late_ctrl_c_ignored() -> None:
    """The command has ended: a Ctrl-C now would only turn its exit status into -2."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_at_once(status: int) -> None:
    """End the program now, without the interpreter's teardown (module doc): run the exit
    handlers, flush stdout and stderr, ``os._exit``. Returns (the normal exit follows) when
    a thread other than the main one would keep the program alive."""
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()     # what the interpreter's exit runs first: logging, finalizers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass            # a reader gone away (`| head`) or a closed stream: nothing to save
    os._exit(status)


def _not_utf8(args: argparse.Namespace) -> str | None:
    """Why an argument cannot be used: a name whose bytes are not UTF-8 (None: all are).

    Python keeps such bytes as surrogates (PEP 383), but pyarrow, which reads and writes
    every dataset, takes UTF-8 paths only: refused here in one line rather than failing
    at the end of a scan.
    """
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if item is None or callable(item) or isinstance(item, (bool, int, float)):
                continue
            text = str(item)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(text).decode("utf-8", "backslashreplace")
                option = name if name in ("input", "scan", "scan_dir") else \
                    "--" + name.replace("_", "-")
                return (f"{option} {shown}: the name is not UTF-8 (the dataset's Parquet "
                        "library takes UTF-8 paths only); rename it")
    return None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
