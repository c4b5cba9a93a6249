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


async def test_spacing_holds_between_one_at_a_time_users(autojump_clock):
    """An enumeration asks one hello after another: nobody waits while one is open, so
    the address's next-free time must outlive its last user (issue 20: Exim saw two
    connections a second under a one-second spacing)."""
    polite, log = Politeness(per_ip=1, spacing=1.0), []
    for _ in range(5):
        await hold(polite, "127.0.0.2", 0.1, log)
    starts = [t for e, _, t in log if e == "start"]
    ends = [t for e, _, t in log if e == "end"]
    assert all(s >= e + 1.0 - 1e-9 for s, e in zip(starts[1:], ends))
    assert starts[-1] - starts[0] >= 4 * 1.1 - 1e-9


async def test_idle_state_is_forgotten_once_its_spacing_has_passed(autojump_clock):
    polite, log = Politeness(per_ip=1, spacing=1.0), []
    for i in range(1000):                   # a thousand addresses, one connection each
        await hold(polite, f"127.0.{i // 250}.{i % 250 + 1}", 0.01, log)
    # only the addresses used within the last second are still known
    assert polite.tracked <= 1.0 / 0.01 + 2
    await trio.sleep(1.0)
    await hold(polite, "127.9.0.1", 0.0, log)
    assert polite.tracked == 1 and len(polite._idle) <= 1
