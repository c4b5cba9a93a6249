"""Progress of a long scan: a live line on a terminal, periodic plain lines otherwise.

Shows domains done of total, servers probed, the rate, an ETA and counts by
status. It prints only our own numbers and status words, never server text,
so nothing a server says can reach the terminal through it.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

import trio


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.live = enabled and self.stream.isatty()
        self.interval = interval or (0.5 if self.live else 30.0)
        self.total = 0
        self.already = 0
        self.done = 0
        self.servers = 0
        self.domain_statuses: Counter[str] = Counter()
        self.server_statuses: Counter[str] = Counter()
        self._started = 0.0

    def start(self, *, total: int, already: int = 0) -> None:
        self.total, self.already = total, already
        self._started = trio.current_time()
        if self.enabled and already:
            print(f"resuming: {already} domains already done", file=self.stream)

    def domain(self, status: str) -> None:
        self.done += 1
        self.domain_statuses[status] += 1

    def server(self, status: str) -> None:
        self.servers += 1
        self.server_statuses[status] += 1

    def line(self) -> str:
        elapsed = max(trio.current_time() - self._started, 1e-9)
        rate = self.done / elapsed
        todo = max(self.total - self.already - self.done, 0)
        eta = _duration(todo / rate) if rate > 0 else "?"
        finished = self.already + self.done
        share = 100 * finished / self.total if self.total else 100.0
        statuses = " ".join(f"{k} {v}" for k, v in self.server_statuses.most_common(5))
        return (f"domains {finished}/{self.total} ({share:.0f}%)  servers {self.servers}  "
                f"{rate:.1f}/s  ETA {eta}" + (f"  | {statuses}" if statuses else ""))

    async def run(self) -> None:
        """Print until cancelled."""
        if not self.enabled:
            await trio.sleep_forever()
        while True:
            await trio.sleep(self.interval)
            self._print()

    def _print(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self, counts: dict[str, int]) -> None:
        if not self.enabled:
            return
        self._print()
        if self.live:
            self.stream.write("\n")
        rows = ", ".join(f"{v} {k}" for k, v in counts.items())
        elapsed = _duration(trio.current_time() - self._started)
        self.stream.write(f"done in {elapsed}: {rows}\n")
        self.stream.flush()
