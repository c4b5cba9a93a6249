"""net/smtp.py "Turns": after its greeting a connection waits for a turn, and the deadlines
after the greeting start with the turn (a deadline times the server, not the scanner's queue).

Real testbed servers on loopback (the fast-scale ``net_world`` of tests/conftest.py).
"""

from __future__ import annotations

import trio

from survey.net.guard import DestinationPolicy
from survey.net.probes import hello_probe
from survey.net.smtp import Timeouts, probe_starttls, starttls_preamble
from survey.proto import ciphers
from survey.proto.tlshello import HelloSpec, build_client_hello

TESTBED = DestinationPolicy("testbed")
# the fast scale's greeting deadline (its slow banners pause 0.3 s), short command and
# handshake deadlines: a turn held longer than them must not count against them
TIMEOUTS = Timeouts(connect=1.0, greeting=1.2, command=0.5, tls=0.5)
HELD = 1.5   # seconds another conversation holds the only turn: three command deadlines


def servers(world, behaviour: str) -> list:
    return [s for _, s in sorted(world.smtp_servers.items()) if s.behaviour == behaviour
            and (s.tls is None or s.tls.engine == "openssl")]


async def probe(port: int, server, turns: trio.Semaphore):
    return await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name="scanner.survey.test",
                                sni=server.tls.names[0] if server.tls else server.hostname,
                                timeouts=TIMEOUTS, turns=turns)


async def hold(turns: trio.Semaphore, seconds: float, task_status=trio.TASK_STATUS_IGNORED):
    async with turns:
        task_status.started()
        await trio.sleep(seconds)


async def test_the_wait_for_a_turn_is_not_counted_against_the_deadlines(net_smtp, net_world,
                                                                        nursery):
    port, _ = net_smtp
    server = servers(net_world, "normal")[0]
    turns = trio.Semaphore(1)
    await nursery.start(hold, turns, HELD)
    started = trio.current_time()
    with trio.fail_after(HELD + 10):
        result = await probe(port, server, turns)
    assert trio.current_time() - started >= HELD   # it did wait: three deadlines' worth
    assert result.status == "ok", result.transcript
    assert result.tls_version and result.chain
    assert turns.value == 1                        # handed back at the end


async def test_the_greeting_is_awaited_without_a_turn(net_smtp, net_world):
    # slow banners pause before greeting: with 2 turns, 8 connections still wait for their
    # greetings together, and every one ends well
    port, log = net_smtp
    slow = servers(net_world, "slow_banner")
    assert slow, "the world has slow banners"
    turns = trio.Semaphore(2)
    results = []

    async def one(server) -> None:
        results.append(await probe(port, server, turns))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, slow[i % len(slow)])
    assert [r.status for r in results] == ["ok"] * 8, [r.transcript for r in results]
    records = [r for r in log.records if r.service == "smtp"]
    assert len(records) == 8
    # every connection was open while the others were: all opened before the first ended
    assert max(r.start for r in records) < min(r.end for r in records)


async def test_a_hello_probe_holds_its_turn_until_its_block_ends(net_smtp, net_world):
    port, _ = net_smtp
    server = servers(net_world, "normal")[0]
    turns = trio.Semaphore(1)
    with trio.fail_after(10):
        async with starttls_preamble(server.ip, port, policy=TESTBED, ehlo_name="x.test",
                                     timeouts=TIMEOUTS, turns=turns) as upgrade:
            assert upgrade.stream is not None, upgrade.probe.transcript
            assert turns.value == 0
        assert turns.value == 1
        # hello_probe passes its turns on: the only turn held elsewhere, it waits
        hello = build_client_hello(HelloSpec("TLSv1.2", tuple(ciphers.scan_candidates("TLSv1.2")),
                                             server_name=server.tls.names[0]))
        async with trio.open_nursery() as nursery:
            await nursery.start(hold, turns, HELD)
            started = trio.current_time()
            answer = await hello_probe(server.ip, port, hello, policy=TESTBED, ehlo_name="x.test",
                                       timeouts=TIMEOUTS, turns=turns)
        assert trio.current_time() - started >= HELD
        assert answer.status == "ok" and answer.sent, answer


async def test_a_refused_greeting_takes_no_turn(net_smtp, net_world):
    port, _ = net_smtp
    server = servers(net_world, "banner_554")[0]
    turns = trio.Semaphore(1)
    async with turns:           # the only turn is taken: a refusal at the greeting still ends
        with trio.fail_after(5):
            result = await probe(port, server, turns)
    assert result.status == "smtp_reject_5xx"
