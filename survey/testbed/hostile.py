"""Hostile servers: scripts that try to make a client hang, hoard memory or misread.

Theory of operation
-------------------
Each script is what one hostile behaviour (model.py) sends, written so that
the *server* stays cheap too: a world serves thousands of connections from
one process, so every script

* sends from a few shared, precomputed blocks (a 10 MB line is 160 sends of
  one 64 KiB block, never a 10 MB buffer), and never more than ``size`` or
  ``MAX_SEND`` bytes;
* ends after ``spec.duration`` seconds at the latest (``move_on_after``), or
  as soon as the client hangs up (a send fails, or a read sees the end), so
  the connection log shows when the *client* gave up;
* reads what the client says only into a bounded sink (``hang_up``).

What a correct client reports for each (the truth module states it):

  endless_banner   protocol_error: the reply caps (lines, bytes) trip within
                   milliseconds, long before the greeting deadline
  long_line        protocol_error: the line cap trips at the first few KiB
  garbage          protocol_error: not a reply (no digits, no line grammar)
  tls_truncated    tls_handshake_failed: the record never completes; the TLS
                   deadline ends the wait
  slow_headers     (policy host) fetch_error / timeout: each byte arrives well
                   within any per-read timeout, so only a deadline on the whole
                   fetch ends it
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Iterator

import trio

from survey.net.transport import drain
from survey.testbed.model import PolicyHostSpec, SmtpServerSpec

BLOCK = 64 * 1024
MAX_SEND = 64 * 1024 * 1024        # no script sends more than this in one connection
MAX_SINK = 1024 * 1024             # what we read (and drop) from a client while waiting
TLS_RECORD_LENGTH = 0x4000         # what tls_truncated's record header announces

_FILL = b"x" * BLOCK


async def hang_up(stream: trio.abc.ReceiveStream, duration: float) -> None:
    """Read and drop what the client sends until it hangs up, at most ``duration`` s."""
    with trio.move_on_after(duration):
        if not await drain(stream, MAX_SINK, BLOCK):
            await trio.sleep_forever()   # a flood of input: stop reading, wait out the duration


def banner_block(spec: SmtpServerSpec) -> bytes:
    """About ``BLOCK`` bytes of ``220-`` continuation lines of the greeting."""
    lines = [f"{spec.greeting.code}-{text}\r\n".encode()
             for text in spec.greeting.lines or ("",)]
    out = bytearray()
    for line in itertools.cycle(lines):
        if len(out) + len(line) > BLOCK:
            break
        out += line
    return bytes(out or lines[0])


async def endless_banner(stream: trio.abc.SendStream, spec: SmtpServerSpec) -> None:
    """Greeting continuation lines as fast as the client takes them, never the last one."""
    block = banner_block(spec)
    limit = min(spec.size or MAX_SEND, MAX_SEND)
    with trio.move_on_after(spec.duration):
        sent = 0
        while sent < limit:
            await stream.send_all(block)
            sent += len(block)
        await trio.sleep_forever()


async def long_line(stream: trio.abc.Stream, spec: SmtpServerSpec) -> None:
    """``220 <hostname> `` and then ``size`` bytes of the same line, no line end."""
    size = min(spec.size, MAX_SEND)
    with trio.move_on_after(spec.duration):
        await stream.send_all(f"{spec.greeting.code} {spec.hostname} ".encode())
        for start in range(0, size, BLOCK):
            await stream.send_all(_FILL[:min(BLOCK, size - start)])
        await hang_up(stream, spec.duration)


def garbage_bytes(spec: SmtpServerSpec) -> bytes:
    """``size`` bytes of noise derived from the address; the first one is never ASCII."""
    data = bytearray(hashlib.shake_256(f"garbage:{spec.ip}".encode()).digest(
        min(spec.size, MAX_SEND) or 1))
    data[0] |= 0x80
    return bytes(data)


async def garbage(stream: trio.abc.SendStream, spec: SmtpServerSpec) -> None:
    """Noise instead of a greeting, then close."""
    with trio.move_on_after(spec.duration or 10):
        await stream.send_all(garbage_bytes(spec))


def truncated_record(spec: SmtpServerSpec) -> bytes:
    """A handshake record header announcing ``TLS_RECORD_LENGTH`` bytes, and ``size`` of them.

    The bytes that do come start like a ServerHello (RFC 8446 §4 handshake
    header, then legacy_version 0x0303), so a client keeps waiting for more.
    """
    size = max(6, min(spec.size, TLS_RECORD_LENGTH - 1))
    body = bytes([2]) + (TLS_RECORD_LENGTH - 4).to_bytes(3, "big") + b"\x03\x03"
    body += hashlib.shake_256(f"hello:{spec.ip}".encode()).digest(size - len(body))
    return b"\x16\x03\x03" + TLS_RECORD_LENGTH.to_bytes(2, "big") + body


async def tls_truncated(stream: trio.abc.Stream, spec: SmtpServerSpec) -> None:
    """After the 220 to STARTTLS: take the ClientHello, start a record, never finish it."""
    with trio.move_on_after(spec.duration):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            if not await stream.receive_some(BLOCK):
                return
        await stream.send_all(truncated_record(spec))
        await hang_up(stream, spec.duration)


def slow_head_bytes() -> Iterator[bytes]:
    """A response head that never ends: a status line, then header fields forever."""
    yield from (bytes([b]) for b in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
    for i in itertools.count(1):
        yield from (bytes([b]) for b in f"X-Slow-{i}: please wait\r\n".encode())


async def slow_headers(stream: trio.abc.Stream, spec: PolicyHostSpec) -> None:
    """Slowloris: the response head one byte every ``delay`` seconds, until ``duration``."""
    with trio.move_on_after(spec.duration) as scope:
        async with trio.open_nursery() as nursery:
            async def watch() -> None:
                await hang_up(stream, spec.duration)
                scope.cancel()   # the client gave up: so do we

            nursery.start_soon(watch)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                for byte in slow_head_bytes():
                    await stream.send_all(byte)
                    await trio.sleep(max(spec.delay, 0.001))
            scope.cancel()
