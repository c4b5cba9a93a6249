"""scan/plans.py and scan/enumeration.py: which hellos, how many, and what a server costs.

The planner is pure and is checked against server models (a server that
enforces its own order, one that follows the client's) with hypothesis:
whatever the supported suites and the server's order, it finds exactly
them, the right preference and order, within n + 1 hellos per version when
the starttls connection's hint is there and n + 2 without. The enumerator is
checked against real servers on loopback: the testbed's SMTP world, a server
that starts answering 421 in the middle, a budget, a server that never
finishes a TLS record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.net.guard import DestinationPolicy
from survey.net.smtp import Timeouts, probe_starttls
from survey.proto import ciphers
from survey.proto.enumerate import Chosen, Offer, Refused, SuiteEnumeration, run
from survey.scan import plans
from survey.scan.access import ServerAccess
from survey.scan.enumeration import Enumerator
from survey.scan.politeness import Politeness
from survey.testbed.generator import SCALES
from survey.testbed.listen import ConnectionLog, max_concurrency, serve_tcp
from survey.testbed.smtp_server import SmtpWorld
from survey.testbed.truth import host_truth

TESTBED = DestinationPolicy("testbed")
S = SCALES["fast"].scanner
TIMEOUTS = Timeouts(connect=S.connect_timeout, greeting=S.greeting_timeout,
                    command=S.command_timeout, tls=S.tls_timeout)
TLS12 = plans._candidates("TLSv1.2")


# -- the planner against server models -------------------------------------------------------

def model(supported: list[int], server_order: bool):
    """A server at one version: ``supported`` in its own order."""

    def ask(offer: Offer):
        if not supported:
            return Refused("handshake_failure")
        if server_order:
            pick = next((s for s in supported if s in offer.suites), None)
        else:
            pick = next((s for s in offer.suites if s in supported), None)
        return Chosen(pick) if pick is not None else Refused("handshake_failure")

    return ask


suites = st.lists(st.sampled_from(TLS12[:40] + TLS12[-20:]), unique=True, max_size=7)


def check(result, supported: list[int], server_order: bool) -> None:
    assert set(result.suites) == set(supported)
    assert result.complete
    if len(supported) >= 2:
        assert result.preference == ("server" if server_order else "client")
        if server_order:
            assert list(result.suites) == supported


@settings(max_examples=300, deadline=None)
@given(supported=suites, server_order=st.booleans())
def test_without_a_hint_every_suite_and_the_preference_within_n_plus_2(supported,
                                                                       server_order):
    machine = plans.GuidedEnumeration("TLSv1.2", plans.candidate_order("TLSv1.2"),
                                      chunk_size=len(TLS12))
    run(machine, model(supported, server_order))
    check(machine.result(), supported, server_order)
    assert machine.hellos <= len(supported) + 2


@settings(max_examples=300, deadline=None)
@given(supported=suites.filter(bool), server_order=st.booleans(), data=st.data())
def test_with_the_starttls_hint_n_plus_1(supported, server_order, data):
    # the starttls connection: a server-order server chose its favourite, a client-order
    # server the first of OpenSSL's list it supports (any supported suite, as far as we know)
    hint = supported[0] if server_order else data.draw(st.sampled_from(supported))
    machine = plans.GuidedEnumeration("TLSv1.2", plans.candidate_order("TLSv1.2", hint=hint),
                                      hint=hint, chunk_size=len(TLS12))
    run(machine, model(supported, server_order))
    check(machine.result(), supported, server_order)
    assert machine.hellos <= len(supported) + 1


@settings(max_examples=200, deadline=None)
@given(supported=suites, server_order=st.booleans())
def test_a_server_order_learnt_at_another_version_settles_the_preference(supported,
                                                                          server_order):
    # what the server enforced at TLS 1.2 leads the TLS 1.1 offer, reversed
    known = tuple(supported) if server_order else ()
    prior = "server" if server_order else "client"
    v11 = [s for s in supported if ciphers.by_code(s).offerable_in("TLSv1.1")]
    machine = plans.GuidedEnumeration("TLSv1.1", plans.candidate_order("TLSv1.1", known=known),
                                      prior=prior, chunk_size=200)
    run(machine, model(v11, server_order))
    check(machine.result(), v11, server_order)
    assert machine.hellos <= len(v11) + 1


@settings(max_examples=100, deadline=None)
@given(supported=suites, server_order=st.booleans())
def test_in_chunks_of_128_the_plain_machine_is_matched(supported, server_order):
    guided = plans.GuidedEnumeration("TLSv1.2", plans.candidate_order("TLSv1.2"))
    plain = SuiteEnumeration("TLSv1.2", plans.candidate_order("TLSv1.2"))
    run(guided, model(supported, server_order))
    run(plain, model(supported, server_order))
    check(guided.result(), supported, server_order)
    assert guided.hellos <= plain.hellos + 1


def test_a_version_refusal_is_one_hello():
    machine = plans.GuidedEnumeration("TLSv1.2", TLS12, chunk_size=len(TLS12))
    run(machine, lambda offer: Refused("protocol_version"))
    assert machine.hellos == 1 and machine.result().supported is False


def test_the_hint_goes_last_and_a_known_order_leads_reversed():
    hint = TLS12[0]
    assert plans.candidate_order("TLSv1.2", hint=hint)[-1] == hint
    known = (TLS12[5], TLS12[1], TLS12[9])
    assert plans.candidate_order("TLSv1.2", known=known)[:3] == known[::-1]
    assert sorted(plans.candidate_order("TLSv1.2", known=known)) == sorted(TLS12)


def test_only_an_odd_refusal_of_a_long_offer_asks_for_chunks():
    assert plans.needs_chunks(Refused("handshake_failure"), 235, 235)
    assert plans.needs_chunks(Refused("closed"), 235, 235)
    assert not plans.needs_chunks(Refused("protocol_version"), 235, 235)
    assert not plans.needs_chunks(Refused("version:TLSv1.1"), 235, 235)
    assert not plans.needs_chunks(Chosen(0xC02B), 235, 235)
    assert not plans.needs_chunks(Refused("handshake_failure"), 96, 96)
    assert not plans.needs_chunks(Refused("handshake_failure"), 235, 128)


def test_columns_follow_the_truth_conventions():
    one = SuiteEnumeration("TLSv1.0", [0xC009])
    run(one, lambda offer: Chosen(0xC009) if 0xC009 in offer.suites else Refused("closed"))
    two = plans.GuidedEnumeration("TLSv1.2", TLS12, chunk_size=len(TLS12))
    run(two, model([0xC02B, 0xC02C], True))
    results = [two.result(), one.result()]
    assert plans.versions_supported(results) == ["TLSv1.0", "TLSv1.2"]
    assert plans.server_preference(results) == [{"version": "TLSv1.0", "enforced": None},
                                                {"version": "TLSv1.2", "enforced": True}]
    assert plans.cipher_suites(results) == [
        {"version": "TLSv1.0", "name": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
         "preference_order": None},
        {"version": "TLSv1.2", "name": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
         "preference_order": 1},
        {"version": "TLSv1.2", "name": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
         "preference_order": 2}]


# -- the enumerator against real servers --------------------------------------------------------

class Refusing:
    """The world's SMTP servers, except that connections number ``start`` to ``stop`` to
    one address (counted from 0) get a 421 naming a connection limit, as a server whose
    rate limit trips in the middle of an enumeration."""

    def __init__(self, inner: SmtpWorld, start: int = 10**9, stop: int = 10**9) -> None:
        self.inner, self.start, self.stop = inner, start, stop
        self.seen: dict[str, int] = defaultdict(int)

    async def handle(self, conn) -> None:
        n = self.seen[conn.ip]
        self.seen[conn.ip] += 1
        if self.start <= n < self.stop:
            await conn.stream.send_all(b"421 4.7.0 Too many connections from your IP, "
                                       b"slow down\r\n")
            return
        await self.inner.handle(conn)


async def serve(nursery, pki, spec, handler_factory=lambda inner: inner):
    log = ConnectionLog(None)
    handler = handler_factory(SmtpWorld(spec, pki))
    port = await nursery.start(lambda task_status: serve_tcp(
        handler.handle, port=0, connlog=log, service="smtp", task_status=task_status))
    return port, log, handler


def enumerator(port, profile="ciphers", **kw) -> Enumerator:
    settings = {"retries": 2, "retry_delay": 0.05} | kw
    budget = settings.pop("budget", 200)
    access = ServerAccess(port=port, policy=TESTBED, politeness=Politeness(),
                          ehlo_name="scanner.survey.test", timeouts=TIMEOUTS, **settings)
    return Enumerator(profile=profile, access=access, budget=budget)


def openssl(spec, versions, server_preference=None, behaviour="normal"):
    return next(s for _, s in sorted(spec.smtp_servers.items())
                if s.behaviour == behaviour and s.tls is not None
                and s.tls.engine == "openssl" and s.tls.versions == versions
                and len(s.tls.ciphers.split(":")) >= 2
                and server_preference in (None, s.tls.server_preference))


def canon(rows):
    return None if rows is None else sorted(json.dumps(r, sort_keys=True) for r in rows)


def pairs(rows) -> set[tuple[str, str]]:
    """(version, suite) pairs: a partial enumeration may not know the order yet."""
    return {(r["version"], r["name"]) for r in rows or ()}


async def base_probe(port, server):
    sni = server.tls.names[0] if server.tls and server.tls.names else server.hostname
    return await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name="x.test", sni=sni,
                                timeouts=TIMEOUTS)


def agrees(result, server, spec) -> None:
    truth = host_truth(server, spec)
    assert result.versions_supported == truth.versions
    assert canon(result.cipher_suites) == canon(truth.cipher_suites)
    assert canon(result.server_preference) == canon(truth.server_preference)


@pytest.mark.parametrize("server_preference", [True, False])
async def test_ciphers_agree_with_the_truth_within_the_bound(nursery, pki, net_world,
                                                            server_preference):
    port, _, _ = await serve(nursery, pki, net_world)
    server = openssl(net_world, ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"), server_preference)
    base = await base_probe(port, server)
    result = await enumerator(port).run(base, 1)
    assert result.probe_status == "ok" and result.backoffs == 0
    agrees(result, server, net_world)
    supported = len(result.cipher_suites)
    assert 1 + result.connections <= supported + len(ciphers.VERSIONS) + 2


async def test_versions_costs_one_hello_per_version_not_known(nursery, pki, net_world):
    port, _, _ = await serve(nursery, pki, net_world)
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"))
    base = await base_probe(port, server)
    result = await enumerator(port, "versions").run(base, 1)
    assert result.probe_status == "ok"
    assert result.versions_supported == ["TLSv1.2", "TLSv1.3"]
    assert result.cipher_suites is None and result.server_preference is None
    assert result.connections == len(ciphers.VERSIONS) - 1   # TLS 1.3 came with starttls


async def test_a_421_in_the_middle_is_waited_out_and_the_enumeration_resumes(nursery, pki,
                                                                             net_world):
    # connections 3 and 4 to each address are refused; the starttls probe was number 0
    port, log, _ = await serve(nursery, pki, net_world, lambda inner: Refusing(inner, 3, 5))
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"), True)
    base = await base_probe(port, server)
    result = await enumerator(port).run(base, 1)
    assert result.probe_status == "ok" and result.backoffs == 2
    agrees(result, server, net_world)
    assert max(max_concurrency([r for r in log.records if r.ip == server.ip]).values()) == 1


async def test_a_server_that_keeps_refusing_gives_partial_never_unsupported(nursery, pki,
                                                                            net_world):
    port, _, _ = await serve(nursery, pki, net_world, lambda inner: Refusing(inner, 4))
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"), True)
    base = await base_probe(port, server)
    result = await enumerator(port).run(base, 1)
    truth = host_truth(server, net_world)
    assert result.probe_status == "partial" and "stopped answering" in result.detail
    assert result.backoffs == 2 and result.connections == 3 + 3
    assert pairs(result.cipher_suites) <= pairs(truth.cipher_suites)
    assert set(result.versions_supported) <= set(truth.versions)
    assert result.cipher_suites, "what was found before the refusals is kept"


async def test_the_budget_cuts_the_enumeration_short_as_partial(nursery, pki, net_world):
    port, _, _ = await serve(nursery, pki, net_world)
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"))
    base = await base_probe(port, server)
    result = await enumerator(port, budget=4).run(base, 1)
    assert result.probe_status == "partial" and "budget" in result.detail
    assert result.connections == 3
    truth = host_truth(server, net_world)
    assert pairs(result.cipher_suites) <= pairs(truth.cipher_suites)


async def test_a_server_without_starttls_is_not_enumerated(nursery, pki, net_world):
    port, _, _ = await serve(nursery, pki, net_world)
    server = next(s for s in net_world.smtp_servers.values() if s.behaviour == "no_starttls")
    base = await base_probe(port, server)
    result = await enumerator(port).run(base, 1)
    assert result.probe_status == "not_run" and result.connections == 0
    assert result.versions_supported is None


async def test_a_drop_after_220_refuses_every_version(nursery, pki, net_world):
    port, _, _ = await serve(nursery, pki, net_world)
    server = next(s for s in net_world.smtp_servers.values()
                  if s.behaviour == "drop_after_starttls")
    base = await base_probe(port, server)
    assert base.status == "tls_handshake_failed"
    result = await enumerator(port).run(base, 1)
    assert result.probe_status == "ok"
    assert result.versions_supported == [] and result.cipher_suites == []
    assert result.connections == len(ciphers.VERSIONS)


async def test_serverhellos_without_any_completed_handshake_are_flagged(nursery, pki, net_world):
    """Debian 12's OpenSMTPD aborts every handshake after its ServerHello: the hellos read
    versions, yet no sender can use them (issue 20). The starttls probe's own handshake is
    the witness: when it failed, the lists are marked as announced, not usable."""
    port, _, _ = await serve(nursery, pki, net_world)
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"))
    base = await base_probe(port, server)
    base.status, base.detail = "tls_handshake_failed", "EOF after ServerHello"
    result = await enumerator(port, "versions").run(base, 1)
    assert result.versions_supported == ["TLSv1.2", "TLSv1.3"]        # what it announces
    assert result.probe_status == "no_handshake"
    assert "no handshake completed" in result.detail and "EOF after ServerHello" in result.detail


async def test_the_starttls_profile_sends_no_hello(nursery, pki, net_world):
    port, _, _ = await serve(nursery, pki, net_world)
    server = openssl(net_world, ("TLSv1.2", "TLSv1.3"))
    base = await base_probe(port, server)
    result = await enumerator(port, "starttls").run(base, 1)
    assert result.probe_status == "not_run" and result.connections == 0


async def truncating_front(nursery) -> int:
    """STARTTLS, 220, then one TLS record header announcing 16384 bytes and 100 of them."""

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await stream.send_all(b"220 trunc.test ESMTP\r\n")
            await stream.receive_some(1024)
            await stream.send_all(b"250-trunc.test\r\n250 STARTTLS\r\n")
            await stream.receive_some(1024)
            await stream.send_all(b"220 go ahead\r\n")
            await stream.receive_some(65536)
            await stream.send_all(bytes.fromhex("1603034000") + bytes(100))
            await trio.sleep(30)
        except trio.BrokenResourceError:
            pass

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_a_record_that_never_completes_fails_the_enumeration_in_bounded_time(nursery):
    port = await truncating_front(nursery)
    short = Timeouts(connect=1.0, greeting=1.0, command=1.0, tls=0.3)
    base = await probe_starttls("127.0.0.1", port, policy=TESTBED, ehlo_name="x.test",
                                sni=None, timeouts=short)
    assert base.status == "tls_handshake_failed"
    started = trio.current_time()
    access = ServerAccess(port=port, policy=TESTBED, politeness=Politeness(),
                          ehlo_name="x.test", timeouts=short, retries=2, retry_delay=0.05)
    result = await Enumerator(profile="ciphers", access=access).run(base, 1)
    assert result.probe_status == "failed" and result.versions_supported is None
    assert result.connections == 3                      # the first hello, retried twice
    assert trio.current_time() - started < 3 * short.tls + 2


def test_no_handshake_only_when_the_server_chose_a_suite_our_probe_speaks():
    from survey.scan.enumeration import probe_could_negotiate
    legacy = [{"version": "TLSv1.2", "name": "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
              {"version": "SSLv3", "name": "TLS_RSA_WITH_AES_128_CBC_SHA"}]
    assert not probe_could_negotiate(legacy)      # OpenSSL here lacks 3DES and SSLv3
    assert probe_could_negotiate(
        legacy + [{"version": "TLSv1.2", "name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}])
    assert probe_could_negotiate([])              # nothing recorded: the rule holds
