"""Per-IP caps, spacing and the global rate (scan/politeness.py), on trio's virtual clock."""

from __future__ import annotations

import pytest
import trio

from survey.scan.politeness import Politeness


async def hold(polite, ip, seconds, log):
    async with polite.slot(ip):
        log.append(("start", ip, trio.current_time()))
        await trio.sleep(seconds)
        log.append(("end", ip, trio.current_time()))


def peak(log, ip):
    current = best = 0
    for event, who, _ in sorted(log, key=lambda e: (e[2], e[0] == "start")):
        if who == ip:
            current += 1 if event == "start" else -1
            best = max(best, current)
    return best


@pytest.mark.parametrize("per_ip", [1, 3])
async def test_the_per_ip_cap_holds(autojump_clock, per_ip):
    polite, log = Politeness(per_ip=per_ip), []
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(hold, polite, "127.0.0.2", 1.0, log)
            nursery.start_soon(hold, polite, "127.0.0.3", 1.0, log)
    assert peak(log, "127.0.0.2") == per_ip and peak(log, "127.0.0.3") == per_ip
    assert polite.connections == 20
    assert polite._addresses == {}     # nothing kept for addresses no longer in use


async def test_spacing_between_connections_to_one_address(autojump_clock):
    polite, log = Politeness(per_ip=1, spacing=2.0), []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, polite, "127.0.0.2", 0.5, log)
    starts = [t for e, _, t in log if e == "start"]
    ends = [t for e, _, t in log if e == "end"]
    assert all(s >= e + 2.0 - 1e-9 for s, e in zip(starts[1:], ends))


async def test_the_global_rate(autojump_clock):
    polite, log = Politeness(per_ip=100, rate=5), []
    async with trio.open_nursery() as nursery:
        for i in range(11):
            nursery.start_soon(hold, polite, f"127.0.1.{i}", 0.0, log)
    starts = sorted(t for e, _, t in log if e == "start")
    assert starts[-1] - starts[0] >= 2.0 - 1e-9     # 10 intervals of 0.2 s


@pytest.mark.parametrize("kwargs", [{"per_ip": 0}, {"spacing": -1}, {"rate": 0}])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Politeness(**kwargs)
