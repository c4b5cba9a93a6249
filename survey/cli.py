"""The `survey` command: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``configure(parser)`` (add
its options) and ``run(args) -> int`` (the exit status), so this file stays a
table and a subcommand's imports cost nothing until it is used.
"""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    from survey import __version__

    parser = argparse.ArgumentParser(
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
