"""net/smtp.py: one dialogue against every server behaviour of a testbed world.

The expected status of each server comes from the testbed's truth (how the
server was built), so a misunderstanding shared by scanner and parser shows.
"""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from survey.certs import TrustStore, evaluate
from survey.net.guard import DestinationPolicy
from survey.net.smtp import SmtpProbe, Timeouts, probe_starttls
from survey.testbed.generator import SCALES, generate, load_profile, server_traits
from survey.testbed.listen import ConnectionLog
from survey.testbed.model import REALISTIC_ONLY_BEHAVIOURS, SMTP_BEHAVIOURS
from survey.testbed.smtp_server import serve_smtp
from survey.testbed.truth import host_truth

TESTBED = DestinationPolicy("testbed")
S = SCALES["fast"].scanner
TIMEOUTS = Timeouts(connect=S.connect_timeout, greeting=S.greeting_timeout,
                    command=S.command_timeout, tls=S.tls_timeout)


def one_server_per_behaviour(spec):
    chosen = {}
    for ip, server in sorted(spec.smtp_servers.items()):
        chosen.setdefault(server.behaviour, ip)
    return chosen


async def probe(spec, ip, port) -> SmtpProbe:
    server = spec.smtp_servers[ip]
    sni = server.tls.names[0] if server.tls and server.tls.names else server.hostname
    with trio.fail_after(S.greeting_timeout * 4 + S.tls_timeout):
        return await probe_starttls(ip, port, policy=TESTBED, ehlo_name="scanner.survey.test", sni=sni,
                                    timeouts=TIMEOUTS)


# the realistic profile's dead addresses: tests/test_testbed_latency.py
@pytest.mark.parametrize("behaviour", sorted(set(SMTP_BEHAVIOURS) - set(REALISTIC_ONLY_BEHAVIOURS)))
async def test_each_behaviour_ends_in_its_true_status(net_smtp, net_world, behaviour):
    port, _ = net_smtp
    ip = one_server_per_behaviour(net_world)[behaviour]   # the world has every behaviour
    truth = host_truth(net_world.smtp_servers[ip], net_world)
    result = await probe(net_world, ip, port)
    if behaviour == "greylist":   # one attempt only: the retry is the scheduler's job
        assert result.status == "smtp_reject_4xx" and result.is_retryable
        return
    assert result.status == truth.status, result.transcript
    assert result.banner == truth.banner
    assert result.ehlo == truth.ehlo
    assert result.starttls_offered == truth.starttls_offered
    assert result.ehlo_tls == truth.ehlo_tls
    if truth.status == "ok":
        assert result.tls_version == truth.tls_version
        if truth.cipher_known:
            assert result.cipher_suite == truth.cipher_suite
        assert result.chain, "the chain is recorded whatever its validity"


async def test_the_chain_verifies_against_the_world_ca(net_smtp, pki, net_world):
    port, _ = net_smtp
    store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
    server = next(s for s in net_world.smtp_servers.values()
                  if s.behaviour == "normal" and s.tls and s.tls.cert_kind == "valid")
    result = await probe(net_world, server.ip, port)
    verdict = evaluate(result.chain, server.tls.names[0], pki.now, store)
    assert verdict.status == "valid", verdict


async def test_the_scanner_never_sends_mail_commands(net_smtp, net_world):
    port, _ = net_smtp
    ip = one_server_per_behaviour(net_world)["normal"]
    result = await probe(net_world, ip, port)
    sent = [line[3:].split()[0] for line in result.transcript if line.startswith("C: ")]
    assert sent == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


async def test_connection_refused_and_blackholed_ports():
    # Nothing listens on this loopback port.
    result = await probe_starttls("127.0.0.1", 9, policy=TESTBED, ehlo_name="x.test", sni=None,
                                  timeouts=TIMEOUTS)
    assert result.status == "connection_refused"


async def test_one_connection_per_probe(net_smtp, net_world):
    port, log = net_smtp
    ip = one_server_per_behaviour(net_world)["normal"]
    await probe(net_world, ip, port)
    assert Counter(r.ip for r in log.records)[ip] == 1


@pytest.mark.parametrize(("mode", "ip"), [("internet", "127.0.0.1"), ("internet", "10.0.0.1"),
                                         ("testbed", "192.0.2.1")])
async def test_a_refused_destination_gets_no_packet(mode, ip):
    # 192.0.2.1 is TEST-NET-1 and 10.0.0.1 private: a packet there would leave loopback.
    result = await probe_starttls(ip, 25, policy=DestinationPolicy(mode), ehlo_name="x.test",
                                  sni=None, timeouts=TIMEOUTS)
    assert result.status == "blocked_by_policy" and result.transcript == []


@pytest.fixture(scope="module")
def anon_world():
    default = load_profile("default")
    return generate(60, seed=5, scale="fast",
                    profile={**default, "own": {**default["own"], "anon_preferred": 0.5}})


@pytest.fixture
async def anon_smtp(nursery, pki, anon_world):
    return await nursery.start(lambda task_status: serve_smtp(
        anon_world, port=0, pki=pki, connlog=ConnectionLog(None), task_status=task_status))


async def test_a_server_preferring_anonymous_suites_still_shows_its_chain(anon_smtp, anon_world):
    # Postfix's default lists keep aNULL; with its own order at TLS 1.0-1.2 it would pick
    # an anonymous suite for a client offering one, and the probe would see no certificate.
    servers = [s for s in anon_world.smtp_servers.values()
               if s.behaviour == "normal" and "pref:anon" in server_traits(s)
               and s.tls.engine == "openssl"]
    assert servers
    for server in servers[:3]:
        truth = host_truth(server, anon_world)
        with trio.fail_after(S.greeting_timeout * 4 + S.tls_timeout):
            result = await probe_starttls(server.ip, anon_smtp, policy=TESTBED,
                                          ehlo_name="scanner.survey.test",
                                          sni=server.tls.names[0], timeouts=TIMEOUTS)
        assert result.status == "ok", result.transcript
        assert "_anon_" not in result.cipher_suite
        assert result.cipher_suite == truth.cipher_suite
        assert result.chain, "the certificate probe offers no aNULL suite"
        assert any("_anon_" in s["name"] for s in truth.cipher_suites)
