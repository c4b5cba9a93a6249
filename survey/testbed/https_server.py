"""The world's MTA-STS policy hosts: HTTPS for ``mta-sts.<domain>``, SNI picks the domain.

Theory of operation
-------------------
``serve_https`` listens once (``listen.serve_tcp``); the destination address
of a connection names the set of policy hosts living there (one for a long
tail domain, thousands for a provider's policy address). The TLS context for
an address serves the certificate of its first host (sorted by name) by
default and switches to the named host's certificate when the client sends
SNI for one of the hosts of *that* address (``Pki.dispatch_context``); a host
at another address is not served here, as on the real Internet.

After the handshake the server reads one request head (at most
``MAX_REQUEST`` bytes, within ``idle_timeout``), finds the host from the
``Host`` header, and answers ``GET``/``HEAD /.well-known/mta-sts.txt`` as the
``PolicyHostSpec`` says (model.py documents the behaviours): status,
Content-Type, Location and body verbatim; ``oversize`` pads the body with
newlines to ``pad_to`` bytes; ``slow_body`` sends the headers at once and then
the body a byte at a time, one every ``delay`` seconds (slower for a short
body), never its last byte, and hangs up after ``duration``; ``slow_headers``
(slowloris, hostile.py) dribbles an endless response head a byte at a time
until ``duration``. Other paths get 404, other methods 405, a malformed or
oversize request 400/431. Every response carries ``Connection: close`` and
the connection ends after it: minimal HTTP/1.1 is all a policy fetch needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from http import HTTPStatus
from typing import Any

import trio

from survey.testbed import hostile
from survey.testbed.latency import DelayLine
from survey.testbed.listen import (
    DEFAULT_MAX_CONNECTIONS,
    Connection,
    ConnectionLog,
    Group,
    reset,
    serve_tcp,
)
from survey.testbed.model import PolicyHostSpec, TlsSpec, World
from survey.testbed.pki import LruCache, Pki

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_REQUEST = 8192
DEFAULT_IDLE_TIMEOUT = 120.0
# The world's default TLS for policy hosts whose spec has ``tls=None``.
DEFAULT_POLICY_TLS = TlsSpec(versions=("TLSv1.2", "TLSv1.3"))
SERVER_HEADER = "survey-testbed"


class BadRequest(Exception):
    """The client's request is malformed (400) or too large (431)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]   # names lower-cased

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        if len(values) > 1:
            raise BadRequest(400)
        return values[0] if values else None


def parse_request(head: bytes) -> Request:
    """A request head (request line + header fields, without the blank line)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400) from None
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400)
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400)  # RFC 9112 §5.1: no whitespace before the colon
        headers.append((name.lower(), value.strip(" \t")))
    return Request(parts[0], parts[1], parts[2], tuple(headers))


def host_name(value: str) -> str:
    """The name in a Host header: lower-case, no port, no trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0].rstrip(".") if ":" in value else value.rstrip(".")


def policy_tls(host: PolicyHostSpec) -> TlsSpec:
    """The TLS a policy host serves: its own or the default, its cert kind, its name."""
    base = host.tls or DEFAULT_POLICY_TLS
    return dataclasses.replace(base, cert_kind=host.cert_kind, names=(host.host,))


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def policy_body(host: PolicyHostSpec) -> bytes:
    body = host.body.encode("utf-8")
    if host.pad_to > len(body):
        body += b"\n" * (host.pad_to - len(body))
    return body


class HttpsWorld:
    """Connection handler for all policy hosts of a world."""

    def __init__(self, world: World, pki: Pki, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_contexts: int = 4096) -> None:
        self.world = world
        self.pki = pki
        self.idle_timeout = idle_timeout
        hosts: dict[str, list[PolicyHostSpec]] = defaultdict(list)
        for spec in world.policy_hosts.values():
            if spec.ip is not None:
                hosts[spec.ip].append(spec)
        self.hosts_at = {ip: sorted(specs, key=lambda s: s.host) for ip, specs in hosts.items()}
        # the round-trip time of an address (latency.py): its hosts' largest
        self.rtt_at = {ip: max(s.rtt for s in specs) for ip, specs in hosts.items()
                       if any(s.rtt for s in specs)}
        self._contexts: LruCache[Any] = LruCache(max_contexts)

    def context_for(self, ip: str) -> Any:
        hosts = self.hosts_at[ip]
        first = hosts[0]
        if len(hosts) == 1:
            return self.pki.server_context(policy_tls(first), (first.host,))
        ctx = self._contexts.get(ip)
        if ctx is None:
            def select(name: str) -> Any:
                spec = self.host_at(ip, name)
                return (self.pki.server_context(policy_tls(spec), (spec.host,))
                        if spec is not None else None)
            ctx = self.pki.dispatch_context(policy_tls(first), (first.host,), select)
            self._contexts.put(ip, ctx)
        return ctx

    def host_at(self, ip: str, name: str) -> PolicyHostSpec | None:
        spec = self.world.policy_host(name)
        return spec if spec is not None and spec.ip == ip else None

    async def handle(self, conn: Connection) -> None:
        if conn.ip not in self.hosts_at:
            reset(conn.stream)
            return
        rtt = self.rtt_at.get(conn.ip)
        if not rtt:
            await self._handle(conn, conn.stream)
            return
        async with trio.open_nursery() as nursery:
            line = DelayLine(conn.stream, rtt, nursery)
            try:
                await self._handle(conn, line)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass    # the client hung up: as listen.py counts it without a delay line
            finally:
                with trio.CancelScope(shield=True):
                    await line.stop()

    async def _handle(self, conn: Connection, stream: trio.abc.Stream) -> None:
        tls = trio.SSLStream(stream, self.context_for(conn.ip), server_side=True)
        with trio.move_on_after(self.idle_timeout) as idle:
            await tls.do_handshake()
        if idle.cancelled_caught:
            return
        head = None
        try:
            with trio.move_on_after(self.idle_timeout) as idle:
                head = await read_head(tls)
            if head is not None and not idle.cancelled_caught:
                await self.respond(conn.ip, tls, parse_request(head))
        except BadRequest as bad:
            await send_response(tls, bad.status, [], b"")
        with trio.move_on_after(1):
            await tls.aclose()  # close_notify: the client sees a clean end

    async def respond(self, ip: str, tls: trio.SSLStream, request: Request) -> None:
        host_header = request.header("host")
        if host_header is None:
            raise BadRequest(400)
        if request.method not in ("GET", "HEAD"):
            await send_response(tls, 405, [("Allow", "GET, HEAD")], b"")
            return
        spec = self.host_at(ip, host_name(host_header))
        path = request.target.split("?", 1)[0]
        if spec is None or path != POLICY_PATH:
            await send_response(tls, 404, [("Content-Type", "text/plain")],
                                b"404 Not Found\n", head_only=request.method == "HEAD")
            return
        body = policy_body(spec)
        headers = []
        if spec.content_type is not None:
            headers.append(("Content-Type", spec.content_type))
        if spec.location is not None:
            headers.append(("Location", spec.location))
        if spec.behaviour == "slow_body" and request.method == "GET":
            await send_slowly(tls, spec, headers, body)
            return
        if spec.behaviour == "slow_headers":
            await hostile.slow_headers(tls, spec)
            return
        await send_response(tls, spec.status, headers, body, head_only=request.method == "HEAD")


async def read_head(stream: trio.abc.ReceiveStream) -> bytes | None:
    """Bytes up to the blank line ending a request head; None if the client hangs up."""
    data = bytearray()
    while True:
        for sep in (b"\r\n\r\n", b"\n\n"):
            end = data.find(sep)
            if end >= 0:
                if end > MAX_REQUEST:
                    raise BadRequest(431)
                return bytes(data[:end])
        if len(data) > MAX_REQUEST:
            raise BadRequest(431)
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk


async def send_response(stream: trio.abc.SendStream, status: int,
                        headers: list[tuple[str, str]], body: bytes, *,
                        head_only: bool = False) -> None:
    headers = [*headers, ("Content-Length", str(len(body))), ("Connection", "close"),
               ("Server", SERVER_HEADER)]
    await stream.send_all(response_head(status, headers) + (b"" if head_only else body))


async def send_slowly(stream: trio.abc.Stream, spec: PolicyHostSpec,
                      headers: list[tuple[str, str]], body: bytes) -> None:
    """Headers now, then the body a byte at a time, never finished before ``duration``."""
    headers = [*headers, ("Content-Length", str(len(body))), ("Connection", "close"),
               ("Server", SERVER_HEADER)]
    await stream.send_all(response_head(spec.status, headers))
    interval = max(spec.delay, spec.duration / max(1, len(body)), 0.001)

    async def until_the_client_hangs_up(scope: trio.CancelScope) -> None:
        # The connection ends when the client gives up, not at our next write:
        # the connection log must show when the client's connection really ended.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            while await stream.receive_some(1024):
                pass
        scope.cancel()

    with trio.move_on_after(spec.duration) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_the_client_hangs_up, scope)
            for i in range(len(body) - 1):  # never the last byte
                await trio.sleep(interval)
                await stream.send_all(body[i:i + 1])
            scope.cancel()


async def serve_https(world: World, *, port: int, pki: Pki, connlog: ConnectionLog,
                      task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
                      idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                      max_connections: int = DEFAULT_MAX_CONNECTIONS, ipv6: bool = True,
                      group: Group | None = None) -> None:
    """Serve every policy host of ``world`` on ``port`` (0: any; ``started`` gets the port;
    ``group``: one of several processes on ``port``, listen.Group)."""
    handler = HttpsWorld(world, pki, idle_timeout=idle_timeout)
    await serve_tcp(handler.handle, port=port, connlog=connlog, service="https",
                    max_connections=max_connections, ipv6=ipv6, group=group,
                    task_status=task_status)
