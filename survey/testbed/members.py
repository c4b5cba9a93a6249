"""One world served by N processes: ``survey world --serve --processes N``.

Theory of operation
-------------------
One process serves a whole world on one event loop, so a scan that holds
thousands of connections (benchmarks/slow.py) can outrun it on a machine
with cores to spare. With ``--processes N`` the command's own process is a
supervisor: it loads the world once, makes the PKI (so every member serves
certificates of the same CA, and the same shared leaf keys that the DANE
records name), reserves the ports (listen.reserve_port: bound, not
listening, ``SO_REUSEPORT``), then forks N members. Each member runs the
world's servers on its own trio loop, listening on the reserved ports with
``SO_REUSEPORT``:

  * SMTP and HTTPS: a reuseport group steered by destination address
    (listen.Group): every connection to one address is served by the same
    member, so what a server keeps per address -- greylisting counts,
    per-IP limits, postscreen's memory, the connection log's ``held_open``
    -- is exact as in one process. Dead addresses' listeners (latency.py)
    and IPv6 (``::1``) are member 0's.
  * DNS: UDP and TCP spread by the kernel's hash over the members (each
    query comes from a fresh port); the answers are the same from every
    member.

Every member appends to the same connection log (single ``O_APPEND`` writes;
``pid`` names the member). When all members listen, the supervisor closes
its reservations and writes world.json (its own pid: a scanner checks that
the world is alive by it). SIGINT or SIGTERM stops the members (SIGTERM to
each, SIGKILL after 30 s) and world.json says ``stopped``; a member that
dies stops the world (exit status 1).

Certificates: each member signs its own leaves on demand, with the keys the
supervisor made and the serial numbers and signatures a certificate's content
fixes (pki.py), so a member signs the leaf another would: one host name
presents the same certificate at every address, as from one process. (The
chain kinds' keys below their anchors are made on first use, after the fork:
their chains may differ between members.) Nothing in the truth depends on the
bytes.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import trio

from survey.interrupts import INTERRUPTED
from survey.store.lock import exclusive
from survey.testbed import listen
from survey.testbed.model import World

STOP_GRACE = 30.0          # seconds a member gets to stop after SIGTERM
READY_WITHIN = 300.0       # seconds the members get to listen
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


def reserve(world: World, ports: dict[str, int]) -> tuple[dict[str, int], list[socket.socket]]:
    """Ports for every service (0: a free one) and the sockets that hold them."""
    for _ in range(20):
        held: list[socket.socket] = []
        try:
            chosen = {}
            for service in ("smtp", "https"):
                sock4 = listen.reserve_port(port=ports[service])
                held.append(sock4)
                chosen[service] = sock4.getsockname()[1]
                try:
                    held.append(listen.reserve_port(socket.AF_INET6, port=chosen[service]))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE and not ports[service]:   # pick again
                        raise
                    # no IPv6 on lo: member 0 serves IPv4 only (listen.open_listeners)
            family = socket.AF_INET6 if ":" in world.resolver else socket.AF_INET
            udp = listen.reserve_port(family, socket.SOCK_DGRAM, world.resolver, ports["dns"])
            held.append(udp)
            chosen["dns"] = udp.getsockname()[1]
            held.append(listen.reserve_port(family, socket.SOCK_STREAM, world.resolver,
                                            chosen["dns"]))
            return chosen, held
        except OSError:
            for sock in held:
                sock.close()
            if all(ports.values()):
                raise
    raise OSError("no free ports for the world's services")


def serve_members(world_dir: Path, count: int, *, dns_port: int | None,
                  smtp_port: int | None, https_port: int | None,
                  max_connections: int | None, announce: bool) -> int:
    """Run the world in ``count`` member processes until SIGINT or SIGTERM; exit status."""
    from survey.testbed import serve

    with exclusive(world_dir, "survey world --serve"):
        (world_dir / serve.WORLD_JSON).unlink(missing_ok=True)
        world = World.load(world_dir / serve.SPEC)
        ports = serve._ports(world, dns_port, smtp_port, https_port)
        gc.freeze()                    # shared copy-on-write with the members
        pki = serve._pki(world_dir)
        if pki is not None:            # the keys DANE records name: the same in every member
            pki.leaf_key("ec")
            if world.zones:
                pki.leaf_key("rsa")
        chosen, held = reserve(world, ports)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        ready_r, ready_w = os.pipe()
        pids: list[int] = []
        info: dict[str, Any] = {}
        stopped_by: int | None = None
        try:
            for index in range(count):
                pid = os.fork()
                if pid == 0:                                 # the member
                    os.close(ready_r)
                    for sock in held:
                        sock.close()
                    os._exit(_member(world_dir, world, pki, chosen,
                                     listen.Group(index, count), max_connections, ready_w))
                pids.append(pid)
            os.close(ready_w)
            ready_w = -1
            stopped_by, failed = _wait_ready(ready_r, count, pids)
            for sock in held:
                sock.close()
            if stopped_by is None and not failed:
                dns = (world.resolver, chosen["dns"])
                smtp = chosen["smtp"] if pki is not None else None
                https = chosen["https"] if pki is not None else None
                services = {"dns": "ready", "smtp": "ready" if smtp else "unavailable",
                            "https": "ready" if https else "unavailable"}
                info = serve.world_json(world_dir, world, dns=dns, smtp=smtp, https=https,
                                        services=services)
                info["processes"] = {"count": count, "pids": list(pids)}
                serve._write_json_atomic(world_dir / serve.WORLD_JSON, info)
                if announce:
                    print(serve._summary(info) + f"\n  served by {count} processes",
                          file=sys.stderr, flush=True)
                stopped_by, failed = _wait_stop(pids)
            if stopped_by is not None and announce:
                print(f"survey world: {signal.Signals(stopped_by).name}, stopping",
                      file=sys.stderr, flush=True)
        finally:
            _stop(pids)
            os.close(ready_r)
            if ready_w >= 0:
                os.close(ready_w)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            if info:
                serve._write_json_atomic(world_dir / serve.WORLD_JSON, serve._stopped(info))
    if failed:
        print(f"survey world: a member process failed ({failed}); stopped",
              file=sys.stderr)
        return 1
    return INTERRUPTED if stopped_by == signal.SIGINT else 0


def _member(world_dir: Path, world: World, pki: Any, ports: dict[str, int],
            group: listen.Group, max_connections: int | None, ready: int) -> int:
    """One member's life (in the forked child): serve until SIGINT or SIGTERM."""
    from survey.testbed import serve

    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    async def main() -> None:
        connlog = serve._connection_log(world_dir, pki)
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    await serve._start_services(nursery, world, pki, connlog, ports,
                                                max_connections, group)
                    os.write(ready, b"+")
                    os.close(ready)
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        break
        finally:
            if connlog is not None:
                connlog.close()

    try:
        trio.run(main)
    except BaseException:       # noqa: BLE001 - the supervisor reports it; say why here
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


def _wait_ready(ready: int, count: int, pids: list[int]) -> tuple[int | None, str | None]:
    """Until every member listens: (a stopping signal, or why a member failed)."""
    got = 0
    deadline = time.monotonic() + READY_WITHIN
    while got < count:
        if time.monotonic() > deadline:
            return None, f"not listening after {READY_WITHIN:.0f} s"
        readable, _, _ = select.select([ready], [], [], 0.2)
        if readable:
            data = os.read(ready, count)
            got += len(data)
            if not data:
                return None, "a member exited before it listened"
        info = signal.sigtimedwait(_SIGNALS, 0)
        if info is not None:
            if info.si_signo in (signal.SIGINT, signal.SIGTERM):
                return info.si_signo, None
            dead = _reap(pids)
            if dead:
                return None, dead
    return None, None


def _wait_stop(pids: list[int]) -> tuple[int | None, str | None]:
    """Until SIGINT or SIGTERM (the signal), or a member's end (why)."""
    while True:
        info = signal.sigwaitinfo(_SIGNALS)
        if info.si_signo in (signal.SIGINT, signal.SIGTERM):
            return info.si_signo, None
        dead = _reap(pids)
        if dead:
            return None, dead


def _reap(pids: list[int]) -> str | None:
    """Collect ended members (removed from ``pids``); what ended them, if any did."""
    ended = []
    for pid in list(pids):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            pids.remove(pid)
            ended.append(f"pid {pid}: exit status {os.waitstatus_to_exitcode(status)}")
    return "; ".join(ended) or None


def _stop(pids: list[int]) -> None:
    """SIGTERM every member still running, SIGKILL after STOP_GRACE, and reap them."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    while pids and time.monotonic() < deadline:
        _reap(pids)
        if pids:
            time.sleep(0.05)
    for pid in list(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        pids.remove(pid)
