"""Hello probes: one connection, the SMTP preamble, one hand-built ClientHello, its answer.

Theory of operation
-------------------
Enumerating versions and cipher suites means many short TLS conversations
that OpenSSL cannot hold (SSLv3, RC4, export, NULL, offers in an order we
choose). Each hello probe is one TCP connection:

  connect -> whole greeting -> EHLO -> STARTTLS -> 220      (net/smtp.py, shared)
  -> our ClientHello (proto/tlshello.build_client_hello)
  -> read until the answer is decided -> close

"Decided" means the ServerHelloParser produced a ServerHello, a
HelloRetryRequest or a fatal alert (or close_notify), the server closed or
reset the connection, or its bytes stopped being TLS. The handshake is never
finished: we hang up right after the decision, so no key exchange happens
and the server spends one ServerHello on us.

Bounds: the whole answer has one deadline (``Timeouts.tls``, like the
handshake of a starttls probe), reads are ``READ_SIZE`` at a time and stop
after ``MAX_ANSWER_BYTES`` (a ServerHello fits in one record; 64 KiB leaves
room for a server that sends its whole first flight in the clear), and the
parser keeps at most one unfinished record. A server that never decides ends
as ``transport="timeout"`` or ``"overflow"``.

Hanging up: after a decision we half-close and wait (at most
``HANG_UP_TIMEOUT``, reading at most ``MAX_DRAIN_BYTES`` of the server's
remaining flight) for the server to close its side. Only then is the
connection over for the server too: a server that counts our open
connections (a per-IP limit answering 421) must not still see this one when
the next hello to the same address arrives, and the politeness cap of one
connection at a time holds from the server's point of view, not just ours.
A server that closed, reset, stalled or flooded is not waited for.

The result (``HelloAnswer``) carries what ``proto.enumerate.outcome_from_events``
needs: the events, the parser's error and how the transport ended; or, when
the SMTP part failed (a 421 mid-enumeration, a connect timeout...), the
preamble's status from the server vocabulary, so the caller can back off.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from survey.net.guard import DestinationPolicy
from survey.net.smtp import Timeouts, starttls_preamble
from survey.net.transport import Connection, drain
from survey.proto.enumerate import Offer, Outcome, outcome_from_events
from survey.proto.tlshello import (
    CLOSED,
    NEED_DATA,
    Alert,
    Event,
    HelloRetryRequest,
    ServerHello,
    ServerHelloParser,
    TLSProtocolError,
)
from survey.vocabulary import HostStatus

READ_SIZE = 4096
MAX_ANSWER_BYTES = 64 * 1024
HANG_UP_TIMEOUT = 1.0
MAX_DRAIN_BYTES = 64 * 1024
DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class HelloAnswer:
    """What one hello probe learnt.

    ``status`` is the SMTP preamble's status (``ok`` when the hello was sent);
    ``transport`` is how the connection ended before a decision: None (decided),
    ``closed``, ``reset``, ``timeout`` or ``overflow``.
    """

    status: HostStatus
    detail: str | None = None
    events: tuple[Event, ...] = ()
    error: TLSProtocolError | None = None
    transport: str | None = None
    received: int = 0

    @property
    def sent(self) -> bool:
        """The preamble worked and the hello went out."""
        return self.status == HostStatus.OK

    @property
    def spoke_tls(self) -> bool:
        """The server answered with TLS records (a ServerHello, an alert...)."""
        return bool(self.events)

    def outcome(self, offer: Offer) -> Outcome:
        return outcome_from_events(offer, self.events, self.error, self.transport)


def _decisive(event: Event) -> bool:
    if isinstance(event, (ServerHello, HelloRetryRequest)):
        return True
    return isinstance(event, Alert) and (event.fatal or event.description == 0)


async def _read_answer(stream: Connection, max_bytes: int
                       ) -> tuple[list[Event], TLSProtocolError | None, str | None, int]:
    """Feed the server's bytes to the parser until the answer is decided; caller bounds time."""
    parser = ServerHelloParser()
    events: list[Event] = []
    received = 0
    while True:
        try:
            event = parser.next_event()
        except TLSProtocolError as exc:
            return events, exc, None, received
        if event is CLOSED:
            return events, None, "closed", received
        if event is not NEED_DATA:
            events.append(event)
            if _decisive(event):
                return events, None, None, received
            continue
        if received >= max_bytes:
            return events, None, "overflow", received
        try:
            data = await stream.receive_some(min(READ_SIZE, max_bytes - received))
        except (trio.BrokenResourceError, OSError):
            return events, None, "reset", received
        received += len(data)
        parser.feed(data)


async def hello_probe(ip: str, port: int, hello: bytes, *, policy: DestinationPolicy,
                      ehlo_name: str, timeouts: Timeouts = DEFAULT_TIMEOUTS,
                      max_bytes: int = MAX_ANSWER_BYTES,
                      turns: trio.Semaphore | None = None) -> HelloAnswer:
    """One connection: the SMTP preamble, ``hello`` (ClientHello records), the answer.

    Never raises for what the server did; the connection is closed before
    returning, without finishing the handshake.
    """
    async with starttls_preamble(ip, port, policy=policy, ehlo_name=ehlo_name,
                                 timeouts=timeouts, turns=turns) as upgrade:
        stream = upgrade.stream
        if stream is None:
            return HelloAnswer(upgrade.probe.status, upgrade.probe.detail)
        result: tuple[list[Event], TLSProtocolError | None, str | None, int] | None = None
        with trio.move_on_after(timeouts.tls):
            try:
                await stream.send_all(hello)
            except (trio.BrokenResourceError, OSError) as exc:
                return HelloAnswer(HostStatus.OK, f"hello not sent: {exc}", transport="reset")
            result = await _read_answer(stream, max_bytes)
        if result is None:
            return HelloAnswer(HostStatus.OK, f"no decision within {timeouts.tls:g} s",
                               transport="timeout")
        events, error, transport, received = result
        if transport is None:
            await _hang_up(stream, min(HANG_UP_TIMEOUT, timeouts.tls))
        return HelloAnswer(HostStatus.OK, None, tuple(events), error, transport, received)


async def _hang_up(stream: Connection, timeout: float) -> None:
    """Half-close, then wait (bounded) until the server has closed its side too."""
    with trio.move_on_after(timeout):
        try:
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        await drain(stream, MAX_DRAIN_BYTES, READ_SIZE)
