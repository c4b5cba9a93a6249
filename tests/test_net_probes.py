"""net/probes.py: one hello probe = the SMTP preamble, a hand-built ClientHello, the answer.

Against real servers on loopback only: the testbed's SMTP world (OpenSSL
behind STARTTLS), tlslite-ng behind a small STARTTLS front (SSLv3, RC4), and
small raw servers that answer the hello badly (truncated records, floods,
plaintext, silence). What each server does is how it was built, never what
our parser says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from survey.net.guard import DestinationPolicy
from survey.net.probes import MAX_ANSWER_BYTES, hello_probe
from survey.net.smtp import Timeouts, probe_starttls
from survey.net.transport import drain
from survey.proto import ciphers
from survey.proto.enumerate import Chosen, Failed, Offer, Refused
from survey.proto.tlshello import HelloSpec, ServerHello, build_client_hello
from survey.testbed.generator import SCALES
from tests.tlsservers import Certs, TlsliteServer

TESTBED = DestinationPolicy("testbed")
S = SCALES["fast"].scanner
TIMEOUTS = Timeouts(connect=S.connect_timeout, greeting=S.greeting_timeout,
                    command=S.command_timeout, tls=S.tls_timeout)
SHORT = Timeouts(connect=1.0, greeting=1.0, command=1.0, tls=0.5)
EHLO = "scanner.survey.test"


def offer(version: str, suites=None) -> Offer:
    return Offer(version, tuple(suites or ciphers.scan_candidates(version)))


def hello(o: Offer, sni: str | None = "mx.example.test") -> bytes:
    return build_client_hello(HelloSpec(o.version, o.suites, server_name=sni))


def server_with(spec, *, versions: tuple[str, ...], behaviour: str = "normal"):
    return next(s for _, s in sorted(spec.smtp_servers.items())
                if s.behaviour == behaviour and s.tls is not None and s.tls.engine == "openssl"
                and s.tls.versions == versions)


def first(spec, behaviour: str):
    return next(s for _, s in sorted(spec.smtp_servers.items()) if s.behaviour == behaviour)


# -- the testbed's OpenSSL servers behind STARTTLS -----------------------------------------

async def test_a_supported_version_gets_a_server_hello_for_a_suite_we_offered(net_smtp, net_world):
    port, _ = net_smtp
    server = server_with(net_world, versions=("TLSv1.2", "TLSv1.3"))
    for version in ("TLSv1.2", "TLSv1.3"):
        o = offer(version)
        answer = await hello_probe(server.ip, port, hello(o), policy=TESTBED, ehlo_name=EHLO,
                                   timeouts=TIMEOUTS)
        assert answer.sent and answer.spoke_tls and answer.transport is None
        assert isinstance(answer.events[-1], ServerHello)
        assert answer.events[-1].version == version
        outcome = answer.outcome(o)
        assert isinstance(outcome, Chosen) and outcome.suite in o.suites


async def test_an_unsupported_version_is_a_refusal(net_smtp, net_world):
    port, _ = net_smtp
    server = server_with(net_world, versions=("TLSv1.2", "TLSv1.3"))
    for version in ("SSLv3", "TLSv1.0", "TLSv1.1"):
        o = offer(version)
        answer = await hello_probe(server.ip, port, hello(o), policy=TESTBED, ehlo_name=EHLO,
                                   timeouts=TIMEOUTS)
        assert isinstance(answer.outcome(o), Refused), answer


async def test_a_lower_maximum_answers_with_its_own_version(net_smtp, net_world):
    # RFC 5246 E.1: a TLS 1.1 server answers a TLS 1.2 hello with a TLS 1.1 ServerHello.
    port, _ = net_smtp
    server = server_with(net_world, versions=("TLSv1.1",))
    o = offer("TLSv1.2")
    answer = await hello_probe(server.ip, port, hello(o), policy=TESTBED, ehlo_name=EHLO,
                               timeouts=TIMEOUTS)
    assert answer.outcome(o) == Refused("version:TLSv1.1")


async def test_one_connection_per_probe_over_for_the_server_before_the_probe_returns(net_smtp,
                                                                                   net_world):
    # The probe half-closes and waits for the server's close: the world logs a connection
    # when its handler has finished, so the record is there the moment the probe returns.
    port, log = net_smtp
    for versions, version in [(("TLSv1.2", "TLSv1.3"), "TLSv1.2"),
                              (("TLSv1.2", "TLSv1.3"), "TLSv1.3"),
                              (("TLSv1.2", "TLSv1.3"), "SSLv3")]:
        server = server_with(net_world, versions=versions)
        before = Counter(r.ip for r in log.records)[server.ip]
        await hello_probe(server.ip, port, hello(offer(version)), policy=TESTBED,
                          ehlo_name=EHLO, timeouts=TIMEOUTS)
        assert Counter(r.ip for r in log.records)[server.ip] == before + 1


async def test_smtp_refusals_come_back_as_the_preamble_status(net_smtp, net_world):
    port, _ = net_smtp
    for behaviour, status in [("banner_421_rate_limit", "rate_limited"),
                              ("banner_554", "smtp_reject_5xx"),
                              ("no_starttls", "no_starttls"),
                              ("starttls_454", "starttls_rejected")]:
        answer = await hello_probe(first(net_world, behaviour).ip, port, hello(offer("TLSv1.2")),
                                   policy=TESTBED, ehlo_name=EHLO, timeouts=TIMEOUTS)
        assert answer.status == status and not answer.sent and not answer.events


async def test_a_drop_after_220_is_a_close_without_tls(net_smtp, net_world):
    port, _ = net_smtp
    o = offer("TLSv1.2")
    answer = await hello_probe(first(net_world, "drop_after_starttls").ip, port, hello(o),
                               policy=TESTBED,
                               ehlo_name=EHLO, timeouts=TIMEOUTS)
    assert answer.sent and not answer.spoke_tls and answer.transport in ("closed", "reset")
    assert isinstance(answer.outcome(o), Refused)


@pytest.mark.parametrize(("mode", "ip"), [("internet", "127.0.0.1"), ("testbed", "192.0.2.1")])
async def test_a_refused_destination_gets_no_packet(mode, ip):
    answer = await hello_probe(ip, 25, hello(offer("TLSv1.2")), policy=DestinationPolicy(mode),
                               ehlo_name=EHLO, timeouts=SHORT)
    assert answer.status == "blocked_by_policy" and not answer.sent


# -- tlslite-ng behind a STARTTLS front: what OpenSSL cannot serve ------------------------

async def _line(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        data = await stream.receive_some(1024)
        if not data:
            raise trio.BrokenResourceError
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


async def starttls_front(nursery: trio.Nursery,
                         after_220: Callable[[trio.SocketStream], Awaitable[None]]) -> int:
    """A STARTTLS server on 127.0.0.1 whose side after the 220 is ``after_220(stream)``."""

    async def handler(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        try:
            await stream.send_all(b"220 front.test ESMTP\r\n")
            await _line(stream, buffer)
            await stream.send_all(b"250-front.test\r\n250 STARTTLS\r\n")
            await _line(stream, buffer)
            await stream.send_all(b"220 2.0.0 Ready to start TLS\r\n")
            await after_220(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def proxy_to(port: int):
    """After the 220, relay both ways to a bare TLS server on ``port``."""

    async def relay(stream: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", port)

        async def pump(src, dst):
            try:
                while data := await src.receive_some(65536):
                    await dst.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(dst)

        async with upstream, trio.open_nursery() as n:
            n.start_soon(pump, stream, upstream)
            n.start_soon(pump, upstream, stream)

    return relay


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


async def test_sslv3_and_rc4_through_the_smtp_preamble(nursery, certs):
    rc4 = ["rc4"]
    with TlsliteServer(certs, min_version=(3, 0), max_version=(3, 0), cipher_names=rc4) as tls:
        port = await starttls_front(nursery, proxy_to(tls.port))
        o = offer("SSLv3")
        answer = await hello_probe("127.0.0.1", port, hello(o), policy=TESTBED,
                                   ehlo_name=EHLO, timeouts=TIMEOUTS)
        outcome = answer.outcome(o)
        assert isinstance(outcome, Chosen), answer
        assert "RC4" in ciphers.name_for_code(outcome.suite)
        assert answer.events[0].version == "SSLv3"
        # the same server refuses TLS 1.2 (it answers with its own version or an alert)
        o12 = offer("TLSv1.2")
        answer = await hello_probe("127.0.0.1", port, hello(o12), policy=TESTBED,
                                   ehlo_name=EHLO, timeouts=TIMEOUTS)
        assert isinstance(answer.outcome(o12), Refused), answer


# -- servers that answer the hello badly: each ends within its bound -----------------------

def after_hello(reply: bytes, *, then_wait: float = 0.0, repeat: int = 1):
    async def act(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        for _ in range(repeat):
            await stream.send_all(reply)
        await trio.sleep(then_wait)

    return act


ALERT_HANDSHAKE_FAILURE = bytes.fromhex("15030300020228")      # fatal handshake_failure
WARNING_ALERT = bytes.fromhex("15030300020170")            # unrecognized_name, warning
TRUNCATED_RECORD = bytes.fromhex("1603034000") + bytes(100)  # announces 16384, sends 100


@pytest.mark.parametrize(("name", "act", "expect"), [
    ("fatal alert", after_hello(ALERT_HANDSHAKE_FAILURE), Refused("handshake_failure")),
    ("plaintext reply", after_hello(b"500 5.5.1 what?\r\n"), Failed("plaintext")),
    ("close", after_hello(b""), Refused("closed")),
    ("truncated record, then silence", after_hello(TRUNCATED_RECORD, then_wait=30),
     Failed("timeout")),
    ("silence", after_hello(b"", then_wait=30), Failed("timeout")),
    ("endless warning alerts", after_hello(WARNING_ALERT * 1000, repeat=100, then_wait=30),
     Failed("overflow")),
])
async def test_bad_answers_end_in_an_outcome_within_the_deadline(nursery, name, act, expect):
    port = await starttls_front(nursery, act)
    o = offer("TLSv1.2")
    started = trio.current_time()
    with trio.fail_after(SHORT.tls + 3):
        answer = await hello_probe("127.0.0.1", port, hello(o), policy=TESTBED,
                                   ehlo_name=EHLO, timeouts=SHORT)
    assert answer.outcome(o) == expect, answer
    assert answer.received <= MAX_ANSWER_BYTES
    assert trio.current_time() - started < SHORT.tls + 2


async def test_the_shared_preamble_is_the_starttls_probes_dialogue(net_smtp, net_world):
    # the same server through probe_starttls and through a hello probe: the same statuses
    port, _ = net_smtp
    for behaviour in ("normal", "starttls_500", "ehlo_4xx", "banner_421"):
        server = first(net_world, behaviour)
        full = await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name=EHLO,
                                    sni=None, timeouts=TIMEOUTS)
        answer = await hello_probe(server.ip, port, hello(offer("TLSv1.3")), policy=TESTBED,
                                   ehlo_name=EHLO, timeouts=TIMEOUTS)
        assert answer.status == ("ok" if full.status == "ok" else full.status)


async def test_a_starttls_probe_is_over_for_the_server_before_it_returns(net_smtp, net_world):
    # after QUIT's 221 the client waits for the server's close (RFC 5321 §4.1.1.10), so a
    # hello right after it never meets a server still counting the starttls connection
    port, log = net_smtp
    for behaviour in ("normal", "no_starttls", "starttls_500"):
        server = first(net_world, behaviour)
        before = Counter(r.ip for r in log.records)[server.ip]
        await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name=EHLO, sni=None,
                             timeouts=TIMEOUTS)
        assert Counter(r.ip for r in log.records)[server.ip] == before + 1, behaviour


async def test_drain_waits_for_the_hang_up_and_stops_reading_a_flood():
    # net/transport.drain: the one bounded drain (hello hang-up, QUIT, the testbed's sink)
    ours, theirs = trio.socket.socketpair()
    stream, peer = trio.SocketStream(ours), trio.SocketStream(theirs)
    await peer.send_all(b"x" * 100)
    await peer.aclose()
    with trio.fail_after(5):
        assert await drain(stream, 1000) is True
    await stream.aclose()

    ours, theirs = trio.socket.socketpair()
    stream, peer = trio.SocketStream(ours), trio.SocketStream(theirs)
    await peer.send_all(b"x" * 5000)   # more than the limit, and the peer stays
    with trio.fail_after(5):
        assert await drain(stream, 1000, 512) is False
    await stream.aclose()
    await peer.aclose()
