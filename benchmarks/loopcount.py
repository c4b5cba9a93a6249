"""Run a ``survey`` command with its event loop counted: passes, sleeps, task steps.

A trio instrument (``trio.abc.Instrument``, added to every ``trio.run`` of the
command) counts the loop's passes (``before_io_wait``), the passes that could
sleep (a timeout above 0: nothing was runnable), the task steps and the tasks
spawned; the command's own CPU and the counts are written as JSON to ``OUT``
when it exits. The hooks cost a few microseconds per step. Used for the
politeness table in benchmarks/README.md:

    python benchmarks/loopcount.py OUT.json scan --world DIR --out SCAN --quiet \\
        --profile starttls --concurrency 200 --dns-rate 200
"""

from __future__ import annotations

import atexit
import json
import sys
import time

import trio


class LoopCount(trio.abc.Instrument):
    def __init__(self) -> None:
        self.passes = 0
        self.waits = 0
        self.steps = 0
        self.spawned = 0

    def before_io_wait(self, timeout: float) -> None:
        self.passes += 1
        self.waits += timeout > 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    counts = LoopCount()
    run = trio.run

    def counted_run(*args, **kwargs):
        kwargs["instruments"] = [*kwargs.get("instruments", ()), counts]
        return run(*args, **kwargs)

    def write() -> None:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump({**vars(counts), "cpu_s": time.process_time()}, fh)

    trio.run = counted_run          # survey's commands call trio.run(...) through the module
    atexit.register(write)          # survey scan ends with os._exit after the exit handlers
    sys.argv = ["survey", *argv]
    from survey.cli import main as survey

    return survey()


if __name__ == "__main__":
    sys.exit(main())
