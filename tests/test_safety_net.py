"""The conftest safety net really refuses non-loopback traffic (and lets loopback through)."""

from __future__ import annotations

import socket

import pytest
import trio

from survey.net.dns import Resolver
from tests.conftest import VIOLATIONS, NonLoopbackTraffic


def test_plain_sockets_cannot_leave_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(NonLoopbackTraffic, match="192.0.2.1"):
            sock.sendto(b"x", ("192.0.2.1", 53))
        with pytest.raises(NonLoopbackTraffic, match="8.8.8.8"):
            sock.connect(("8.8.8.8", 53))
        sock.sendto(b"x", ("127.0.0.1", 9))     # loopback is fine
    assert VIOLATIONS == ["192.0.2.1", "8.8.8.8"]
    VIOLATIONS.clear()                           # expected here; any other test would fail


async def test_a_swallowed_attempt_is_still_caught():
    resolver = Resolver([("192.0.2.53", 53)], timeout=0.5, lifetime=1.0)
    lookup = await resolver.lookup("example.test", "A")
    assert not lookup.ok and set(VIOLATIONS) == {"192.0.2.53"}  # retried, refused each time
    VIOLATIONS.clear()


async def test_trio_connects_are_checked():
    with pytest.raises(BaseException) as caught:
        await trio.open_tcp_stream("192.0.2.25", 25)
    assert "192.0.2.25" in repr(caught.value.exceptions if hasattr(caught.value, "exceptions")
                                else caught.value)
    assert VIOLATIONS == ["192.0.2.25"]
    VIOLATIONS.clear()
