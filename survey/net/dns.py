"""DNS for the scanner: dnspython's async resolver under trio, mapped to statuses.

Theory of operation
-------------------
Every lookup returns a ``Lookup`` (status, records, canonical name) and never
raises for what the network or a server did: NXDOMAIN, NOERROR without
records, SERVFAIL, REFUSED and timeouts each have their own status (DESIGN.md
"Outcomes") — never "no record" for a failure, which is the error that makes
scans report a broken domain as one without MX.

Nameservers are always explicit (``--resolver`` or the world's resolver); the
system configuration is read only when the user asks for it (the real
Internet), so a test can never fall back to the machine's off-loopback
resolver. Truncated UDP answers are retried over TCP by dnspython. Queries
are paced (``--dns-rate``) and bounded by a lifetime per lookup; retries
happen inside that lifetime.

``HostCache`` resolves each MX host's A and AAAA once per scan however many
domains name it (single flight: concurrent askers wait for the first).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import trio

from survey.net.pacing import Pacer
from survey.net.singleflight import SingleFlight

DEFAULT_TIMEOUT = 5.0       # per query to one server
DEFAULT_LIFETIME = 15.0     # per lookup, retries included


@dataclass(frozen=True)
class Lookup:
    status: str                         # ok, nxdomain, no_data, servfail, dns_refused, dns_timeout
    records: tuple = ()                 # rdata objects of the asked type
    canonical_name: str | None = None   # the name after following CNAMEs
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_resolver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or bare IPv6 -> (ip, port)."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"bad resolver {text!r}: expected [IPv6]:PORT")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise ValueError(f"bad resolver {text!r}: the port must be a number")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad resolver {text!r}: give an IP address, not a name") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad resolver {text!r}: port out of range")
    return host, port


def _rcode_status(error: dns.resolver.NoNameservers) -> str:
    rcodes = set()
    for err in error.kwargs.get("errors") or ():
        response = err[4] if len(err) > 4 else None
        if response is not None:
            rcodes.add(response.rcode())
    if rcodes and rcodes <= {dns.rcode.REFUSED}:
        return "dns_refused"
    if not rcodes:
        return "dns_timeout"  # no server answered at all (network errors, timeouts)
    return "servfail"


@dataclass
class Resolver:
    nameservers: Sequence[tuple[str, int]] | None     # None: the system's configuration
    timeout: float = DEFAULT_TIMEOUT
    lifetime: float = DEFAULT_LIFETIME
    rate: float | None = None                         # queries per second, all tasks together
    queries: int = 0
    _resolver: dns.asyncresolver.Resolver = field(init=False, repr=False)
    _pacer: Pacer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.nameservers is None:
            self._resolver = dns.asyncresolver.Resolver(configure=True)
        else:
            if not self.nameservers:
                raise ValueError("at least one nameserver is needed")
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port)
                                          for ip, port in self.nameservers]
        self._resolver.timeout = self.timeout
        self._resolver.lifetime = self.lifetime
        self._resolver.cache = None            # the scan caches what it needs, per scan
        self._resolver.use_edns(0, 0, 1232)  # EDNS0 with a fragmentation-safe buffer size
        self._pacer = Pacer(self.rate)

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        await self._pacer.wait()
        self.queries += 1
        qname = dns.name.from_text(name)
        try:
            # Belt and braces: dnspython enforces the lifetime; trio enforces it too.
            with trio.fail_after(self.lifetime + 1):
                answer = await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False,
                                                      search=False)
        except dns.resolver.NXDOMAIN:
            return Lookup("nxdomain")
        except dns.resolver.NoNameservers as exc:
            return Lookup(_rcode_status(exc), detail=str(exc)[:300])
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout, trio.TooSlowError):
            return Lookup("dns_timeout")
        except dns.exception.DNSException as exc:  # YXDOMAIN, malformed answers, ...
            return Lookup("servfail", detail=f"{type(exc).__name__}: {exc}"[:300])
        canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
        if answer.rrset is None:
            return Lookup("no_data", canonical_name=canonical)
        return Lookup("ok", tuple(answer.rrset), canonical)


class HostCache:
    """A and AAAA of host names, each resolved once per scan (single flight)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._lookups: SingleFlight[Lookup] = SingleFlight()

    async def get(self, name: str, rdtype: str) -> Lookup:
        return await self._lookups.get((name, rdtype),
                                       lambda: self.resolver.lookup(name, rdtype))

    async def addresses(self, name: str) -> tuple[Lookup, Lookup]:
        """(A lookup, AAAA lookup) for a host, concurrently."""
        results: dict[str, Lookup] = {}

        async def one(rdtype: str) -> None:
            results[rdtype] = await self.get(name, rdtype)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "AAAA")
        return results["A"], results["AAAA"]
