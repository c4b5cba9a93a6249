"""The `survey` command: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``configure(parser)`` (add
its options) and ``run(args) -> int`` (the exit status), so this file stays a
table and a subcommand's imports cost nothing until it is used.
"""

from __future__ import annotations

import argparse
import os
import sys
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


def build_parser() -> argparse.ArgumentParser:
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
        command = import_module(module)
        sp = sub.add_parser(name, help=help_text, description=command.__doc__)
        command.configure(sp)
        sp.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from survey.interrupts import INTERRUPTED, interrupted

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        undecodable = _not_utf8(args)
        if undecodable:
            print(f"survey {args.command}: {undecodable}", file=sys.stderr)
            return 2
        return args._run(args)
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
