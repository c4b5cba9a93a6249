"""Build a testbed world and serve it from a child process, for end-to-end tests.

The world runs as `survey world --serve` (its own process, as a user runs it);
the context manager waits for world.json, yields the directory, and stops the
world with SIGTERM however the test ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SURVEY = [sys.executable, "-m", "survey.cli"]
START_TIMEOUT = 60.0


@contextmanager
def served_world(directory: Path, *, domains: int, seed: int, scale: str = "fast",
                 profile: str = "default") -> Iterator[Path]:
    subprocess.run(SURVEY + ["world", "--domains", str(domains), "--seed", str(seed),
                             "--scale", scale, "--profile", profile, "--out", str(directory)],
                   check=True, timeout=120, capture_output=True)
    server = subprocess.Popen(SURVEY + ["world", "--serve", "--any-ports", "--out",
                                        str(directory)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (directory / "world.json").exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, f"the world did not start in {START_TIMEOUT} s"
            time.sleep(0.1)
        yield directory
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
