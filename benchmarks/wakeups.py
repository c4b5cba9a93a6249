"""What one wake-up of the scanner's event loop costs in CPU (issue 21: why a paced scan
costs more CPU per domain than one that runs flat out).

Theory of operation
-------------------
A scan that is not CPU-bound (Internet politeness: DNS queries and connections
paced, servers answering after round trips) handles its events one at a time:
the process sleeps in ``epoll_wait``, wakes for one answer or one paced query,
runs a few steps and sleeps again. A CPU-bound scan finds many events ready at
each pass of trio's loop and runs their steps back to back. This measures the
CPU (``time.thread_time``: this thread's own, whatever else runs) of ``--events``
wake-ups ``--interval`` seconds apart, five ways:

  * ``time_sleep``, ``epoll_poll``: the kernel's part (sleep, switch, wake);
  * ``trio_sleep``: a trio task's ``trio.sleep`` (a timer: a cancel scope expires);
  * ``trio_io_wake``: a trio task woken by a datagram another thread sends (how a
    DNS answer or a server's reply wakes the scan);
  * ``trio_pass_hot``: ``trio.sleep(0)`` back to back, a pass of the loop with no
    sleep between (what a step costs when the process runs flat out);

and the same unit of the scan's work (dnspython reading a four-record MX
answer) run back to back (``work_hot``) and each right after a ``time.sleep``
of ``--interval`` (``work_after_sleep``, the sleep's own CPU subtracted): what
ran while the process slept evicted its code and data from the caches, so the
work after a wake-up costs more than the same work run flat out. No target: it
explains why a paced scan costs more CPU per domain (benchmarks/README.md).

    python benchmarks/wakeups.py [--events 1000] [--interval 0.005] [--rounds 2]
"""

from __future__ import annotations

import argparse
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def cpu_us_per_event(way, events: int, interval: float) -> float:
    started = time.thread_time()
    way(events, interval)
    return 1e6 * (time.thread_time() - started) / events


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True,
                          text=True).stdout.strip()


def time_sleep(events: int, interval: float) -> None:
    for _ in range(events):
        time.sleep(interval)


def epoll_poll(events: int, interval: float) -> None:
    with select.epoll() as poller:
        for _ in range(events):
            poller.poll(interval)


def trio_sleep(events: int, interval: float) -> None:
    async def main() -> None:
        for _ in range(events):
            await trio.sleep(interval)
    trio.run(main)


def trio_pass_hot(events: int, interval: float) -> None:
    async def main() -> None:
        for _ in range(events):
            await trio.sleep(0)
    trio.run(main)


def trio_io_wake(events: int, interval: float) -> None:
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setblocking(False)

    def send() -> None:
        for _ in range(events):
            time.sleep(interval)
            sender.send(b"x")

    async def main() -> None:
        for _ in range(events):
            while True:
                try:
                    receiver.recv(16)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(receiver)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        trio.run(main)
    finally:
        thread.join()
        receiver.close()
        sender.close()


def mx_answer() -> bytes:
    import dns.message
    import dns.rrset

    query = dns.message.make_query("example.test.", "MX", want_dnssec=True)
    response = dns.message.make_response(query)
    for i in range(4):
        response.answer.append(dns.rrset.from_text("example.test.", 300, "IN", "MX",
                                                   f"{10 * i} mx{i}.example.test."))
    return response.to_wire()


def work(wire: bytes) -> list[str]:
    import dns.message

    message = dns.message.from_wire(wire)
    return [str(record.exchange) for rrset in message.answer for record in rrset]


def work_hot(events: int, interval: float) -> None:
    wire = mx_answer()
    for _ in range(events):
        work(wire)


def work_after_sleep(events: int, interval: float) -> None:
    wire = mx_answer()
    for _ in range(events):
        time.sleep(interval)
        work(wire)


WAYS = {"time_sleep": time_sleep, "epoll_poll": epoll_poll, "trio_sleep": trio_sleep,
        "trio_io_wake": trio_io_wake, "trio_pass_hot": trio_pass_hot,
        "work_hot": work_hot, "work_after_sleep": work_after_sleep}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    before = uptime()
    rounds: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(args.rounds):
        for name, way in WAYS.items():
            rounds[name].append(round(cpu_us_per_event(way, args.events, args.interval), 1))
    medians = {name: c.median(v) for name, v in rounds.items()}
    # the work's own CPU after a sleep: less the sleep's (time_sleep, the same interval)
    medians["work_after_sleep"] -= medians["time_sleep"]
    c.log(", ".join(f"{name} {v:.0f} us" for name, v in medians.items()))
    c.emit("wakeups", settings={"events": args.events, "interval_s": args.interval,
                                "rounds": args.rounds},
           uptime_before=before, uptime_after=uptime(),
           cpu_us_per_event=medians,
           cold_work_over_hot=medians["work_after_sleep"] / medians["work_hot"],
           rounds_cpu_us=rounds, targets={})
    return 0


if __name__ == "__main__":
    sys.exit(main())
