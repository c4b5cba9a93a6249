"""The testbed's TCP listener, connection log and SMTP server, against real clients."""

from __future__ import annotations

import socket

import pytest
import trio

from survey.testbed.listen import (
    Connection, ConnectionLog, ConnectionRecord, connections_by_ip, max_concurrency,
    open_listeners, read_connection_log, serve_tcp,
)


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
