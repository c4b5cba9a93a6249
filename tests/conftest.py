"""Test-wide safety net: no test may send a packet beyond loopback.

Every socket connect/sendto in the test process is checked; an address
outside 127.0.0.0/8 and ::1 raises at once, naming the address, so a test
that would reach a real resolver or mail server fails loudly instead of
leaking. (trio's and dnspython's sockets are stdlib sockets underneath.)
Libraries may swallow the exception (a resolver tries its next server), so
every attempt is also recorded, and the test that made it fails afterwards.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from tests.requirements import require


class NonLoopbackTraffic(RuntimeError):
    pass


VIOLATIONS: list[str] = []


def check_loopback(address) -> None:
    if not isinstance(address, tuple):      # AF_UNIX paths
        return
    host = address[0]
    if host == "localhost":
        return
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        VIOLATIONS.append(host)
        raise NonLoopbackTraffic(f"a test tried to reach {host!r} by name") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
        VIOLATIONS.append(host)
        raise NonLoopbackTraffic(f"a test tried to reach {host} (not loopback)")


def _inet(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True, scope="session")
def loopback_only():
    connect, connect_ex, sendto = (socket.socket.connect, socket.socket.connect_ex,
                                   socket.socket.sendto)

    def guarded_connect(self, address):
        if _inet(self):
            check_loopback(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if _inet(self):
            check_loopback(address)
        return connect_ex(self, address)

    def guarded_sendto(self, *args):        # (data, address) or (data, flags, address)
        if _inet(self):
            check_loopback(args[-1])
        return sendto(self, *args)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.socket.sendto = guarded_sendto
    yield
    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = (
        connect, connect_ex, sendto)


@pytest.fixture(autouse=True)
def no_traffic_beyond_loopback(loopback_only):
    VIOLATIONS.clear()
    yield
    if VIOLATIONS:
        tried = sorted(set(VIOLATIONS))
        VIOLATIONS.clear()
        pytest.fail(f"the test tried to send traffic beyond loopback: {tried}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """``needs(...)`` marks (tests/requirements.py): skip, or fail under SURVEY_TEST_STRICT."""
    for mark in item.iter_markers("needs"):
        require(*mark.args, **mark.kwargs)


# -- shared test material, built once per run when a test first asks for it ---------------

@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The testbed PKI (root, intermediate, untrusted CA; leaves and contexts cached).

    Keys are the expensive part, so every test shares one; nothing a test does
    to it (asking for leaves and contexts) changes what another test gets.
    """
    from survey.testbed.pki import Pki
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def net_world():
    """The 300-domain fast-scale world of seed 11 that the SMTP, hello-probe and
    enumeration tests serve: every SMTP behaviour, every TLS configuration kind."""
    from survey.testbed.generator import generate
    return generate(300, seed=11, scale="fast")


@pytest.fixture
async def net_smtp(nursery, pki, net_world):
    """``net_world``'s SMTP servers on a free loopback port, fresh per test: (port, its
    connection log)."""
    from survey.testbed.listen import ConnectionLog
    from survey.testbed.smtp_server import serve_smtp
    log = ConnectionLog(None)
    port = await nursery.start(lambda task_status: serve_smtp(
        net_world, port=0, pki=pki, connlog=log, task_status=task_status))
    return port, log
