"""One listening socket per port for the whole of 127.0.0.0/8, and the connection log.

Theory of operation
-------------------
A world serves thousands of "servers" from one process. Instead of binding
thousands of addresses, each service binds ``0.0.0.0:port`` with
``SO_BINDTODEVICE`` set to ``lo`` (so nothing off this machine can reach it,
and any 127.x.y.z connects) plus ``[::1]:port``; the accepted socket's own
address (``getsockname()``) says which server the client meant, and the
handler picks the behaviour from it.

``serve_tcp`` runs the accept loops. A guard bounds concurrent
connections: once full, the loop stops accepting and the kernel backlog holds
the rest (a testbed must not fall over because a scanner misbehaves). Every
connection is written to the ``ConnectionLog`` when it ends — destination
ip and port, peer, start and end (Unix seconds), the service and how it
ended — as one JSON line appended with a single ``write`` on an
``O_APPEND`` descriptor: lines from several services (or processes) sharing
one file never interleave, and the log is complete on disk the moment a
connection closes, so a test can read it while the world still runs.
``read_connection_log`` and ``max_concurrency`` turn it back into facts such
as "never more than one connection at a time to 127.1.2.3".

Several processes (``survey world --serve --processes N``, serve.py): each
member of a ``Group`` binds the same port with ``SO_REUSEPORT``, and a
classic BPF program on the group (``SO_ATTACH_REUSEPORT_CBPF``) hands every
connection to the member ``destination IPv4 address mod N``. So all the
connections to one address land in one process, and what a server keeps
per address (greylisting counts, per-IP limits, postscreen's memory,
``held_open``) stays exact as in one process. IPv6 (only ``::1`` on ``lo``)
is served by member 0. Each member appends to the same connection log;
``ConnectionRecord.pid`` says which process served a connection.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import struct
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 4096
BACKLOG = 4096    # accept queue (capped by net.core.somaxconn): a scan opening thousands
                  # at once must not see SYNs dropped (connect_timeout) while the loop catches up


@dataclass(frozen=True)
class Connection:
    """An accepted connection and the address the client asked for."""

    stream: trio.SocketStream
    ip: str                # destination address, canonical text (RFC 5952 for IPv6)
    port: int
    peer: str
    peer_port: int


@dataclass(frozen=True)
class ConnectionRecord:
    """One line of the connection log."""

    service: str
    ip: str
    port: int
    peer: str
    peer_port: int
    start: float           # Unix time, seconds
    end: float
    outcome: str           # "closed", "cancelled" or "error: <type>"
    # other connections to ``ip`` the client still held when it arrived, as the process
    # that served this one saw them: exact with several processes too, as every connection
    # to one address is served by the same process (Group)
    held_open: int = 0
    pid: int = 0           # the world process that served it (0: a log from before)


Handler = Callable[[Connection], Awaitable[None]]


def reset(stream: trio.SocketStream) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def canonical_ip(address: str) -> str:
    """RFC 5952 text for an address as a socket reports it (drops a zone id)."""
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


class ConnectionLog:
    """Appends one JSON line per finished connection to ``path``.

    ``ConnectionLog(None)`` keeps records in memory only (``records``), for
    tests that don't need a file; a file-backed log also keeps them unless
    ``keep=False`` (a 100,000-domain world makes many connections).
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, keep: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.keep = keep or path is None
        self.records: list[ConnectionRecord] = []
        # ip -> the sockets being served there, for ConnectionRecord.held_open
        self.open_at: dict[str, set[trio.socket.SocketType]] = defaultdict(set)
        self._fd: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: ConnectionRecord) -> None:
        if self.keep:
            self.records.append(record)
        if self._fd is not None:
            line = json.dumps(asdict(record), separators=(",", ":")) + "\n"
            os.write(self._fd, line.encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ConnectionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_connection_log(path: str | os.PathLike[str]) -> list[ConnectionRecord]:
    """The records of a log file (a torn last line, from a killed world, is skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(ConnectionRecord(**json.loads(line)))
            except (ValueError, TypeError):
                continue
    return records


def max_concurrency(records: Iterable[ConnectionRecord], *, slack: float = 0.0
                    ) -> dict[str, int]:
    """Per destination ip, the most connections that were open at the same time.

    A connection that ends exactly when another starts does not overlap it.
    ``slack`` forgives the server's own lag: the world notes a connection's
    end when its handler finishes, which can be a few milliseconds after the
    client hung up and opened the next one (an event loop serving thousands of
    connections). Ends are moved earlier by ``slack`` seconds, never before
    their start.
    """
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in records:
        events[r.ip].append((r.start, 1))
        events[r.ip].append((max(r.start, r.end - slack), -1))
    peaks = {}
    for ip, evs in events.items():
        evs.sort()  # at equal times -1 sorts before +1: touching intervals don't overlap
        open_now = peak = 0
        for _, delta in evs:
            open_now += delta
            peak = max(peak, open_now)
        peaks[ip] = peak
    return peaks


def held_by_client(sockets: Iterable[trio.socket.SocketType]) -> int:
    """How many of these accepted sockets the client has not closed yet.

    The kernel's TCP state says it exactly, however far the world's event
    loop lags: a client's FIN or RST moves the server side out of
    ESTABLISHED during the client's own ``close()`` on loopback, before it
    can open its next connection. A politeness check built on this cannot
    flake on a loaded machine as one built on the handlers' end times can.
    """
    held = 0
    for sock in sockets:
        try:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        except OSError:
            continue
        held += state == TCP_ESTABLISHED
    return held


TCP_ESTABLISHED = 1    # linux/tcp_states.h


def connections_by_ip(records: Iterable[ConnectionRecord]) -> dict[str, int]:
    """Per destination ip, how many connections were made."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.ip] += 1
    return dict(counts)


@dataclass(frozen=True)
class Group:
    """This process's place among ``size`` processes serving one port (see above)."""

    index: int
    size: int


SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)  # asm-generic
_SKF_NET_OFF = -0x100000   # linux/filter.h: classic BPF loads relative to the IP header


def steer_by_destination(sock: socket.socket | trio.socket.SocketType, size: int) -> None:
    """Attach to ``sock``'s reuseport group: the member is (IPv4 destination) mod ``size``.

    The program sees the packet from its network header through SKF_NET_OFF;
    it loads the destination address (bytes 16-19 of the IPv4 header), takes it
    modulo ``size`` and returns that index into the group (an index past the
    group's end, while members are still joining, falls back to the kernel's hash).
    """
    import ctypes

    program = [(0x20, 0, 0, (_SKF_NET_OFF + 16) & 0xFFFFFFFF),  # ld [net + 16]
               (0x94, 0, 0, size),                                 # mod #size
               (0x16, 0, 0, 0)]                                    # ret a
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxQ" if struct.calcsize("P") == 8 else "HxxI", len(program),
                        ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def reserve_port(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM,
                 host: str | None = None, port: int = 0) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket holding a port for a group's members.

    The members bind the same port (SO_REUSEPORT on both sides, same user);
    close the reservation once they listen (a UDP reservation would receive
    datagrams meant for them). ``host`` None: the address ``open_listeners``
    binds for ``family`` (all of 127/8 on ``lo``, or ``::1``).
    """
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if host is None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            host = "::1" if family == socket.AF_INET6 else "0.0.0.0"
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_listeners(port: int, *, ipv6: bool = True, reuse_port: bool = False,
                         group: Group | None = None) -> list[trio.socket.SocketType]:
    """Bind ``0.0.0.0:port`` on ``lo`` (and ``[::1]`` on the same port); port 0 picks one.

    ``reuse_port``: SO_REUSEPORT on the IPv4 listener, so that exact-address
    listeners of the same user can share the port (latency.DeadListeners).
    ``group``: this process is one of several listening on ``port`` (reserved
    with ``reserve_port``): SO_REUSEPORT, steered by destination; IPv6 in
    member 0 only.
    """
    if group is not None:
        reuse_port = True
        ipv6 = ipv6 and group.index == 0
    sock4 = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock4.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        await sock4.bind(("0.0.0.0", port))
        sock4.listen(BACKLOG)
        if group is not None:
            steer_by_destination(sock4, group.size)
    except BaseException:
        sock4.close()
        raise
    sockets = [sock4]
    if ipv6:
        port = sock4.getsockname()[1]
        sock6 = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if group is not None:      # the reservation holds [::1]:port with SO_REUSEPORT
                sock6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock6.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            await sock6.bind(("::1", port))
            sock6.listen(BACKLOG)
            sockets.append(sock6)
        except OSError as exc:  # a kernel without IPv6 on lo: serve IPv4 only, say so
            sock6.close()
            log.warning("no IPv6 listener on [::1]:%d: %s", port, exc)
        except BaseException:
            sock6.close()
            sock4.close()
            raise
    return sockets


_ACCEPT_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS,
                     errno.ECONNABORTED, errno.EPROTO}


class _Guard:
    """Counts running handlers; the accept loops wait for room before accepting."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def wait_room(self) -> None:
        while self.active >= self.limit:
            await self._lot.park()

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        self._lot.unpark_all()


async def serve_tcp(handler: Handler, *, port: int, connlog: ConnectionLog, service: str,
                    max_connections: int = DEFAULT_MAX_CONNECTIONS, ipv6: bool = True,
                    reuse_port: bool = False, group: Group | None = None,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept on ``port`` for all of 127/8 (and ::1) and run ``handler`` per connection.

    Reports the bound port through ``task_status.started(port)``. At most
    ``max_connections`` handlers run at once; beyond that, connections wait
    in the kernel backlog (or, one per listener, accepted but not yet served).
    The handler owns the dialogue; this function closes the stream and logs
    the connection however the handler ends. Runs until cancelled.
    """
    sockets = await open_listeners(port, ipv6=ipv6, reuse_port=reuse_port, group=group)
    bound = sockets[0].getsockname()[1]
    guard = _Guard(max_connections)
    try:
        async with trio.open_nursery() as nursery:
            for sock in sockets:
                nursery.start_soon(_accept_loop, sock, handler, connlog, service, guard,
                                   nursery)
            task_status.started(bound)
    finally:
        for sock in sockets:
            sock.close()


async def _accept_loop(sock: trio.socket.SocketType, handler: Handler, connlog: ConnectionLog,
                       service: str, guard: _Guard, nursery: trio.Nursery) -> None:
    while True:
        await guard.wait_room()
        try:
            conn_sock, _ = await sock.accept()
        except OSError as exc:
            if exc.errno in _ACCEPT_TRANSIENT:
                log.warning("accept on %s: %s", service, exc)
                await trio.sleep(0.05)
                continue
            raise
        try:
            await guard.wait_room()  # another listener may have taken the room meanwhile
        except BaseException:
            conn_sock.close()
            raise
        guard.enter()  # no checkpoint between the check and the count
        nursery.start_soon(_run_one, conn_sock, handler, connlog, service, guard)


async def _run_one(conn_sock: trio.socket.SocketType, handler: Handler, connlog: ConnectionLog,
                   service: str, guard: _Guard) -> None:
    start = time.time()
    outcome = "closed"
    stream = trio.SocketStream(conn_sock)
    local = conn_sock.getsockname()
    try:
        remote = conn_sock.getpeername()
    except OSError:  # reset before we looked
        remote = ("0.0.0.0", 0)
    conn = Connection(stream, canonical_ip(local[0]), local[1], canonical_ip(remote[0]),
                      remote[1])
    neighbours = connlog.open_at[conn.ip]
    held_open = held_by_client(neighbours)
    neighbours.add(conn_sock)
    try:
        await handler(conn)
    except trio.Cancelled:
        outcome = "cancelled"
        raise
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        outcome = "closed"
    except Exception as exc:  # one broken dialogue must not take the world down
        outcome = f"error: {type(exc).__name__}"
        log.exception("%s handler failed for %s:%d", service, conn.ip, conn.port)
    finally:
        neighbours.discard(conn_sock)
        if not neighbours and connlog.open_at.get(conn.ip) is neighbours:
            del connlog.open_at[conn.ip]
        try:
            stream.socket.close()
        finally:
            guard.leave()
            connlog.write(ConnectionRecord(service, conn.ip, conn.port, conn.peer,
                                           conn.peer_port, start, time.time(), outcome,
                                           held_open, os.getpid()))
