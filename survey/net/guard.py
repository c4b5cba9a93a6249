"""The destination policy: the one checkpoint every outgoing connection passes.

Internet mode never contacts special-purpose address ranges (RFC 6890 and the
IANA special-purpose registries that continue it: loopback, private, shared
CGN space, link-local, documentation, benchmarking, multicast, reserved...),
because MX records that point at 127.0.0.1 or 10.0.0.1 exist in the wild and
following them would probe the scanner's own network. Testbed mode is the
inverse: loopback only, so a test can never leak onto a real network. The
user's ``--blocklist`` (opt-outs, CIDRs) applies in both modes.

A refused destination is not an error: it becomes a ``blocked_by_policy`` row.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from survey.vocabulary import HostStatus

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6890 §2.2.2 and §2.2.3 as updated in the IANA IPv4/IPv6 Special-Purpose
# Address Registries. Ranges whose registry entry says "Globally Reachable:
# True" (e.g. 192.31.196.0/24 AS112, 64:ff9b::/96 NAT64) are still refused where
# no mail server belongs: a mail survey loses nothing by skipping them.
SPECIAL_PURPOSE: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",          # "this network" (RFC 791)
    "10.0.0.0/8",         # private (RFC 1918)
    "100.64.0.0/10",      # shared address space, CGN (RFC 6598)
    "127.0.0.0/8",        # loopback (RFC 1122)
    "169.254.0.0/16",     # link-local (RFC 3927)
    "172.16.0.0/12",      # private (RFC 1918)
    "192.0.0.0/24",       # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",       # documentation TEST-NET-1 (RFC 5737)
    "192.31.196.0/24",    # AS112-v4 (RFC 7535)
    "192.52.193.0/24",    # AMT (RFC 7450)
    "192.88.99.0/24",     # deprecated 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",     # private (RFC 1918)
    "192.175.48.0/24",    # direct delegation AS112 (RFC 7534)
    "198.18.0.0/15",      # benchmarking (RFC 2544)
    "198.51.100.0/24",    # documentation TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",     # documentation TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",        # multicast (RFC 5771)
    "240.0.0.0/4",        # reserved, and 255.255.255.255 limited broadcast (RFC 1112, 919)
    "::/128",             # unspecified (RFC 4291)
    "::1/128",            # loopback (RFC 4291)
    "::ffff:0:0/96",      # IPv4-mapped (RFC 4291); checked again as IPv4 below
    "64:ff9b:1::/48",     # local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",           # discard-only (RFC 6666)
    "2001::/23",          # IETF protocol assignments: Teredo, benchmarking, ORCHID... (RFC 2928)
    "2001:db8::/32",      # documentation (RFC 3849)
    "2002::/16",          # 6to4 (RFC 3056): embeds an IPv4 address we cannot vet
    "3fff::/20",          # documentation (RFC 9637)
    "5f00::/16",          # SRv6 SIDs (RFC 9602)
    "fc00::/7",           # unique-local (RFC 4193)
    "fe80::/10",          # link-local unicast (RFC 4291)
    "ff00::/8",           # multicast (RFC 4291)
))
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))


class PolicyError(ValueError):
    """A blocklist that cannot be read or parsed (the user's input, reported in one line)."""


def parse_address(ip: str) -> Address | None:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0])  # a zone index is not an address
    except ValueError:
        return None


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


@dataclass(frozen=True)
class DestinationPolicy:
    """``check(ip)`` returns None when a connection may go ahead, else the reason."""

    mode: str = "internet"                   # "internet" or "testbed"
    blocklist: tuple[Network, ...] = field(default=())
    # IP versions this vantage can route to (net/reach.py) and those --ip-version keeps
    routable: frozenset[int] = frozenset({4, 6})
    included: frozenset[int] = frozenset({4, 6})

    def __post_init__(self) -> None:
        if self.mode not in ("internet", "testbed"):
            raise ValueError(f"unknown destination policy mode {self.mode!r}")

    def check(self, ip: str) -> str | None:
        address = parse_address(ip)
        if address is None:
            return f"not an IP address: {ip!r}"
        mapped = getattr(address, "ipv4_mapped", None)
        if _within(address, self.blocklist) or (mapped and _within(mapped, self.blocklist)):
            return f"{address} is on the blocklist"
        if self.mode == "testbed":
            if _within(address, LOOPBACK) or (mapped and _within(mapped, LOOPBACK[:1])):
                return None
            return f"{address} is not loopback (testbed mode allows loopback only)"
        if _within(address, SPECIAL_PURPOSE) or (mapped and _within(mapped, SPECIAL_PURPOSE)):
            return f"{address} is in a special-purpose range (RFC 6890)"
        return None

    def out_of_reach(self, ip: str) -> tuple[HostStatus, str] | None:
        """(status, reason) for an address of a family left out or not routable, else None.

        Checked after ``check``: a connection goes ahead only when both say None.
        """
        address = parse_address(ip)
        if address is None:
            return None
        mapped = getattr(address, "ipv4_mapped", None)
        version = 4 if mapped is not None else address.version
        if version not in self.included:
            return (HostStatus.FAMILY_EXCLUDED,
                    f"{address}: IPv{version} is left out (--ip-version)")
        if version not in self.routable:
            return (HostStatus.FAMILY_UNREACHABLE,
                    f"{address}: this vantage has no IPv{version} route")
        return None

    def allows(self, ip: str) -> bool:
        return self.check(ip) is None and self.out_of_reach(ip) is None


def parse_blocklist(lines: Iterable[str], source: str = "blocklist") -> tuple[Network, ...]:
    """CIDRs or addresses, one per line; ``#`` starts a comment; blank lines ignored."""
    networks = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise PolicyError(f"{source}:{number}: not an address or CIDR: {text[:80]!r}") from None
    return tuple(networks)


def load_blocklist(path: Path | str) -> tuple[Network, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read blocklist {path}: {exc}") from None
    return parse_blocklist(text.splitlines(), source=str(path))
