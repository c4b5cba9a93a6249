"""Internet latency on loopback: a delay line for replies, dead addresses, slow DNS answers.

Theory of operation
-------------------
On loopback every packet arrives at once, so a world that should answer like
the Internet (profiles/realistic.json, model.py's latency fields) simulates
the delays in its own servers, with no root and no traffic control on the
shared ``lo``:

  * ``DelayLine`` wraps a server's stream: every ``send_all`` is queued with a
    due time ``rtt`` seconds ahead and a pump task writes it then, in order.
    The server never blocks on its own delay, so a reply that follows another
    (TLS 1.3 session tickets, then the EHLO answer) is not delayed twice: the
    client sees each reply one round trip after its request, as on a network
    path whose whole round trip is on the way back. The TCP handshake itself
    stays instant (the greeting's wait stands for it).
  * ``DeadListeners`` makes addresses that never complete a TCP handshake: a
    listening socket bound to the exact address and the world's port, with a
    backlog of 0 that one connection of our own fills and that is never
    accepted. The kernel drops every later SYN to a listener whose accept
    queue is full (``tcp_conn_request``), so a client's connect times out
    exactly as towards a filtered or vanished host. The exact-address
    listener takes precedence over the world's wildcard listener; both need
    ``SO_REUSEPORT`` to share the port (same user), nothing else. The filling
    connection is closed at once: its other end stays in the queue until
    accepted, which is never, so a dead address costs one descriptor, not two
    (a 100,000-domain realistic world has about 11,000 of them, and a
    container's open-files limit may be 20,000).
  * ``dns_delay`` is the delay of one DNS answer: a quantile of the world's
    ``dns_latency`` from a hash of the question (name, case-folded, type and
    class), so a repeated question waits the same.
"""

from __future__ import annotations

import math
import socket
import zlib

import trio

from survey.testbed.model import Latency


class DelayLine(trio.abc.HalfCloseableStream):
    """A stream whose sent bytes arrive ``delay`` seconds after they were written."""

    def __init__(self, transport: trio.abc.Stream, delay: float,
                 nursery: trio.Nursery) -> None:
        self.transport = transport
        self.delay = delay
        self._send, self._queue = trio.open_memory_channel[tuple[float, bytes]](math.inf)
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()
        self._error: BaseException | None = None
        nursery.start_soon(self._pump)

    async def _pump(self) -> None:
        async for due, data in self._queue:
            await trio.sleep_until(due)
            try:
                if self._error is None:
                    await self.transport.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._error = exc
            finally:
                self._pending -= 1
                if not self._pending:
                    self._idle.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise trio.BrokenResourceError("the delayed send failed") from self._error
        self._pending += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._send.send_nowait((trio.current_time() + self.delay, bytes(data)))
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.transport.receive_some(max_bytes)

    async def flush(self) -> None:
        """Wait until everything written so far has been sent (or failed)."""
        await self._idle.wait()

    async def send_eof(self) -> None:
        await self.flush()
        send_eof = getattr(self.transport, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def aclose(self) -> None:
        """Send what is queued (bounded by ``2 x delay + 1 s``), stop the pump, close."""
        with trio.move_on_after(2 * self.delay + 1):
            await self.flush()
        self._send.close()
        await self.transport.aclose()

    async def stop(self) -> None:
        """Send what is queued, then let the pump end (the transport stays open)."""
        with trio.move_on_after(2 * self.delay + 1):
            await self.flush()
        self._send.close()


class DeadListeners:
    """Listening sockets on exact addresses whose handshakes never complete (see above)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def open(self, ips: list[str], port: int) -> None:
        for ip in ips:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            filler = socket.socket(family, socket.SOCK_STREAM)
            self.sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind((ip, port))
            listener.listen(0)
            with filler:        # fills the accept queue of one for good: no SYN gets in
                filler.connect((ip, port))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def question_key(wire: bytes) -> bytes | None:
    """The question of a DNS query (name case-folded, type, class), or None if malformed."""
    i = 12
    while i < len(wire):
        n = wire[i]
        if n == 0:
            end = i + 5
            return wire[12:end].lower() if end <= len(wire) else None
        if n & 0xC0:
            return None
        i += n + 1
    return None


def dns_delay(latency: Latency | None, wire: bytes, seed: int) -> float:
    """Seconds to wait before answering ``wire`` (0 without a latency model)."""
    if latency is None:
        return 0.0
    key = question_key(wire)
    if key is None:
        return 0.0
    u = (zlib.crc32(key, seed & 0xFFFFFFFF) + 0.5) / 2**32
    return latency.at(u)
