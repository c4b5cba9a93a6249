"""The world's SMTP servers: one listener, one behaviour per destination address.

Theory of operation
-------------------
``serve_smtp`` listens once (``listen.serve_tcp``) and, per accepted
connection, looks up the ``SmtpServerSpec`` of the address the client dialled
(``World.smtp_server(ip)``). The spec says everything: the reply texts are
sent verbatim, the behaviour picks the script (model.py documents the
vocabulary). An address without a server answers with a TCP reset.

Before the greeting, the behaviour may refuse (421/554 banners, per-IP limit,
greylisting), reset, stall (slow banner) or tarpit (greeting continuation
lines dribbled until ``duration``, never the final line). Then a command loop:

  EHLO      250 hostname + capabilities (``ehlo``, or ``ehlo_tls`` after TLS);
            ``ehlo_4xx`` answers EHLO and HELO with ``ehlo_reject``
  HELO      250 hostname
  STARTTLS  ``starttls_reply``; on a 220 the server drops anything the client
            pipelined after STARTTLS (RFC 3207 §5, the "command injection"
            defence), then runs the TLS handshake on the same TCP stream --
            ``trio.SSLStream`` with ``Pki.server_context`` for the openssl
            engine, tlslite-ng in a bounded worker thread for the tlslite
            engine (tlslite_server.py) -- and the session starts over (the
            client must EHLO again, RFC 3207 §4.2)
  NOOP/RSET 250;  QUIT 221 and close
  other     502 (MAIL, RCPT, DATA, VRFY, EXPN included: a scanner never sends
            them, and a test checks that this server would notice)

Hostile behaviours (endless_banner, long_line, garbage instead of the
greeting; tls_truncated instead of the handshake) run the scripts of
hostile.py, each bounded in bytes and time.

The server side has caps too: a command line longer than ``MAX_LINE`` gets
500 and a close, a session ends after ``MAX_COMMANDS`` commands, and a
client silent for ``idle_timeout`` seconds gets 421 and a close.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import trio

from survey.testbed import hostile
from survey.testbed.latency import DeadListeners, DelayLine
from survey.testbed.listen import (
    DEFAULT_MAX_CONNECTIONS,
    Connection,
    ConnectionLog,
    Group,
    reset,
    serve_tcp,
)
from survey.testbed.model import Reply, SmtpServerSpec, World
from survey.testbed.pki import Pki

MAX_LINE = 2048            # RFC 5321 §4.5.3.1.4 asks for 512; be a little generous
MAX_COMMANDS = 100
DEFAULT_IDLE_TIMEOUT = 120.0

REPLY_OK = Reply(250, ("2.0.0 OK",))
REPLY_BYE = Reply(221, ("2.0.0 Bye",))
REPLY_UNKNOWN = Reply(502, ("5.5.1 Error: command not recognized",))
REPLY_NOT_OFFERED = Reply(502, ("5.5.1 Error: command not implemented",))
REPLY_TLS_ACTIVE = Reply(503, ("5.5.1 Error: TLS already active",))
REPLY_SYNTAX = Reply(500, ("5.5.2 Error: bad syntax",))
REPLY_TOO_LONG = Reply(500, ("5.5.2 Error: line too long",))
REPLY_IDLE = Reply(421, ("4.4.2 Error: timeout exceeded",))
REPLY_TOO_MANY = Reply(421, ("4.7.0 Error: too many commands",))

_REFUSING_BANNERS = ("banner_421_rate_limit", "banner_421", "banner_554")
_STARTTLS_REJECTING = ("starttls_454", "starttls_500")
_INSTEAD_OF_GREETING = {"endless_banner": hostile.endless_banner,
                        "long_line": hostile.long_line, "garbage": hostile.garbage}
# behaviours whose replies go through a DelayLine when the server has an rtt (latency.py);
# the hostile scripts and the tarpit write to the socket itself and only start late
_DELAY_LINED = frozenset({
    "normal", "multiline_banner", "no_starttls", "slow_banner", "banner_421_rate_limit",
    "banner_421", "banner_554", "ehlo_4xx", "starttls_454", "starttls_500",
    "drop_after_starttls", "per_ip_limit", "greylist", "hostile_text"})
DEFAULT_TLS_THREADS = 8     # tlslite-ng handshakes running at once (tlslite_server.py)


class LineTooLong(Exception):
    """The client sent a line longer than the cap."""


class LineReader:
    """CRLF-terminated lines from a stream, at most ``cap`` bytes each.

    Bare LF is accepted as a line end (lenient, like Postfix).
    """

    def __init__(self, stream: trio.abc.ReceiveStream, cap: int = MAX_LINE) -> None:
        self.stream = stream
        self.cap = cap
        self._buffer = bytearray()

    async def readline(self) -> bytes | None:
        """The next line without its line end, or None at end of stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end > self.cap:
                    raise LineTooLong
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buffer) > self.cap:
                raise LineTooLong
            chunk = await self.stream.receive_some(4096)
            if not chunk:
                return None
            self._buffer += chunk

    def discard_buffered(self) -> int:
        """Forget what the client sent ahead (before a TLS handshake); returns the count."""
        n = len(self._buffer)
        self._buffer.clear()
        return n


class SmtpWorld:
    """Connection handler for all SMTP servers of a world (state shared across connections)."""

    def __init__(self, world: World, pki: Pki, *,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 tls_threads: int = DEFAULT_TLS_THREADS) -> None:
        self.world = world
        self.pki = pki
        self.idle_timeout = idle_timeout
        self.tls_threads = trio.CapacityLimiter(tls_threads)
        self._tlslite: Any = None   # tlslite_server.Credentials, built on first use
        self._open: dict[tuple[str, str], int] = defaultdict(int)   # (server ip, peer) -> open
        self._refused: dict[str, int] = defaultdict(int)            # server ip -> greylisted
        self._screened: set[tuple[str, str]] = set()   # (server ip, peer) past a pregreet wait

    async def handle(self, conn: Connection) -> None:
        spec = self.world.smtp_server(conn.ip)
        if spec is None or spec.behaviour in ("reset", "dead"):
            reset(conn.stream)   # dead: reached only past its dead listener (a stale world)
            return
        if spec.rtt > 0 and spec.behaviour in _DELAY_LINED:
            async with trio.open_nursery() as nursery:
                line = DelayLine(conn.stream, spec.rtt, nursery)
                try:
                    await self._handle(conn, spec, line)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass    # the client hung up: as listen.py counts it without a delay line
                finally:
                    with trio.CancelScope(shield=True):
                        await line.stop()
            return
        if spec.rtt > 0:     # hostile scripts and tarpits: their first byte comes late
            await trio.sleep(spec.rtt)
        await self._handle(conn, spec, conn.stream)

    async def _handle(self, conn: Connection, spec: SmtpServerSpec,
                      stream: trio.abc.Stream) -> None:
        b = spec.behaviour
        if b in _REFUSING_BANNERS:
            await send(stream, spec.greeting)
            return
        if b == "greylist" and self._refused[conn.ip] < spec.limit:
            self._refused[conn.ip] += 1
            await send(stream, spec.refusal or Reply(421, ("4.7.1 Try again later",)))
            return
        key = (conn.ip, conn.peer)
        if b == "per_ip_limit" and self._open[key] >= spec.limit:
            await send(stream, spec.refusal or Reply(
                421, ("4.7.0 Too many concurrent connections from your IP",)))
            return
        self._open[key] += 1
        try:
            if b == "tarpit":
                await tarpit(conn.stream, spec)
                return
            if b in _INSTEAD_OF_GREETING:
                await _INSTEAD_OF_GREETING[b](conn.stream, spec)
                return
            if b == "slow_banner":
                await trio.sleep(spec.delay)
            await self.greeting_pause(spec, key)
            await send(stream, spec.greeting)
            await Session(self, spec, stream).run()
        finally:
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]

    async def greeting_pause(self, spec: SmtpServerSpec, key: tuple[str, str]) -> None:
        """The server's wait before its greeting: its own lookups (every connection),
        and a postscreen-style pregreet test on a client's first connection only (a
        client that waited it out is remembered, as postscreen's cache does)."""
        pause = spec.banner_delay
        if spec.first_banner_delay and key not in self._screened:
            pause += spec.first_banner_delay
        if pause > 0:
            await trio.sleep(pause)
        if spec.first_banner_delay:
            self._screened.add(key)

    def tls_context(self, spec: SmtpServerSpec) -> Any:
        assert spec.tls is not None
        return self.pki.server_context(spec.tls, spec.tls.names or (spec.hostname,))

    async def tlslite_handshake(self, spec: SmtpServerSpec, stream: trio.SocketStream) -> Any:
        """A finished tlslite-ng handshake on ``stream`` (BrokenResourceError if it fails)."""
        from survey.testbed import tlslite_server  # tlslite-ng only when a world needs it

        assert spec.tls is not None
        if self._tlslite is None:
            self._tlslite = tlslite_server.Credentials(self.pki)
        return await tlslite_server.server_handshake(
            stream, spec.tls, spec.tls.names or (spec.hostname,), self._tlslite,
            limiter=self.tls_threads, timeout=self.idle_timeout)


class Session:
    """One SMTP dialogue after the greeting."""

    def __init__(self, owner: SmtpWorld, spec: SmtpServerSpec, stream: trio.abc.Stream) -> None:
        self.owner = owner
        self.spec = spec
        self.stream: trio.abc.Stream = stream
        self.reader = LineReader(stream)
        self.tls_active = False

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            close_now = getattr(self.stream, "close_now", None)
            if close_now is not None:   # a tlslite stream holds its own descriptor
                close_now()

    async def _run(self) -> None:
        for _ in range(MAX_COMMANDS):
            try:
                with trio.move_on_after(self.owner.idle_timeout) as idle:
                    line = await self.reader.readline()
            except LineTooLong:
                await send(self.stream, REPLY_TOO_LONG)
                return
            if idle.cancelled_caught:
                await send(self.stream, REPLY_IDLE)
                return
            if line is None:
                return
            if not await self.command(line):
                return
        await send(self.stream, REPLY_TOO_MANY)

    async def command(self, line: bytes) -> bool:
        """Answer one command line; False ends the session."""
        spec = self.spec
        verb = line.split(b" ", 1)[0].upper()
        if not verb.strip():
            await send(self.stream, REPLY_SYNTAX)
        elif verb in (b"EHLO", b"HELO"):
            if spec.behaviour == "ehlo_4xx" and spec.ehlo_reject is not None:
                await send(self.stream, spec.ehlo_reject)
            elif verb == b"HELO":
                await send(self.stream, Reply(250, (spec.hostname,)))
            else:
                caps = spec.ehlo_tls if self.tls_active else spec.ehlo
                await send(self.stream, Reply(250, (spec.hostname, *caps)))
        elif verb == b"STARTTLS":
            return await self.starttls()
        elif verb in (b"NOOP", b"RSET"):
            await send(self.stream, REPLY_OK)
        elif verb == b"QUIT":
            await send(self.stream, REPLY_BYE)
            await self.close()
            return False
        else:
            await send(self.stream, REPLY_UNKNOWN)
        return True

    async def starttls(self) -> bool:
        spec = self.spec
        if self.tls_active:
            await send(self.stream, REPLY_TLS_ACTIVE)
            return True
        if spec.behaviour in _STARTTLS_REJECTING and spec.starttls_reply is not None:
            await send(self.stream, spec.starttls_reply)
            return True
        if spec.behaviour == "drop_after_starttls":
            await send(self.stream, spec.starttls_reply or Reply(220, ("2.0.0 Ready",)))
            return False
        if spec.behaviour == "tls_truncated":
            await send(self.stream, spec.starttls_reply or Reply(220, ("2.0.0 Ready",)))
            self.reader.discard_buffered()
            await hostile.tls_truncated(self.stream, spec)
            return False
        if spec.tls is None or "STARTTLS" not in spec.ehlo:
            await send(self.stream, REPLY_NOT_OFFERED)
            return True
        await send(self.stream, spec.starttls_reply or Reply(220, ("2.0.0 Ready to start TLS",)))
        self.reader.discard_buffered()
        tls: trio.abc.Stream
        if spec.tls.engine == "tlslite":
            raw = self.stream
            if isinstance(raw, DelayLine):   # tlslite-ng drives the socket itself
                await raw.flush()
                raw = raw.transport
            assert isinstance(raw, trio.SocketStream)
            tls = await self.owner.tlslite_handshake(spec, raw)  # bounded inside
        else:
            tls = trio.SSLStream(self.stream, self.owner.tls_context(spec), server_side=True)
            with trio.move_on_after(self.owner.idle_timeout) as idle:
                await tls.do_handshake()  # a failed handshake raises BrokenResourceError
            if idle.cancelled_caught:
                return False
        self.stream = tls
        self.reader = LineReader(tls)
        self.tls_active = True
        return True

    async def close(self) -> None:
        if self.tls_active:
            with trio.move_on_after(1):
                try:
                    await self.stream.aclose()  # close_notify, then the socket
                except trio.BrokenResourceError:
                    pass


async def send(stream: trio.abc.SendStream, reply: Reply) -> None:
    await stream.send_all(reply.render().encode("utf-8"))


def tarpit_lines(spec: SmtpServerSpec) -> Iterator[bytes]:
    """Greeting continuation lines, forever (never the final ``220 `` line)."""
    code = spec.greeting.code
    for text in itertools.cycle(spec.greeting.lines or ("",)):
        yield f"{code}-{text}\r\n".encode()


async def tarpit(stream: trio.SocketStream, spec: SmtpServerSpec) -> None:
    """Dribble an endless greeting, one line per ``delay``, then hang up after ``duration``."""
    with trio.move_on_after(spec.duration):
        for line in tarpit_lines(spec):
            await stream.send_all(line)
            await trio.sleep(max(spec.delay, 0.01))


async def serve_smtp(world: World, *, port: int, pki: Pki, connlog: ConnectionLog,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
                     idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS, ipv6: bool = True,
                     tls_threads: int = DEFAULT_TLS_THREADS, group: Group | None = None) -> None:
    """Serve every SMTP server of ``world`` on ``port`` (0: any; ``started`` gets the port).

    ``group``: one of several processes on ``port`` (listen.Group); the dead
    addresses' listeners are opened by member 0 alone.
    """
    handler = SmtpWorld(world, pki, idle_timeout=idle_timeout, tls_threads=tls_threads)
    dead = sorted(ip for ip, spec in world.smtp_servers.items() if spec.behaviour == "dead")
    if group is not None and group.index:
        dead = []
    if not dead:
        await serve_tcp(handler.handle, port=port, connlog=connlog, service="smtp",
                        max_connections=max_connections, ipv6=ipv6, group=group,
                        task_status=task_status)
        return
    # dead addresses: exact-address listeners that never accept (latency.py), sharing
    # the port with the world's listener (SO_REUSEPORT on both)
    listeners = DeadListeners()
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(functools.partial(
                serve_tcp, handler.handle, port=port, connlog=connlog, service="smtp",
                max_connections=max_connections, ipv6=ipv6, reuse_port=True, group=group))
            listeners.open(dead, bound)
            task_status.started(bound)
    finally:
        listeners.close()
