"""One table of every target from the benchmarks' JSON (what `make bench` prints last).

Reads the JSON objects the scripts printed, one after another (a file or
stdin), and prints a Markdown table: benchmark, target, value, bound, pass;
then how many passed. Text between the objects is skipped, so a captured log
works too. Exit status 0 whatever the targets say: this only reports.

    python benchmarks/summary.py bench-results.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path


def objects(text: str) -> Iterator[dict]:
    """Every top-level JSON object in ``text``, in order."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at >= 0:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and "benchmark" in value:
            yield value
        at = text.find("{", end)


def table(docs: list[dict]) -> str:
    lines = ["| benchmark | target | value | bound | pass |", "|---|---|---|---|---|"]
    passed = total = 0
    for doc in docs:
        for name, t in (doc.get("targets") or {}).items():
            total += 1
            passed += bool(t.get("pass"))
            lines.append(f"| {doc['benchmark']} | {name} | {t.get('value')} | "
                         f"{t.get('target')} | {'PASS' if t.get('pass') else 'FAIL'} |")
    lines.append(f"\n{passed} of {total} targets pass ({len(docs)} benchmarks).")
    return "\n".join(lines)


def main() -> int:
    text = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read()
    print(table(list(objects(text))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
