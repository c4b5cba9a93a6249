"""The vantage's reach: which address families this machine routes to, read from the
kernel (net/reach.py), and what becomes of the addresses it cannot reach.

No test here names a destination beyond loopback, not even for a route lookup: the
parsers read route tables given as text, the namespace tests read the tables of a
network namespace the test makes itself (an IPv4-only and an IPv6-only one).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import uuid

import pytest
import trio

from survey.net.guard import DestinationPolicy
from survey.net.reach import ipv4_default_route, ipv6_default_route
from survey.net.smtp import _connect_status, probe_starttls
from survey.vocabulary import HostStatus
from tests.requirements import needs

# /proc/net/route and /proc/net/ipv6_route as a Linux host with both families shows them
IPV4_TABLE = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
"""
IPV6_TABLE = """\
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
"""
# an IPv4-only host: only the kernel's own reject route on lo for the IPv6 default
IPV6_REJECT_ONLY = """\
00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""


def test_default_routes_are_read_from_the_tables():
    assert ipv4_default_route(IPV4_TABLE)
    assert not ipv4_default_route(IPV4_TABLE.splitlines()[0] + "\n"
                                  + IPV4_TABLE.splitlines()[2])   # a subnet route only
    assert ipv6_default_route(IPV6_TABLE)
    assert not ipv6_default_route(IPV6_REJECT_ONLY)
    assert not ipv4_default_route("") and not ipv6_default_route("garbage\n1 2 3\n")


def test_an_address_of_a_family_out_of_reach_is_never_contacted():
    async def main():
        listener = trio.socket.socket(trio.socket.AF_INET6)
        await listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        policy = DestinationPolicy("testbed", routable=frozenset({4}))
        probe = await probe_starttls("::1", port, policy=policy, ehlo_name="scanner.test",
                                     sni=None)
        excluded = await probe_starttls("::1", port, ehlo_name="scanner.test", sni=None,
                                        policy=DestinationPolicy(
                                            "testbed", included=frozenset({4})))
        with trio.move_on_after(0.2) as waited:
            await listener.accept()
        listener.close()
        return probe, excluded, waited.cancelled_caught

    try:
        probe, excluded, nobody_came = trio.run(main)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert probe.status == HostStatus.FAMILY_UNREACHABLE and "no IPv6 route" in probe.detail
    assert excluded.status == HostStatus.FAMILY_EXCLUDED
    assert nobody_came and probe.transcript == []


def test_an_unrecognised_connect_error_is_recorded_as_what_it_is():
    assert _connect_status(OSError(errno.EAFNOSUPPORT, "Address family not supported")) \
        == HostStatus.CONNECT_ERROR
    assert _connect_status(OSError(errno.ENETUNREACH, "Network is unreachable")) \
        == HostStatus.NETWORK_UNREACHABLE


def _in_namespace(setup: list[str]) -> dict:
    name = f"survey-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True,
                      check=False).returncode:
        pytest.skip("cannot make a network namespace here (`ip netns add` failed)")
    try:
        for command in setup:
            subprocess.run(["ip", "netns", "exec", name, "sh", "-c", command], check=True,
                           capture_output=True)
        out = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c",
             "import json; from survey.net.reach import vantage_reach; "
             "print(json.dumps(vantage_reach()))"],
            capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


TUN = ["ip link set lo up", "ip tuntap add dev t0 mode tun", "ip link set t0 up"]


@needs("ip", root=True)
def test_an_ipv4_only_namespace_routes_ipv4_only():
    reach = _in_namespace(TUN + ["ip addr add 10.9.0.1/24 dev t0",
                                 "ip route add default dev t0"])
    assert reach == {"ipv4": True, "ipv6": False}


@needs("ip", root=True)
def test_an_ipv6_only_namespace_routes_ipv6_only():
    reach = _in_namespace(TUN + ["ip -6 addr add fd09::1/64 dev t0 nodad",
                                 "ip -6 route add default dev t0"])
    assert reach == {"ipv4": False, "ipv6": True}


@needs("ip", root=True)
def test_a_namespace_without_routes_reaches_nothing():
    assert _in_namespace(["ip link set lo up"]) == {"ipv4": False, "ipv6": False}
