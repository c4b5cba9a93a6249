"""Hostile testbed servers: each yields its truth status, at a bounded cost to both sides.

Servers come from a generated ``default`` world at the fast scale (so their
timings are the generator's, 3x away from the scanner's thresholds), served
in this process. Each is met by

- the scanner's own client (``survey.net.smtp.probe_starttls``,
  ``survey.net.https.fetch_policy``): the status must be the truth's, within
  the bound the behaviour allows (the caps, not a deadline, end the floods),
  with the peak Python memory of the whole process (client and server)
  under ``PEAK_BYTES`` while it runs (tracemalloc);
- a raw socket client: the server sends what model.py says, stops when the
  client hangs up (connection log), and never holds a flood in memory.

The truth is read from how the world was built (``host_truth``,
``_policy_truth``), never from these clients.
"""

from __future__ import annotations

import time
import tracemalloc
from functools import partial

import pyarrow as pa
import pytest
import trio

from survey.certs import TrustStore
from survey.net.guard import DestinationPolicy
from survey.net.https import fetch_policy
from survey.net.smtp import Timeouts, probe_starttls
from survey.store.schema import to_table
from survey.testbed import hostile
from survey.testbed.generator import SCALES, generate
from survey.testbed.https_server import serve_https
from survey.testbed.listen import ConnectionLog
from survey.testbed.smtp_server import serve_smtp
from survey.testbed.truth import EPOCH, _policy_truth, build_truth, host_truth

TESTBED = DestinationPolicy("testbed")
S = SCALES["fast"].scanner
TIMEOUTS = Timeouts(connect=S.connect_timeout, greeting=S.greeting_timeout,
                    command=S.command_timeout, tls=S.tls_timeout)
PEAK_BYTES = 3 * 1024 * 1024
SLACK = 1.0                         # scheduling on a loaded CI machine

HOSTILE = ("endless_banner", "long_line", "garbage", "tls_truncated", "hostile_text",
           "drop_after_starttls", "starttls_500", "tarpit")
# How long a correct client may take: the caps end floods at once, well before any
# deadline (FLOOD_BOUND); only a silent or dribbling server needs the deadline of the step
# it stalls.
FLOOD_BOUND = 0.75 * S.greeting_timeout
BOUND = {"tarpit": S.greeting_timeout + SLACK, "tls_truncated": S.tls_timeout + SLACK}
AT_LEAST = {"tarpit": S.greeting_timeout, "tls_truncated": S.tls_timeout}


@pytest.fixture(scope="module")
def world():
    return generate(1000, seed=0, scale="fast")


def server_for(world, behaviour: str):
    return next(s for ip, s in sorted(world.smtp_servers.items()) if s.behaviour == behaviour
                and (behaviour != "hostile_text" or openssl_tls(s)))


def openssl_tls(server) -> bool:
    """Hostile text reaches the EHLO after TLS only where the TLS itself completes: a
    legacy-only server (tlslite, e.g. RC4 suites alone) fails the handshake by design."""
    return server.tls is not None and server.tls.engine == "openssl"


@pytest.fixture
async def smtp(nursery, pki, world):
    log = ConnectionLog(None)
    port = await nursery.start(partial(serve_smtp, world, port=0, pki=pki, connlog=log))
    return port, log


@pytest.fixture
async def https(nursery, pki, world):
    log = ConnectionLog(None)
    port = await nursery.start(partial(serve_https, world, port=0, pki=pki, connlog=log))
    return port, log


async def ended(log: ConnectionLog, ip: str, timeout: float = 2.0):
    """The log record of the (one) connection to ``ip``, once the server closed it."""
    with trio.fail_after(timeout):
        while not [r for r in log.records if r.ip == ip]:
            await trio.sleep(0.01)
    return next(r for r in log.records if r.ip == ip)


class Measure:
    """Wall time and peak traced memory of a block."""

    def __enter__(self):
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.monotonic() - self.start
        self.ended = time.time()
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- the scanner's client against each hostile SMTP server --------------------------------------

@pytest.mark.parametrize("behaviour", HOSTILE)
async def test_the_scanner_gets_the_truth_within_bounds(smtp, behaviour, world):
    port, log = smtp
    server = server_for(world, behaviour)
    truth = host_truth(server, world)
    with Measure() as m:
        probe = await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name="scanner.test",
                                     sni=server.hostname, timeouts=TIMEOUTS)
    assert probe.status == truth.status, probe.detail
    assert AT_LEAST.get(behaviour, 0) <= m.elapsed < BOUND.get(behaviour, FLOOD_BOUND), m.elapsed
    assert m.peak < PEAK_BYTES, m.peak
    if behaviour not in ("endless_banner", "long_line", "garbage", "tarpit"):
        assert probe.banner == truth.banner
    assert (probe.ehlo, probe.starttls_offered, probe.ehlo_tls) == (
        truth.ehlo, truth.starttls_offered, truth.ehlo_tls)
    record = await ended(log, server.ip)
    assert record.end - m.ended < SLACK, "the server outlived its client"
    print(f"{behaviour}: {probe.status} in {m.elapsed:.3f} s, peak {m.peak / 1024:.0f} KiB")


def test_the_truth_of_the_hostile_servers(world):
    rows = {r["ip"]: r for r in build_truth(world).rows["hosts"]}
    expect = {"endless_banner": "protocol_error", "long_line": "protocol_error",
              "garbage": "protocol_error", "tls_truncated": "tls_handshake_failed",
              "hostile_text": "ok", "drop_after_starttls": "tls_handshake_failed",
              "starttls_500": "starttls_rejected", "tarpit": "read_timeout"}
    for behaviour, status in expect.items():
        for server in world.smtp_servers.values():
            if server.behaviour == behaviour and (behaviour != "hostile_text"
                                                  or openssl_tls(server)):
                assert rows[server.ip]["status"] == status, behaviour
    tls_truncated = server_for(world, "tls_truncated")
    assert rows[tls_truncated.ip]["versions_supported"] is None
    assert rows[server_for(world, "drop_after_starttls").ip]["versions_supported"] == []
    # every timing sits 3x away from the scanner's thresholds
    assert server_for(world, "endless_banner").duration >= 3 * S.greeting_timeout
    assert tls_truncated.duration >= 3 * S.tls_timeout
    assert server_for(world, "long_line").size >= 10 * 1024 * 1024


# --- what the servers send, and what it costs them ------------------------------------------------

async def read_for(stream: trio.abc.ReceiveStream, seconds: float, limit: int
                   ) -> tuple[int, bytes, bool]:
    """Read for ``seconds`` (or ``limit`` bytes); (count, first 4 KiB, saw the end)."""
    count, head = 0, b""
    with trio.move_on_after(seconds):
        while count < limit:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return count, head, True
            if len(head) < 4096:
                head += chunk[:4096 - len(head)]
            count += len(chunk)
    return count, head, False


async def test_long_line_sends_10_mb_without_holding_them(smtp, world):
    port, log = smtp
    server = server_for(world, "long_line")
    stream = await trio.open_tcp_stream(server.ip, port)
    prefix = f"220 {server.hostname} ".encode()
    with Measure() as m:
        count, head, _ = await read_for(stream, 5, len(prefix) + server.size)
    assert count == len(prefix) + server.size and head.startswith(prefix)
    assert b"\n" not in head[len(prefix):]
    assert m.peak < 2 * 1024 * 1024, m.peak
    await stream.aclose()
    record = await ended(log, server.ip)
    assert record.end - m.ended < SLACK + 0.5


async def test_endless_banner_is_continuation_lines_until_the_client_leaves(smtp, world):
    port, log = smtp
    server = server_for(world, "endless_banner")
    stream = await trio.open_tcp_stream(server.ip, port)
    data = b""
    with trio.fail_after(5):
        while len(data) < 1024 * 1024:
            data += await stream.receive_some(65536)
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) > 10000 and all(line.startswith(b"220-") for line in lines)
    await stream.aclose()
    left = time.time()
    record = await ended(log, server.ip)
    assert record.end - left < SLACK


async def test_garbage_is_not_a_reply(smtp, world):
    port, _ = smtp
    server = server_for(world, "garbage")
    stream = await trio.open_tcp_stream(server.ip, port)
    count, head, closed = await read_for(stream, 2, 1 << 20)
    assert closed and count == server.size and head[0] >= 0x80
    assert head == hostile.garbage_bytes(server)[:4096]


async def test_tls_truncated_announces_more_than_it_sends(smtp, world):
    port, log = smtp
    server = server_for(world, "tls_truncated")
    stream = await trio.open_tcp_stream(server.ip, port)
    buffer = b""
    for command in (None, b"EHLO client.test\r\n", b"STARTTLS\r\n"):
        if command:
            await stream.send_all(command)
        with trio.fail_after(2):
            while not (buffer.endswith(b"\r\n") and buffer.split(b"\r\n")[-2][3:4] == b" "):
                buffer += await stream.receive_some(4096)
        last, buffer = buffer, b""
    assert last.startswith(b"220 ")
    await stream.send_all(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")   # a (tiny) ClientHello
    count, head, closed = await read_for(stream, 1.0, 1 << 20)
    assert not closed and count == len(hostile.truncated_record(server))
    assert head[:5] == b"\x16\x03\x03\x40\x00" and count < 5 + 0x4000
    await stream.aclose()
    left = time.time()
    record = await ended(log, server.ip)
    assert record.end - left < SLACK


# --- hostile text is data ----------------------------------------------------------------------

async def test_html_and_escapes_are_stored_exactly_as_sent(smtp, world):
    port, _ = smtp
    server = server_for(world, "hostile_text")
    probe = await probe_starttls(server.ip, port, policy=TESTBED, ehlo_name="scanner.test",
                                 sni=server.hostname, timeouts=TIMEOUTS)
    assert probe.status == "ok"
    assert "<script>" in probe.banner and "\x1b[" in probe.banner and "\x07" in probe.banner
    assert any("\x1b]8;;" in line for line in probe.ehlo_tls)
    row = {"ip": server.ip, "port": port, "status": probe.status, "banner": probe.banner,
           "ehlo_capabilities": probe.ehlo, "ehlo_capabilities_tls": probe.ehlo_tls,
           "probed_at": EPOCH}
    table = to_table("hosts", [row])
    back = pa.Table.from_batches(table.to_batches()).to_pylist()[0]
    assert (back["banner"], back["ehlo_capabilities"], back["ehlo_capabilities_tls"]) == (
        server.greeting.render(), sorted(server.ehlo), sorted(server.ehlo_tls))


# --- the slowloris policy host ----------------------------------------------------------------------

def slowloris_domain(world):
    return next(d for d in world.domains if d.mta_sts.status == "valid"
                and world.policy_hosts.get(d.name) is not None
                and world.policy_hosts[d.name].behaviour == "slow_headers")


async def test_slowloris_policy_host_is_a_fetch_timeout(https, pki, world):
    port, log = https
    domain = slowloris_domain(world)
    host = world.policy_hosts[domain.name]
    status, error, *_ = _policy_truth(domain, host)
    assert (status, error) == ("fetch_error", "timeout")
    store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
    with Measure() as m:
        fetch = await fetch_policy(domain.name, host.ip, port, policy=TESTBED, store=store,
                                   probed_at=pki.now, timeout=S.policy_timeout)
    assert (fetch.status, fetch.error) == (status, error), fetch
    assert S.policy_timeout <= m.elapsed < S.policy_timeout + SLACK
    assert m.peak < PEAK_BYTES
    assert host.duration >= 3 * S.policy_timeout
    record = await ended(log, host.ip)
    assert record.end - m.ended < SLACK


async def test_slowloris_dribbles_a_head_that_never_ends(https, pki, world):
    import ssl

    port, _ = https
    domain = slowloris_domain(world)
    host = world.policy_hosts[domain.name]
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    stream = trio.SSLStream(await trio.open_tcp_stream(host.ip, port), ctx,
                            server_hostname=host.host)
    await stream.send_all(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host.host}\r\n"
                          "\r\n".encode())
    count, head, closed = await read_for(stream, 12 * host.delay, 1 << 20)
    assert not closed and 4 <= count <= 14, count
    assert b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n".startswith(head)
    await stream.aclose()
