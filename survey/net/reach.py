"""Which address families this vantage can route to: read from the kernel, no packet sent.

A scan from a machine without an IPv6 route would otherwise try every AAAA
address, fail with ENETUNREACH, and report each server as unreachable: a fact
about the vantage passed off as one about the servers. So the scan asks the
kernel's routing tables once at the start (Linux: ``/proc/net/route`` and
``/proc/net/ipv6_route``; no socket is opened, no destination is named) and
treats a family without a usable default route as out of reach: its
addresses get ``family_unreachable`` and are never contacted. The result
goes in the manifest (``vantage.reach``). Where the tables cannot be read
(not Linux) the reach is unknown and every family is tried.

A usable default route: prefix length 0, up (RTF_UP), not a reject route
(RTF_REJECT, what the kernel installs on ``lo`` for "unreachable"), on an
interface other than ``lo``.
"""

from __future__ import annotations

from pathlib import Path

RTF_UP = 0x0001
RTF_REJECT = 0x0200
IPV4_ROUTES = Path("/proc/net/route")
IPV6_ROUTES = Path("/proc/net/ipv6_route")


def ipv4_default_route(text: str) -> bool:
    """Whether ``/proc/net/route`` text holds a usable IPv4 default route."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, flags, mask = fields[0], fields[1], fields[3], fields[7]
        try:
            flag = int(flags, 16)
        except ValueError:
            continue
        if (int(destination, 16) == 0 and int(mask, 16) == 0 and flag & RTF_UP
                and not flag & RTF_REJECT and iface != "lo"):
            return True
    return False


def ipv6_default_route(text: str) -> bool:
    """Whether ``/proc/net/ipv6_route`` text holds a usable IPv6 default route."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        destination, prefix, flags, iface = fields[0], fields[1], fields[8], fields[9]
        try:
            flag = int(flags, 16)
            length = int(prefix, 16)
        except ValueError:
            continue
        if (int(destination, 16) == 0 and length == 0 and flag & RTF_UP
                and not flag & RTF_REJECT and iface != "lo"):
            return True
    return False


def vantage_reach(ipv4: Path = IPV4_ROUTES, ipv6: Path = IPV6_ROUTES) -> dict[str, bool | None]:
    """{"ipv4": routable?, "ipv6": routable?}; None where the table cannot be read."""
    reach: dict[str, bool | None] = {}
    for name, path, parse in (("ipv4", ipv4, ipv4_default_route),
                              ("ipv6", ipv6, ipv6_default_route)):
        try:
            reach[name] = parse(path.read_text(encoding="ascii", errors="replace"))
        except OSError:
            # no table: not Linux, or (ipv6_route) a kernel without IPv6 -- unknown for
            # the first, unreachable for the second when the IPv4 table exists
            reach[name] = False if name == "ipv6" and ipv4.exists() else None
    return reach
