"""One SMTP conversation with one mail server: banner, EHLO, STARTTLS, TLS, EHLO, QUIT.

Theory of operation
-------------------
``probe_starttls`` opens one TCP connection (after the destination policy
allowed it) and walks the dialogue of docs/design.md "The SMTP dialogue":

  connect -> whole greeting -> EHLO -> [STARTTLS -> 220 -> TLS handshake
  -> EHLO over TLS] -> QUIT

Each step has its own deadline, and the greeting's deadline covers the whole
greeting (an endless multi-line banner never ends a single read late). Reads
are bounded (``READ_SIZE`` at a time, the reply parser's caps on lines and
replies, ``MAX_SESSION_BYTES`` in all). Nothing after EHLO but STARTTLS and
QUIT is ever sent: no MAIL, RCPT, VRFY, EXPN or DATA.

Every ending is a status from the server vocabulary, with what was learnt so
far kept (a banner and EHLO survive a failed handshake):

  refused / unreachable / slow connect   connection_refused, network_unreachable,
                                         connect_timeout
  RST, silence                           reset, read_timeout
  garbage, broken grammar, injection     protocol_error
  4xx/5xx at greeting or EHLO            rate_limited (names a limit),
                                         smtp_reject_4xx, smtp_reject_5xx
  no STARTTLS in EHLO                    no_starttls
  STARTTLS answered non-220              starttls_rejected (or rate_limited)
  handshake fails or the server drops    tls_handshake_failed

Retrying a refusal is the caller's decision (``is_retryable``): this module
is one connection, one attempt.

The part up to STARTTLS's 220 is shared: ``starttls_preamble`` opens the
connection and walks greeting, EHLO, STARTTLS and 220, then hands the bare
TCP stream to its caller. ``probe_starttls`` runs the TLS handshake on it;
the hello probes (survey.net.probes) send a hand-built ClientHello instead.

The TLS client offers everything this OpenSSL can speak (``@SECLEVEL=0``,
TLS 1.0 to 1.3) and verifies nothing itself: the chain is recorded and
judged by survey.certs, so an expired or self-signed certificate still yields
the negotiated version, suite and chain.

Turns
-----
A deadline must measure the server, not the scanner's own queue. When
thousands of greetings come together (servers that all pause before their
greeting, reached within seconds of each other), the EHLO and STARTTLS
replies and the handshakes of all those connections interleave in one event
loop: each step waits behind thousands of others, every conversation lasts
as long as all of them together, and deadlines fire for servers that
answered at once (benchmarks/README.md, "Reading slow.py": 1,500 of 1,500 at
3 s deadlines). So callers pass ``turns``, a fair semaphore: once its
greeting is read, a connection waits for a turn, sends EHLO only then, and
holds the turn to the end; the deadlines after the greeting run within it,
so they time the server plus at most a turn's worth of the scanner's work.
The greeting is read before: its deadline is the one a slow banner meets,
and reading it costs little. The wait is the scanner's: the server has
greeted and waits for our command (RFC 5321 §4.5.3.2.7 asks servers to wait
5 minutes; a Postfix under stress waits 10 s), and it lasts only while more
conversations are due than there are turns.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import trio

from survey.net.guard import DestinationPolicy
from survey.net.transport import (
    Blocked,
    Connection,
    OutOfReach,
    client_context,
    drain,
    negotiated,
    open_tcp,
    peer_chain,
    ssl_object,
)
from survey.proto.smtp import (
    CLOSED,
    NEED_DATA,
    ReplyParser,
    SMTPProtocolError,
    classify_refusal,
    parse_ehlo,
    starttls_refusal_status,
)
from survey.vocabulary import RETRYABLE, AttemptStep, HostStatus

READ_SIZE = 4096
MAX_SESSION_BYTES = 1 << 20        # a whole session never reads more than 1 MiB
MAX_TRANSCRIPT_CHARS = 64 * 1024
QUIT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    greeting: float = 30.0    # the whole greeting
    command: float = 30.0     # each command's whole reply
    tls: float = 30.0         # the whole handshake


@dataclass(slots=True)   # one per server stays for the whole scan: no __dict__ each
class SmtpProbe:
    """What one connection learnt. ``status`` is always set; the rest as far as it got."""

    ip: str
    port: int
    status: HostStatus = HostStatus.OK
    detail: str | None = None
    step: AttemptStep = AttemptStep.CONNECT  # the last step begun
    reply_code: int | None = None           # the last reply's code (QUIT's excluded)
    banner: str | None = None
    ehlo: list[str] | None = None           # EHLO reply lines after the first, as sent
    ehlo_tls: list[str] | None = None
    starttls_offered: bool | None = None
    sni: str | None = None
    tls_version: str | None = None
    cipher_suite: str | None = None
    chain: list[bytes] = field(default_factory=list)  # DER, leaf first
    transcript: list[str] = field(default_factory=list)

    @property
    def is_retryable(self) -> bool:
        """A temporary refusal that a later attempt may not get (greylisting, limits)."""
        return self.status in RETRYABLE

    def note(self, direction: str, text: str) -> None:
        used = sum(len(line) for line in self.transcript)
        if used < MAX_TRANSCRIPT_CHARS:
            self.transcript.append(f"{direction}: {text[:MAX_TRANSCRIPT_CHARS - used]}")


class _End(Exception):
    """Ends the dialogue with a status; the probe keeps what it learnt."""

    def __init__(self, status: HostStatus, detail: str | None = None) -> None:
        super().__init__(status)
        self.status, self.detail = status, detail


def _connect_status(exc: OSError) -> HostStatus:
    if isinstance(exc, ConnectionRefusedError):
        return HostStatus.CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError):
        return HostStatus.RESET
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        return HostStatus.NETWORK_UNREACHABLE
    if exc.errno == errno.ETIMEDOUT:
        return HostStatus.CONNECT_TIMEOUT
    return HostStatus.CONNECT_ERROR     # recorded as what it is (the detail names it)


def _ended(probe: SmtpProbe, exc: _End | Blocked | OSError) -> None:
    """The status and detail of a dialogue that ``exc`` ended (what was learnt stays)."""
    if isinstance(exc, _End):
        probe.status, probe.detail = exc.status, exc.detail
    elif isinstance(exc, OutOfReach):
        probe.status, probe.detail = exc.status, str(exc)
    elif isinstance(exc, Blocked):
        probe.status, probe.detail = HostStatus.BLOCKED_BY_POLICY, str(exc)
    else:
        probe.status, probe.detail = _connect_status(exc), str(exc)[:300]


class _Session:
    """The reading and writing half of the dialogue, over plain TCP then TLS."""

    def __init__(self, stream: trio.abc.Stream, probe: SmtpProbe) -> None:
        self.stream = stream
        self.probe = probe
        self.parser = ReplyParser()
        self.received = 0

    async def send(self, line: str) -> None:
        self.probe.note("C", line)
        try:
            await self.stream.send_all(line.encode("ascii") + b"\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise _End(HostStatus.RESET,
                       f"connection lost while sending {line.split()[0]}: {exc}") from exc

    async def reply(self, what: str):
        """The next complete reply; the caller bounds the time."""
        while True:
            try:
                event = self.parser.next_event()
            except SMTPProtocolError as exc:
                raise _End(HostStatus.PROTOCOL_ERROR, f"{what}: {exc.kind}: {exc}") from exc
            if event is not NEED_DATA:
                if event is CLOSED:   # a clean end of stream
                    raise _End(HostStatus.PROTOCOL_ERROR,
                               f"{what}: the server closed the connection")
                self.probe.note("S", event.raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.probe.reply_code = event.code
                return event
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, OSError) as exc:
                raise _End(HostStatus.RESET, f"{what}: {exc or type(exc).__name__}") from exc
            self.received += len(data)
            if self.received > MAX_SESSION_BYTES:
                raise _End(HostStatus.PROTOCOL_ERROR,
                           f"{what}: more than {MAX_SESSION_BYTES} bytes")
            self.parser.feed(data)

    async def reply_within(self, timeout: float, what: str):
        with trio.move_on_after(timeout):
            return await self.reply(what)
        raise _End(HostStatus.READ_TIMEOUT, f"no complete {what} reply within {timeout:g} s")

    async def command(self, line: str, timeout: float, what: str):
        await self.send(line)
        return await self.reply_within(timeout, what)


async def _greeting(session: _Session, probe: SmtpProbe, timeouts: Timeouts) -> None:
    """The whole greeting, within its deadline; a refusal ends the dialogue."""
    probe.step = AttemptStep.GREETING
    greeting = await session.reply_within(timeouts.greeting, "greeting")
    probe.banner = greeting.raw.decode("utf-8", "replace")
    if greeting.code != 220:
        raise _End(_refusal(greeting), f"greeting: {greeting.code}")


async def _preamble(session: _Session, probe: SmtpProbe, *, ehlo_name: str,
                    timeouts: Timeouts) -> None:
    """EHLO, STARTTLS, 220 after the greeting: on return the stream is ready for a
    ClientHello."""
    probe.step = AttemptStep.EHLO
    ehlo = await session.command(f"EHLO {ehlo_name}", timeouts.command, "EHLO")
    if ehlo.code != 250:
        raise _End(_refusal(ehlo), f"EHLO: {ehlo.code}")
    probe.ehlo = sorted(ehlo.lines[1:])
    capabilities = parse_ehlo(ehlo)
    probe.starttls_offered = bool(capabilities and capabilities.starttls)
    if not probe.starttls_offered:
        await _quit(session)
        raise _End(HostStatus.NO_STARTTLS)

    probe.step = AttemptStep.STARTTLS
    ready = await session.command("STARTTLS", timeouts.command, "STARTTLS")
    if ready.code != 220:
        await _quit(session)
        raise _End(starttls_refusal_status(ready), f"STARTTLS: {ready.code}")
    try:
        session.parser.start_tls()
    except SMTPProtocolError as exc:
        raise _End(HostStatus.PROTOCOL_ERROR,
                   f"STARTTLS: {exc.kind}: plaintext after the 220") from exc


async def _dialogue(session: _Session, probe: SmtpProbe, *, ehlo_name: str, sni: str | None,
                    timeouts: Timeouts, context_factory: Callable[[], ssl.SSLContext]) -> None:
    await _preamble(session, probe, ehlo_name=ehlo_name, timeouts=timeouts)
    probe.sni = sni
    probe.step = AttemptStep.TLS
    tls = session.stream             # the same connection, upgraded in place
    assert isinstance(tls, Connection)
    with trio.move_on_after(timeouts.tls) as scope:
        try:
            await tls.start_tls(context_factory(), server_hostname=sni)
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            cause = exc.__cause__ or exc
            raise _End(HostStatus.TLS_HANDSHAKE_FAILED,
                       f"{type(cause).__name__}: {cause}"[:300]) from exc
    if scope.cancelled_caught:
        raise _End(HostStatus.TLS_HANDSHAKE_FAILED,
                   f"handshake not done within {timeouts.tls:g} s")
    probe.tls_version, probe.cipher_suite = negotiated(ssl_object(tls))
    probe.chain = peer_chain(ssl_object(tls))

    session.parser = ReplyParser()    # RFC 3207 §4.2: forget everything said in clear
    probe.step = AttemptStep.EHLO_TLS
    try:
        ehlo_tls = await session.command(f"EHLO {ehlo_name}", timeouts.command, "EHLO over TLS")
    except _End as end:  # TLS worked: the probe is a success whatever follows
        probe.detail = f"after TLS: {end.detail}"
        return
    if ehlo_tls.code == 250:
        probe.ehlo_tls = sorted(ehlo_tls.lines[1:])
    await _quit(session)


def _refusal(reply) -> HostStatus:
    try:
        return classify_refusal(reply)
    except ValueError:
        return HostStatus.PROTOCOL_ERROR


async def _quit(session: _Session) -> None:
    """Say goodbye politely, but never wait long for the answer.

    After the 221 the server closes the channel (RFC 5321 §4.1.1.10); waiting
    (bounded) for that close means the connection is over for the server too
    before the next one to this address starts (a per-IP limit still counting
    this one would answer the next with 421).
    """
    code = session.probe.reply_code      # the dialogue's last reply, not QUIT's 221
    try:
        with trio.move_on_after(QUIT_TIMEOUT):
            try:
                await session.command("QUIT", QUIT_TIMEOUT, "QUIT")
            except (_End, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            await drain(session.stream, READ_SIZE * 4, READ_SIZE)
    finally:
        session.probe.reply_code = code


@dataclass
class Upgrade:
    """Where ``starttls_preamble`` got to: ``stream`` is set once the 220 came."""

    probe: SmtpProbe
    stream: Connection | None = None


@asynccontextmanager
async def starttls_preamble(ip: str, port: int, *, policy: DestinationPolicy, ehlo_name: str,
                            timeouts: Timeouts = Timeouts(),
                            turns: trio.Semaphore | None = None) -> AsyncIterator[Upgrade]:
    """One connection through connect, greeting, EHLO, STARTTLS and its 220.

    Yields an ``Upgrade``: its ``stream`` is the bare TCP stream right after
    the 220 (nothing pipelined behind it), or None when the dialogue ended
    earlier (``probe.status`` says how, in the server vocabulary). The
    connection is closed when the block ends, whatever happened in it.
    ``turns``: as for ``probe_starttls``; the turn lasts until the block ends.
    """
    upgrade = Upgrade(SmtpProbe(ip, port))
    probe = upgrade.probe
    stream: Connection | None = None
    async with AsyncExitStack() as turn:
        try:
            try:
                stream = await _connect(ip, port, policy, timeouts)
                session = _Session(stream, probe)
                await _greeting(session, probe, timeouts)
                if turns is not None:
                    await turn.enter_async_context(turns)
                await _preamble(session, probe, ehlo_name=ehlo_name, timeouts=timeouts)
                upgrade.stream = stream
            except (_End, Blocked, OSError) as exc:
                _ended(probe, exc)
            yield upgrade
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)


async def _connect(ip: str, port: int, policy: DestinationPolicy,
                   timeouts: Timeouts) -> Connection:
    with trio.move_on_after(timeouts.connect):
        return await open_tcp(ip, port, policy)
    raise _End(HostStatus.CONNECT_TIMEOUT, f"no connection within {timeouts.connect:g} s")


async def probe_starttls(ip: str, port: int, *, policy: DestinationPolicy, ehlo_name: str,
                         sni: str | None,
                         timeouts: Timeouts = Timeouts(),
                         context_factory: Callable[[], ssl.SSLContext] = client_context,
                         turns: trio.Semaphore | None = None) -> SmtpProbe:
    """One connection, the whole dialogue; never raises for what the server did.

    An address the destination ``policy`` refuses ends as ``blocked_by_policy``
    before any packet is sent. ``turns``: the dialogue after the greeting
    waits for one of these (and holds it to the end), so at most that many
    connections at once are past their greeting; the deadlines after the
    greeting start once the turn is taken (see the module's docstring).
    """
    probe = SmtpProbe(ip, port)
    stream: trio.abc.Stream | None = None
    try:
        stream = await _connect(ip, port, policy, timeouts)
        session = _Session(stream, probe)
        try:
            await _greeting(session, probe, timeouts)
            async with turns if turns is not None else nullcontext():
                await _dialogue(session, probe, ehlo_name=ehlo_name, sni=sni,
                                timeouts=timeouts, context_factory=context_factory)
        finally:
            stream = session.stream
    except (_End, Blocked, OSError) as exc:
        _ended(probe, exc)
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
    return probe
