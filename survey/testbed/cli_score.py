"""Compare a scan dataset with a testbed world's ground truth.

Per table and column: how many values agree with the truth (rows joined on the
table's key; missing or extra rows disagree). The disagreeing cells are written
to disagreements.csv (with score.json) under --out (default SCAN_DIR/score).
Exit status 0 when everything agrees, 1 otherwise, 2 when the inputs cannot be
read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan_dir", type=Path, metavar="SCAN_DIR", help="scan directory")
    parser.add_argument("--world", required=True, type=Path, metavar="WORLD",
                        help="world directory or its world.json")
    parser.add_argument("--profile", help="scanner profile whose columns to score "
                        "(default: the scan manifest's, else the truth's)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write disagreements.csv and score.json "
                             "(default: SCAN_DIR/score)")


def run(args: argparse.Namespace) -> int:
    from survey.testbed.score import ScoreError, score, summary, write_report

    try:
        result = score(args.scan_dir, args.world, profile=args.profile)
    except ScoreError as exc:
        print(f"survey score: {exc}", file=sys.stderr)
        return 2
    csv_path, _json_path = write_report(result, args.out or args.scan_dir / "score")
    print(summary(result))
    if result.disagreements:
        print(f"disagreeing cells: {csv_path}")
    return 0 if result.ok else 1
