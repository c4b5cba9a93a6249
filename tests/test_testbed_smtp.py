"""The testbed's TCP listener, connection log and SMTP server, against real clients.

Clients: trio sockets, Python ``ssl`` through ``trio.SSLStream``, and
``openssl s_client -starttls smtp`` in a subprocess. One small hand-built
world with a server per behaviour, certificate kind and TLS version, at fast
timings (delays of tenths of a second).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, replace
from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.testbed.listen import (
    Connection,
    ConnectionLog,
    ConnectionRecord,
    connections_by_ip,
    max_concurrency,
    open_listeners,
    read_connection_log,
    serve_tcp,
)
from survey.testbed.model import Reply, SmtpServerSpec, TlsSpec, World
from survey.testbed.pki import Pki
from survey.testbed.smtp_server import MAX_LINE, LineReader, LineTooLong, serve_smtp
from tests.requirements import needs

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")


async def wait_for(predicate, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


# --- listener and connection log ---------------------------------------------------------


async def echo_destination(conn: Connection) -> None:
    """Tell the client which address it reached, then wait for it to hang up."""
    await conn.stream.send_all(f"{conn.ip} {conn.port} {conn.peer}\n".encode())
    while await conn.stream.receive_some(1024):
        pass


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1024)
        if not chunk:
            break
        data += chunk
    return data.decode()


async def test_one_socket_serves_all_of_loopback(nursery, tmp_path):
    connlog = ConnectionLog(tmp_path / "conn.jsonl")
    port = await nursery.start(lambda task_status: serve_tcp(
        echo_destination, port=0, connlog=connlog, service="echo", task_status=task_status))
    for ip in ("127.0.0.1", "127.9.8.7", "127.255.255.254", "::1"):
        stream = await trio.open_tcp_stream(ip, port)
        assert await read_line(stream) == f"{ip} {port} {ip if ip == '::1' else '127.0.0.1'}\n"
        await stream.aclose()
    await wait_for(lambda: len(connlog.records) == 4)
    records = read_connection_log(tmp_path / "conn.jsonl")
    assert records == connlog.records
    assert [(r.ip, r.port, r.service, r.outcome) for r in records] == [
        (ip, port, "echo", "closed")
        for ip in ("127.0.0.1", "127.9.8.7", "127.255.255.254", "::1")]
    assert all(r.start <= r.end for r in records)


async def test_peer_address_is_logged(nursery):
    connlog = ConnectionLog(None)
    port = await nursery.start(lambda task_status: serve_tcp(
        echo_destination, port=0, connlog=connlog, service="echo", task_status=task_status))
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.77", 0))
    await sock.connect(("127.0.0.8", port))
    stream = trio.SocketStream(sock)
    local_port = sock.getsockname()[1]
    assert await read_line(stream) == f"127.0.0.8 {port} 127.0.0.77\n"
    await stream.aclose()
    await wait_for(lambda: connlog.records)
    assert connlog.records[0].peer == "127.0.0.77"
    assert connlog.records[0].peer_port == local_port


async def test_listeners_are_bound_to_lo():
    sockets = await open_listeners(0)
    try:
        assert sockets[0].getsockname()[0] == "0.0.0.0"
        assert sockets[1].getsockname()[:2] == ("::1", sockets[0].getsockname()[1])
        for sock in sockets:
            device = sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
            assert device.rstrip(b"\0") == b"lo"
    finally:
        for sock in sockets:
            sock.close()


async def test_log_proves_per_ip_concurrency(nursery, tmp_path):
    connlog = ConnectionLog(tmp_path / "conn.jsonl")
    port = await nursery.start(lambda task_status: serve_tcp(
        echo_destination, port=0, connlog=connlog, service="echo", task_status=task_status))
    streams = [await trio.open_tcp_stream("127.0.0.2", port) for _ in range(3)]
    streams.append(await trio.open_tcp_stream("127.0.0.3", port))
    for s in streams:
        await read_line(s)
    for s in streams:
        await s.aclose()
    second = await trio.open_tcp_stream("127.0.0.3", port)
    await read_line(second)
    await second.aclose()
    await wait_for(lambda: len(connlog.records) == 5)
    records = read_connection_log(tmp_path / "conn.jsonl")
    assert max_concurrency(records) == {"127.0.0.2": 3, "127.0.0.3": 1}
    assert connections_by_ip(records) == {"127.0.0.2": 3, "127.0.0.3": 2}
    # the kernel's view: each new connection to .2 found the earlier ones still held open;
    # the second to .3 came after the client had closed the first
    held = sorted((r.ip, r.held_open) for r in records)
    assert held == [("127.0.0.2", 0), ("127.0.0.2", 1), ("127.0.0.2", 2),
                    ("127.0.0.3", 0), ("127.0.0.3", 0)]


def test_max_concurrency_touching_intervals_do_not_overlap():
    def rec(start, end, ip="127.0.0.1"):
        return ConnectionRecord("x", ip, 25, "127.0.0.1", 1, start, end, "closed")
    assert max_concurrency([rec(0, 1), rec(1, 2), rec(2, 3)]) == {"127.0.0.1": 1}
    assert max_concurrency([rec(0, 2), rec(1, 3), rec(1.5, 1.6)]) == {"127.0.0.1": 3}
    assert max_concurrency([]) == {}


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "conn.jsonl"
    with ConnectionLog(path) as connlog:
        connlog.write(ConnectionRecord("smtp", "127.0.0.1", 25, "127.0.0.1", 9, 1.0, 2.0,
                                       "closed"))
    with open(path, "a") as f:
        f.write('{"service":"smtp","ip":"127.0')
    assert len(read_connection_log(path)) == 1


async def test_concurrency_guard_holds_extra_connections_in_the_backlog(nursery):
    connlog = ConnectionLog(None)
    port = await nursery.start(lambda task_status: serve_tcp(
        echo_destination, port=0, connlog=connlog, service="echo", max_connections=2,
        task_status=task_status))
    first = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
    for s in first:
        await read_line(s)
    third = await trio.open_tcp_stream("127.0.0.1", port)  # the kernel completes the handshake
    with trio.move_on_after(0.2) as waited:
        await read_line(third)
    assert waited.cancelled_caught, "a third connection was served beyond the cap"
    await first[0].aclose()
    with trio.fail_after(5):
        assert (await read_line(third)).startswith("127.0.0.1 ")
    for s in (first[1], third):
        await s.aclose()


async def test_handler_errors_are_logged_not_fatal(nursery):
    async def broken(conn: Connection) -> None:
        raise RuntimeError("boom")
    connlog = ConnectionLog(None)
    port = await nursery.start(lambda task_status: serve_tcp(
        broken, port=0, connlog=connlog, service="broken", task_status=task_status))
    for _ in range(2):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        assert await stream.receive_some(10) == b""
        await stream.aclose()
    await wait_for(lambda: len(connlog.records) == 2)
    assert {r.outcome for r in connlog.records} == {"error: RuntimeError"}


async def test_cancelled_connections_are_logged(tmp_path):
    connlog = ConnectionLog(tmp_path / "conn.jsonl")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_tcp(
            echo_destination, port=0, connlog=connlog, service="echo",
            task_status=task_status))
        stream = await trio.open_tcp_stream("127.0.0.4", port)
        await read_line(stream)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    records = read_connection_log(tmp_path / "conn.jsonl")
    assert [(r.ip, r.outcome) for r in records] == [("127.0.0.4", "cancelled")]


# --- SMTP servers ----------------------------------------------------------------------------

EHLO = ("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES")
TLS = TlsSpec()


def server(ip: str, behaviour: str = "normal", *, tls: TlsSpec | None = TLS,
           **kw) -> SmtpServerSpec:
    """A server spec like the generator's, with fast timings."""
    host = f"mx-{ip.replace('.', '-').replace(':', '')}.example.test"
    starts_tls = behaviour != "no_starttls"
    fields = dict(
        ip=ip, behaviour=behaviour, hostname=host,
        greeting=Reply(220, (f"{host} ESMTP",)),
        ehlo=EHLO + (("STARTTLS",) if starts_tls else ()),
        ehlo_tls=EHLO + ("AUTH PLAIN LOGIN",),
        starttls_reply=Reply(220, ("2.0.0 Ready to start TLS",)) if starts_tls else None,
        tls=(replace(tls, names=tls.names or (host,)) if tls and starts_tls else None),
    )
    fields.update(kw)
    return SmtpServerSpec(**fields)


CERT_KIND_IPS = {kind: f"127.20.1.{i + 1}" for i, kind in enumerate(
    ("valid", "expired", "not_yet_valid", "self_signed", "wrong_name", "untrusted",
     "missing_intermediate", "sni_dependent"))}
VERSION_IPS = {v: f"127.20.2.{i + 1}" for i, v in enumerate(
    ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"))}
SNI_NAMES = ("mx.alpha.test", "mx.beta.test", "*.wild.test")

SERVERS = [
    server("127.20.0.1"),
    server("::1"),
    server("127.20.0.2", "no_starttls"),
    server("127.20.0.3", "multiline_banner", greeting=Reply(
        220, ("mx.example.test ESMTP", "Unsolicited bulk email is not accepted here",
              "Service ready"))),
    server("127.20.0.4", "banner_421_rate_limit", greeting=Reply(
        421, ("4.7.0 mx Error: too many connections from your IP address",))),
    server("127.20.0.5", "banner_554", greeting=Reply(554, ("5.7.1 No SMTP service here",))),
    server("127.20.0.6", "ehlo_4xx", ehlo_reject=Reply(451, ("4.3.0 Temporary local problem",))),
    server("127.20.0.7", "starttls_454", tls=None,
           starttls_reply=Reply(454, ("4.7.0 TLS not available due to local problem",))),
    server("127.20.0.8", "starttls_500", tls=None,
           starttls_reply=Reply(500, ("5.5.1 Command unrecognized",))),
    server("127.20.0.9", "drop_after_starttls", tls=None),
    server("127.20.0.10", "slow_banner", delay=0.3),
    server("127.20.0.11", "tarpit", delay=0.05, duration=0.5),
    server("127.20.0.12", "per_ip_limit", limit=2, refusal=Reply(
        421, ("4.7.0 Too many concurrent connections from your IP address",))),
    server("127.20.0.13", "greylist", limit=2, refusal=Reply(
        421, ("4.7.1 Greylisted, please try again later",))),
    server("127.20.0.14", "reset", tls=None),
    server("127.20.0.15", "banner_421", greeting=Reply(421, ("4.3.2 Service shutting down",))),
    *[server(ip, tls=TlsSpec(cert_kind=kind,
                             names=SNI_NAMES if kind == "sni_dependent" else ()))
      for kind, ip in CERT_KIND_IPS.items()],
    *[server(ip, tls=TlsSpec(versions=(v,), ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:"
                             "ECDHE-ECDSA-AES128-SHA"))
      for v, ip in VERSION_IPS.items()],
    server("127.20.3.1", tls=TlsSpec(versions=("TLSv1.2",), ciphers="AES128-SHA:AES256-SHA",
                                     key_type="rsa")),
]
WORLD = World(seed=0, profile="test", domains=(), mx_hosts={},
              smtp_servers={s.ip: s for s in SERVERS}, policy_hosts={}, dns={})
SPEC = WORLD.smtp_servers


@dataclass
class Served:
    port: int
    connlog: ConnectionLog


@pytest.fixture
async def smtp(nursery, pki, tmp_path):
    connlog = ConnectionLog(tmp_path / "connections.jsonl")
    port = await nursery.start(partial(serve_smtp, WORLD, port=0, pki=pki, connlog=connlog,
                                       idle_timeout=0.5))
    return Served(port, connlog)


class Client:
    """A minimal SMTP client that reads complete (multi-line) replies."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def connect(cls, ip: str, port: int) -> Client:
        return cls(await trio.open_tcp_stream(ip, port))

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = await self.stream.receive_some(4096)
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    async def reply(self) -> tuple[int, list[str], str]:
        raw = b""
        with trio.fail_after(5):
            while True:
                line = await self.line()
                raw += line
                if line[3:4] != b"-":
                    break
        lines = raw.decode().split("\r\n")[:-1]
        return int(lines[0][:3]), [ln[4:] for ln in lines], raw.decode()

    async def command(self, text: str) -> tuple[int, list[str], str]:
        await self.stream.send_all(text.encode() + b"\r\n")
        return await self.reply()

    async def eof(self) -> bool:
        with trio.fail_after(5):
            return await self.stream.receive_some(100) == b""

    async def starttls(self, ctx: ssl.SSLContext, sni: str | None) -> None:
        assert (await self.command("STARTTLS"))[0] == 220
        assert not self.buffer
        self.stream = trio.SSLStream(self.stream, ctx, server_hostname=sni)
        with trio.fail_after(5):
            await self.stream.do_handshake()


def verifying(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_bundle_path))


def unverifying() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def test_normal_session_with_starttls(smtp, pki):
    spec = SPEC["127.20.0.1"]
    client = await Client.connect(spec.ip, smtp.port)
    code, _, raw = await client.reply()
    assert (code, raw) == (220, spec.greeting.render())
    code, lines, _ = await client.command("EHLO scanner.test")
    assert code == 250 and lines[0] == spec.hostname
    assert lines[1:] == ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                         "STARTTLS"]
    await client.starttls(verifying(pki), spec.hostname)
    assert client.stream.selected_alpn_protocol() is None
    code, lines, _ = await client.command("EHLO scanner.test")
    assert code == 250 and "STARTTLS" not in lines and "AUTH PLAIN LOGIN" in lines
    assert (await client.command("STARTTLS"))[0] == 503
    assert (await client.command("QUIT"))[0] == 221
    assert await client.eof()


async def test_ipv6_server(smtp, pki):
    client = await Client.connect("::1", smtp.port)
    assert (await client.reply())[0] == 220
    await client.command("EHLO scanner.test")
    await client.starttls(verifying(pki), SPEC["::1"].hostname)
    assert (await client.command("QUIT"))[0] == 221
    await wait_for(lambda: smtp.connlog.records)
    assert smtp.connlog.records[0].ip == "::1"


async def test_no_starttls(smtp):
    client = await Client.connect("127.20.0.2", smtp.port)
    await client.reply()
    code, lines, _ = await client.command("EHLO scanner.test")
    assert code == 250 and "STARTTLS" not in lines
    assert (await client.command("STARTTLS"))[0] == 502


async def test_multiline_banner(smtp):
    client = await Client.connect("127.20.0.3", smtp.port)
    code, lines, raw = await client.reply()
    assert code == 220 and len(lines) == 3
    assert raw.startswith("220-mx.example.test ESMTP\r\n220-Unsolicited")
    assert raw.endswith("\r\n220 Service ready\r\n")


@pytest.mark.parametrize("ip", ["127.20.0.4", "127.20.0.5", "127.20.0.15"])
async def test_refusing_banners_then_close(smtp, ip):
    client = await Client.connect(ip, smtp.port)
    code, _, raw = await client.reply()
    assert raw == SPEC[ip].greeting.render()
    assert code in (421, 554)
    assert await client.eof()


async def test_ehlo_4xx(smtp):
    client = await Client.connect("127.20.0.6", smtp.port)
    await client.reply()
    assert (await client.command("EHLO scanner.test"))[:2] == (
        451, ["4.3.0 Temporary local problem"])
    assert (await client.command("HELO scanner.test"))[0] == 451
    assert (await client.command("NOOP"))[0] == 250


@pytest.mark.parametrize(("ip", "code"), [("127.20.0.7", 454), ("127.20.0.8", 500)])
async def test_starttls_rejected_session_continues(smtp, ip, code):
    client = await Client.connect(ip, smtp.port)
    await client.reply()
    assert "STARTTLS" in (await client.command("EHLO scanner.test"))[1]
    assert (await client.command("STARTTLS"))[0] == code
    assert (await client.command("NOOP"))[0] == 250
    assert (await client.command("QUIT"))[0] == 221


async def test_drop_after_starttls(smtp):
    client = await Client.connect("127.20.0.9", smtp.port)
    await client.reply()
    await client.command("EHLO scanner.test")
    assert (await client.command("STARTTLS"))[0] == 220
    assert await client.eof()


async def test_slow_banner(smtp):
    start = trio.current_time()
    client = await Client.connect("127.20.0.10", smtp.port)
    assert (await client.reply())[0] == 220
    assert trio.current_time() - start >= 0.3


async def test_tarpit_never_finishes_the_greeting(smtp):
    start = trio.current_time()
    client = await Client.connect("127.20.0.11", smtp.port)
    lines = []
    with trio.fail_after(5):
        with pytest.raises(EOFError):
            while True:
                lines.append(await client.line())
    elapsed = trio.current_time() - start
    assert 0.5 <= elapsed < 2
    assert len(lines) >= 3 and all(ln.startswith(b"220-") for ln in lines)


async def test_per_ip_limit_answers_421_beyond_it(smtp):
    ip = "127.20.0.12"
    first = [await Client.connect(ip, smtp.port) for _ in range(2)]
    for c in first:
        assert (await c.reply())[0] == 220
    extra = await Client.connect(ip, smtp.port)
    code, lines, _ = await extra.reply()
    assert code == 421 and "Too many concurrent connections from your IP" in lines[0]
    assert await extra.eof()
    # Another peer address has its own count.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.99", 0))
    await sock.connect((ip, smtp.port))
    assert (await Client(trio.SocketStream(sock)).reply())[0] == 220
    # Once one session ends, the next from the first peer is served again.
    assert (await first[0].command("QUIT"))[0] == 221
    assert await first[0].eof()
    await wait_for(lambda: sum(r.ip == ip for r in smtp.connlog.records) == 2)
    again = await Client.connect(ip, smtp.port)
    assert (await again.reply())[0] == 220


async def test_greylist_refuses_first_connections(smtp):
    codes = []
    for _ in range(4):
        client = await Client.connect("127.20.0.13", smtp.port)
        code, lines, _ = await client.reply()
        codes.append(code)
        await client.stream.aclose()
    assert codes == [421, 421, 220, 220]


@pytest.mark.parametrize("ip", ["127.20.0.14", "127.20.99.99"])
async def test_reset_and_unknown_addresses(smtp, ip):
    client = await Client.connect(ip, smtp.port)
    with pytest.raises(trio.BrokenResourceError):
        with trio.fail_after(5):
            await client.stream.receive_some(100)


async def test_commands_a_scanner_never_sends_are_refused(smtp):
    client = await Client.connect("127.20.0.1", smtp.port)
    await client.reply()
    await client.command("EHLO scanner.test")
    for command in ("MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA", "VRFY root",
                    "EXPN list", "XYZZY", "AUTH PLAIN"):
        assert (await client.command(command))[0] == 502, command
    assert (await client.command(""))[0] == 500
    assert (await client.command("RSET"))[0] == 250
    assert (await client.command("NOOP"))[0] == 250
    assert (await client.command("HELO scanner.test"))[:2] == (250, [SPEC["127.20.0.1"].hostname])


async def test_overlong_line_is_refused(smtp):
    client = await Client.connect("127.20.0.1", smtp.port)
    await client.reply()
    assert (await client.command("NOOP " + "x" * (MAX_LINE + 10)))[0] == 500
    assert await client.eof()


async def test_idle_client_is_dropped(smtp):
    client = await Client.connect("127.20.0.1", smtp.port)
    await client.reply()
    code, lines, _ = await client.reply()  # nothing sent: the server's idle timeout (0.5 s)
    assert code == 421
    assert await client.eof()


async def test_pipelined_data_after_starttls_is_discarded(smtp, pki):
    client = await Client.connect("127.20.0.1", smtp.port)
    await client.reply()
    await client.command("EHLO scanner.test")
    await client.stream.send_all(b"STARTTLS\r\nNOOP\r\n")
    assert (await client.reply())[0] == 220
    client.stream = trio.SSLStream(client.stream, verifying(pki),
                                   server_hostname=SPEC["127.20.0.1"].hostname)
    await client.stream.do_handshake()
    code, lines, _ = await client.command("EHLO again.test")  # not the NOOP's 250 OK
    assert code == 250 and lines[0] == SPEC["127.20.0.1"].hostname


@pytest.mark.parametrize("kind", [k for k in CERT_KIND_IPS if k != "sni_dependent"])
async def test_certificate_kinds_with_python_ssl(smtp, pki, kind):
    ip = CERT_KIND_IPS[kind]
    client = await Client.connect(ip, smtp.port)
    await client.reply()
    await client.command("EHLO scanner.test")
    if kind == "valid":
        await client.starttls(verifying(pki), SPEC[ip].hostname)
        assert (await client.command("QUIT"))[0] == 221
        return
    with pytest.raises(trio.BrokenResourceError) as err:
        await client.starttls(verifying(pki), SPEC[ip].hostname)
    assert isinstance(err.value.__cause__, ssl.SSLCertVerificationError)


async def test_sni_dependent_certificate(smtp, pki):
    ip = CERT_KIND_IPS["sni_dependent"]
    for sni in ("mx.alpha.test", "mx.beta.test", "mx1.wild.test"):
        client = await Client.connect(ip, smtp.port)
        await client.reply()
        await client.command("EHLO scanner.test")
        await client.starttls(verifying(pki), sni)  # verification includes the name
        assert (await client.command("EHLO scanner.test"))[0] == 250
        await client.stream.aclose()
    client = await Client.connect(ip, smtp.port)
    await client.reply()
    await client.command("EHLO scanner.test")
    with pytest.raises(trio.BrokenResourceError):
        await client.starttls(verifying(pki), "mx.gamma.test")


# --- the same with openssl s_client -------------------------------------------------------

async def s_client(port: int, ip: str, *args: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{host}:{port}",
           "-name", "scanner.test", *args]
    with trio.fail_after(10):
        done = await trio.run_process(cmd, stdin=b"QUIT\r\n", capture_stdout=True,
                                      capture_stderr=True, check=False)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


@needs("openssl")
@pytest.mark.parametrize(("kind", "verify_code"), [
    ("valid", "0 (ok)"),
    ("expired", "10 (certificate has expired)"),
    ("not_yet_valid", "9 (certificate is not yet valid)"),
    ("self_signed", "18 (self-signed certificate)"),
    ("untrusted", "19 (self-signed certificate in certificate chain)"),
    ("missing_intermediate", "21 (unable to verify the first certificate)"),
    ("wrong_name", "62 (hostname mismatch)"),
])
async def test_openssl_s_client_verifies_each_cert_kind(smtp, pki, kind, verify_code):
    ip = CERT_KIND_IPS[kind]
    name = SPEC[ip].hostname
    out = await s_client(smtp.port, ip, "-servername", name, "-CAfile", str(pki.ca_bundle_path),
                         "-verify_hostname", name, "-showcerts")
    assert f"Verify return code: {verify_code}" in out, out
    sent = out.count("-----BEGIN CERTIFICATE-----")
    assert sent == (1 if kind in ("self_signed", "missing_intermediate") else 2)
    assert "250 " in out or "221 " in out or "DONE" in out


@needs("openssl")
async def test_openssl_s_client_sni_dependent(smtp, pki):
    ip = CERT_KIND_IPS["sni_dependent"]
    subjects = []
    for name in ("mx.alpha.test", "mx.beta.test"):
        out = await s_client(smtp.port, ip, "-servername", name, "-CAfile",
                             str(pki.ca_bundle_path), "-verify_hostname", name)
        assert "Verify return code: 0 (ok)" in out, out
        subjects.append([ln for ln in out.splitlines() if ln.startswith("subject=")][0])
    assert subjects == ["subject=CN = mx.alpha.test", "subject=CN = mx.beta.test"]
    out = await s_client(smtp.port, ip, "-noservername", "-CAfile", str(pki.ca_bundle_path),
                         "-verify_hostname", "mx.alpha.test")
    assert "Verify return code: 62 (hostname mismatch)" in out, out


@needs("openssl")
@pytest.mark.parametrize(("version", "flag"), [
    ("TLSv1.0", "-tls1"), ("TLSv1.1", "-tls1_1"), ("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3"),
])
async def test_openssl_s_client_tls_versions(smtp, pki, version, flag):
    legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"]
    for server_version, ip in VERSION_IPS.items():
        out = await s_client(smtp.port, ip, flag, *legacy, "-brief")
        if server_version == version:
            openssl_name = "TLSv1" if version == "TLSv1.0" else version
            assert f"Protocol version: {openssl_name}\n" in out, out
        else:
            assert "Protocol version:" not in out, (server_version, out)


@needs("openssl")
async def test_openssl_s_client_rsa_key_exchange(smtp, pki):
    out = await s_client(smtp.port, "127.20.3.1", "-tls1_2", "-cipher", "AES256-SHA", "-brief")
    assert "Ciphersuite: AES256-SHA" in out, out
    assert "Peer signing digest" not in out  # RSA key exchange: no ServerKeyExchange signature


async def test_connection_log_records_each_smtp_session(smtp):
    for ip in ("127.20.0.1", "127.20.0.5", "127.20.0.1"):
        client = await Client.connect(ip, smtp.port)
        await client.reply()
        await client.stream.aclose()
    await wait_for(lambda: len(smtp.connlog.records) == 3)
    records = read_connection_log(smtp.connlog.path)
    assert [(r.service, r.ip, r.port, r.peer) for r in records] == [
        ("smtp", ip, smtp.port, "127.0.0.1") for ip in ("127.20.0.1", "127.20.0.5", "127.20.0.1")]
    assert connections_by_ip(records) == {"127.20.0.1": 2, "127.20.0.5": 1}


# --- the server's line reader, fuzzed --------------------------------------------------------

class Chunks(trio.abc.ReceiveStream):
    """A receive stream that hands out pre-cut chunks, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.received = 0

    async def receive_some(self, max_bytes=None) -> bytes:
        chunk = self.chunks.pop(0) if self.chunks else b""
        self.received += len(chunk)
        return chunk

    async def aclose(self) -> None:
        pass


def expected_lines(data: bytes, cap: int) -> tuple[list[bytes], bool]:
    """The lines a capped reader must produce, and whether it must give up (too long)."""
    *complete, rest = data.split(b"\n")
    lines = []
    for line in complete:
        if len(line) > cap:
            return lines, True
        lines.append(line[:-1] if line.endswith(b"\r") else line)
    return lines, len(rest) > cap


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=10),
       cap=st.integers(1, 40))
def test_line_reader_any_bytes_any_chunking(data, cuts, cap):
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    want, too_long = expected_lines(data, cap)

    async def run() -> tuple[list[bytes], bool]:
        reader = LineReader(Chunks(chunks), cap=cap)
        got = []
        try:
            while (line := await reader.readline()) is not None:
                got.append(line)
                assert len(reader._buffer) <= cap + 300
        except LineTooLong:
            return got, True
        return got, False

    got, gave_up = trio.run(run)
    if gave_up and not too_long:
        # It may give up early on a long partial line only once it is over the cap.
        raise AssertionError((got, want))
    assert got == want[:len(got)]
    if not too_long:
        assert got == want
