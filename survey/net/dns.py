"""DNS for the scanner: lean UDP/TCP queries under trio, mapped to statuses.

Theory of operation
-------------------
Every lookup returns a ``Lookup`` (status, records, canonical name) and never
raises for what the network or a server did: NXDOMAIN, NOERROR without
records, SERVFAIL, REFUSED and timeouts each have their own status
(docs/design.md "Outcomes are rows") — never "no record" for a failure, which
is the error that makes scans report a broken domain as one without MX.

Messages are built and read by ``survey.proto.dnswire`` (sans-IO, a few
microseconds per message) rather than dnspython's object model, which cost
more CPU per query than the rest of a scan's DNS stage together
(benchmarks/dns_stage.py). The resolution loop follows dnspython's stub
resolver: ask each nameserver in turn with a per-query ``timeout``, back off
(0.1 s doubling to 2 s) between rounds, all within ``lifetime``; a server
answering SERVFAIL, REFUSED, another error code, a malformed message or a
network error is dropped for this lookup; when none is left the errors decide
the status (all REFUSED: ``dns_refused``; any other code: ``servfail``; no
answer at all: ``dns_timeout``). A truncated UDP answer is asked again over
TCP of the same server. Each query has a fresh socket (a random source port)
and a random id, and only a datagram echoing our id and question counts
(RFC 5452 §9.1); strays are ignored.

Nameservers are always explicit (``--resolver`` or the world's resolver); the
system configuration is read (through dnspython) only when the user asks for
it (the real Internet), so a test can never fall back to the machine's
off-loopback resolver. Queries are paced (``--dns-rate``), and at most
``outstanding`` lookups wait for answers at once (``DEFAULT_OUTSTANDING``):
a scan with thousands of domains in flight and no rate (a testbed world)
would otherwise send tens of thousands of queries in one burst, and every
query still queued at the resolver after ``timeout`` is asked again, so the
resolver spends its time answering queries nobody waits for any more and the
lookups end in ``dns_timeout`` (benchmarks/slow.py measured 1,110 to 4,170
such spurious timeouts of 6,000 domains). A lookup's timeouts start when it
holds a slot.

``lookup_dnssec`` asks the same way for a validating stub (survey/net/dnssec.py):
the query sets DO (RFC 3225) and CD (RFC 4035 §3.2.2: a validating resolver
still hands over bogus data, with its signatures, so the scanner can say
why it is bogus) and advertises the same 1232-byte buffer; the answer is read
by the fast codec with its authority section (``DnssecReply``), and by
dnspython's message code only when the validator needs the signed records
(most of the Internet is unsigned: those answers never pay for it).

``HostCache`` resolves each MX host's A and AAAA once however many domains
name it (single flight: concurrent askers wait for the first), keeping the
``max_lookups`` most recently used answers: a provider's hosts stay for the
whole scan, and a million-domain scan's memory does not grow with its
one-off hosts (benchmarks/scale.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from survey.net.pacing import Pacer, acquire
from survey.net.singleflight import SingleFlight
from survey.proto import dnswire
from survey.proto.dnswire import DnsWireError
from survey.vocabulary import DnsStatus

DEFAULT_TIMEOUT = 5.0       # per query to one server
DEFAULT_LIFETIME = 15.0     # per lookup, retries included
# Lookups waiting for answers at once. Little's law: 1,000 lookups a second (the README's
# tuned --dns-rate) at 0.3 s each is 300 outstanding; the cap binds only on a burst.
DEFAULT_OUTSTANDING = 1024
MAX_BACKOFF = 2.0
# (host, type) answers kept by a HostCache: the LRU keeps the hosts many domains share
# (providers); the rest are asked by one domain, within seconds. 20,000 answers are about
# 8 MB (100,000 were 40 MB of a large scan's peak, mostly one-off names).
DEFAULT_CACHE = 20_000
_ERROR_CODES = {dnswire.SERVFAIL: DnsStatus.SERVFAIL, dnswire.REFUSED: DnsStatus.DNS_REFUSED}


@dataclass(frozen=True, slots=True)
class Lookup:
    status: DnsStatus
    records: tuple = ()                 # rdata objects of the asked type
    canonical_name: str | None = None   # the name after following CNAMEs
    detail: str | None = None
    dnssec: str | None = None           # survey.dnssec.Status when validated; None: not asked
    dnssec_reason: str | None = None    # survey.dnssec.Reason for bogus / indeterminate

    @property
    def ok(self) -> bool:
        return self.status == DnsStatus.OK


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


def system_nameservers() -> list[tuple[str, int]]:
    """The machine's configured resolvers (only ever for a scan of the real Internet)."""
    import dns.resolver  # dnspython reads resolv.conf (and the Windows registry) for us

    configured = dns.resolver.Resolver(configure=True)
    return [(ip, int(configured.port)) for ip in configured.nameservers
            if isinstance(ip, str)] or [("127.0.0.1", 53)]


SILENT_AFTER = 50          # lookups with no answer at all before a resolver is called dead


class ResolverSilent(RuntimeError):
    """The resolvers answered none of the first lookups (not one response of any kind)."""


class _Answer(Exception):
    """A response that ends the lookup (raised out of the attempt loop)."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup


@dataclass
class Resolver:
    nameservers: Sequence[tuple[str, int]] | None     # None: the system's configuration
    timeout: float = DEFAULT_TIMEOUT
    lifetime: float = DEFAULT_LIFETIME
    rate: float | None = None                         # queries per second, all tasks together
    # ResolverSilent once this many lookups in a row from the start got no response at all
    # (None: never): a dead resolver would otherwise give an all-dns_timeout dataset
    silent_after: int | None = None
    outstanding: int | None = DEFAULT_OUTSTANDING     # lookups in flight at once (None: any)
    queries: int = 0
    answered: int = 0                                 # lookups that got any response
    unanswered: int = 0                               # lookups with none (dns_timeout)
    _servers: list[tuple[int, tuple[str, int]]] = field(init=False, repr=False)
    _pacer: Pacer = field(init=False, repr=False)
    _slots: trio.Semaphore | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.outstanding is not None and self.outstanding < 1:
            raise ValueError("outstanding must be at least 1 (or None: no cap)")
        self._slots = trio.Semaphore(self.outstanding) if self.outstanding else None
        if self.nameservers is None:
            servers = system_nameservers()
        else:
            if not self.nameservers:
                raise ValueError("at least one nameserver is needed")
            servers = list(self.nameservers)
        self._servers = [(socket.AF_INET6 if ":" in ip else socket.AF_INET, (ip, int(port)))
                         for ip, port in servers]
        self._pacer = Pacer(self.rate)

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        return await self._query(name, rdtype, _FAST)

    async def _query(self, name: str, rdtype: str, codec, **flags: bool) -> Any:
        """One query, whatever its codec: paced, counted, within an outstanding slot and
        the lifetime. The codec's answer (a Lookup, or a (Lookup, extra) pair), or a
        bare Lookup when no answer came or the name cannot be asked."""
        await self._pacer.wait()
        self.queries += 1
        qid = secrets.randbits(16)     # unpredictable: with the port, RFC 5452 §9.2
        try:
            wire = dnswire.build_query(qid, name, rdtype, **flags)
        except DnsWireError as exc:
            return Lookup(DnsStatus.INVALID_INPUT, detail=str(exc)[:300])
        # Belt and braces: the loop in _resolve keeps to the lifetime; trio enforces it too.
        result: Any = Lookup(DnsStatus.DNS_TIMEOUT)
        async with self._slot():
            with trio.move_on_after(self.lifetime + 1):
                result = await self._resolve(wire, qid, name, rdtype, codec)
        self._heard(result[0] if isinstance(result, tuple) else result)
        return result

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of the ``outstanding`` slots (none to hold without a cap)."""
        if self._slots is None:
            yield
            return
        await acquire(self._slots)
        try:
            yield
        finally:
            self._slots.release()

    def _heard(self, result: Lookup) -> None:
        """Count an answer or its absence; ResolverSilent when none came from the start."""
        if result.status != DnsStatus.DNS_TIMEOUT:
            self.answered += 1
            return
        self.unanswered += 1
        if (self.silent_after is not None and not self.answered
                and self.unanswered >= self.silent_after):
            servers = ", ".join(f"{ip}:{port}" for _, (ip, port) in self._servers)
            raise ResolverSilent(
                f"the resolver ({servers or 'system'}) answered none of the first "
                f"{self.unanswered} queries; is it running and reachable?")

    async def lookup_dnssec(self, name: str, rdtype: str) -> tuple[Lookup, Any]:
        """(the lookup, its DnssecReply or None when none came) with DO and CD set."""
        result = await self._query(name, rdtype, _DNSSEC, dnssec=True)
        return result if isinstance(result, tuple) else (result, None)

    async def lookup_ad(self, name: str, rdtype: str, *, checking_disabled: bool = False
                        ) -> tuple[Lookup, bool]:
        """(the lookup, the answer's AD bit) asking with AD set (RFC 6840 §5.7), or with CD
        set instead (``checking_disabled``: the data a validating resolver finds bogus)."""
        result = await self._query(name, rdtype, _AD, ad=not checking_disabled,
                                   cd=checking_disabled)
        return result if isinstance(result, tuple) else (result, False)

    async def _resolve(self, wire: bytes, qid: int, name: str, rdtype: str, codec) -> Lookup:
        deadline = trio.current_time() + self.lifetime
        servers = list(self._servers)
        errors: list[str | None] = []     # an error status, or None for "no answer"
        backoff = 0.1
        while servers:
            for server in list(servers):
                now = trio.current_time()
                if now >= deadline:
                    return Lookup(DnsStatus.DNS_TIMEOUT)
                try:
                    error = await self._ask(server, wire, qid, name, rdtype,
                                            min(now + self.timeout, deadline), codec)
                except _Answer as answer:
                    return answer.lookup
                if error != "timeout":
                    errors.append(error)
                    servers.remove(server)
            if servers:
                pause = min(backoff, deadline - trio.current_time())
                if pause <= 0:
                    return Lookup(DnsStatus.DNS_TIMEOUT)
                await trio.sleep(pause)
                backoff = min(backoff * 2, MAX_BACKOFF)
        statuses = {e for e in errors if e is not None}
        if not statuses:
            return Lookup(DnsStatus.DNS_TIMEOUT)    # no server answered at all
        if statuses == {DnsStatus.DNS_REFUSED}:
            return Lookup(DnsStatus.DNS_REFUSED)
        return Lookup(DnsStatus.SERVFAIL)

    async def _ask(self, server, wire: bytes, qid: int, name: str, rdtype: str,
                   deadline: float, codec) -> str | None:
        """One query to one server. Raises _Answer when it settles the lookup; otherwise
        returns ``"timeout"`` (keep the server) or why the server is dropped."""
        family, address = server
        try:
            with trio.move_on_at(deadline):
                response = await self._udp(family, address, wire, qid, name, rdtype, codec)
                if response.truncated:
                    response = await self._tcp(family, address, wire, qid, name, rdtype,
                                               codec)
                raise _Answer(codec.settle(response, name, rdtype))
            return "timeout"
        except DnsWireError:
            return DnsStatus.SERVFAIL       # a malformed answer over TCP
        except _ServerError as exc:
            return exc.status
        except (OSError, RuntimeError):     # unreachable, refused port, reset
            return None

    async def _udp(self, family: int, address, wire: bytes, qid: int, name: str,
                   rdtype: str, codec):
        # A plain non-blocking socket and trio's readiness waits: a connected UDP socket's
        # connect and send never block, so the query costs one wake-up (its answer), not
        # the two checkpoints trio's socket wrapper adds to every call (benchmarks/scale.py).
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(address)           # the kernel drops datagrams from anyone else
            while True:
                try:
                    sock.send(wire)
                    break
                except BlockingIOError:     # a full send buffer: wait for room
                    await trio.lowlevel.wait_writable(sock)
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
                    continue
                if dnswire.response_id(data) != qid:
                    continue                # a stray: not ours
                try:
                    return codec.parse(data, qid, name, rdtype)
                except DnsWireError:
                    continue                # forged or garbled: keep waiting for ours

    async def _tcp(self, family: int, address, wire: bytes, qid: int, name: str,
                   rdtype: str, codec):
        with trio.socket.socket(family, socket.SOCK_STREAM) as sock:
            await sock.connect(address)
            message = len(wire).to_bytes(2, "big") + wire
            while message:
                sent = await sock.send(message)
                message = message[sent:]
            length = int.from_bytes(await _recv_exactly(sock, 2), "big")
            return codec.parse(await _recv_exactly(sock, length), qid, name, rdtype)


def _rcode_status(rcode: int) -> DnsStatus | None:
    """The lookup status an rcode settles (None: NOERROR, read the answer); raises for
    the rcodes that drop the server."""
    if rcode == dnswire.NXDOMAIN:
        return DnsStatus.NXDOMAIN
    if rcode == dnswire.YXDOMAIN:
        return DnsStatus.SERVFAIL
    if rcode != dnswire.NOERROR:
        raise _ServerError(_ERROR_CODES.get(rcode, DnsStatus.SERVFAIL))
    return None


class _FastCodec:
    """The scanner's own codec (survey.proto.dnswire): answer section only."""

    parse = staticmethod(dnswire.parse_response)

    @staticmethod
    def settle(response: dnswire.Response, name: str, rdtype: str) -> Lookup:
        status = _rcode_status(response.rcode)
        if status is not None:
            return Lookup(status, detail="YXDOMAIN" if response.rcode == dnswire.YXDOMAIN
                          else None)
        canonical, records = response.answer(name, rdtype)
        if not records:
            return Lookup(DnsStatus.NO_DATA, canonical_name=canonical)
        return Lookup(DnsStatus.OK, records, canonical)


class DnssecReply:
    """A DO+CD response: read by the fast codec; dnspython's model only when asked for
    (``message``), which the validator needs for signed data only."""

    __slots__ = ("_message", "data", "fast")
    DNSSEC_TYPES = frozenset((dnswire.TYPES["RRSIG"], dnswire.TYPES["NSEC"],
                              dnswire.TYPES["NSEC3"]))

    def __init__(self, fast: dnswire.Response, data: bytes) -> None:
        self.fast = fast
        self.data = data
        self._message: Any = None

    @property
    def truncated(self) -> bool:
        return self.fast.truncated

    @property
    def signed(self) -> bool:
        """Does the response carry any RRSIG, NSEC or NSEC3 record?"""
        types = self.DNSSEC_TYPES
        return any(r.rtype in types for r in self.fast.records) or \
            any(r.rtype in types for r in self.fast.authority)

    @property
    def message(self):
        """The answer and authority sections as dnspython RRsets (``LightMessage``): built
        from the fast parse, record by record, without dnspython's message machinery
        (a third of a validating scan's CPU when it parsed whole messages)."""
        if self._message is None:
            self._message = LightMessage.of(self.fast, self.data)
        return self._message


class LightMessage:
    """What the validator reads of a response: ``answer``, ``authority`` (lists of
    dnspython RRsets; RRSIGs grouped by owner and covered type) and ``rcode()``.

    The fast codec keeps the rdata of most types as the bytes on the wire, which is
    exact for types whose rdata holds no compressible name. RFC 1035's types that hold
    one (NS, SOA, PTR, ...: RFC 3597 §4) may point into the rest of the message: in the
    authority section (the SOA of a negative answer, the NS of a referral) the validator
    never verifies them and they are left out; an answer section that holds one (an
    ``NS`` or ``SOA`` lookup, a zone's apex records) is read by dnspython's message code
    instead, names decompressed. (Leaving them out of the answer too made every apex
    SOA/NS lookup of a signed zone bogus: no SOA in the answer, so a denial, unproven.)"""

    __slots__ = ("_rcode", "answer", "authority")

    def __init__(self, answer: list, authority: list, rcode: int) -> None:
        self.answer, self.authority, self._rcode = answer, authority, rcode

    def rcode(self) -> int:
        return self._rcode

    @classmethod
    def of(cls, fast: dnswire.Response, data: bytes = b"") -> LightMessage:
        import dns.exception
        import dns.message

        try:
            if data and any(r.rtype in _COMPRESSIBLE for r in fast.records):
                message = dns.message.from_wire(data, ignore_trailing=True)
                return cls(list(message.answer), list(message.authority), fast.rcode)
            return cls(_rrsets(fast.records), _rrsets(fast.authority), fast.rcode)
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsWireError(f"malformed DNSSEC record: {exc}") from None


# RFC 1035 types whose rdata names may be compressed (RFC 3597 §4), besides the CNAME and
# MX that the fast codec reads itself: NS, MD, MF, SOA, MB, MG, MR, PTR, MINFO; and those
# RFC 3597 §4 asks receivers to decompress: RP, AFSDB, RT, SIG, PX, NXT, SRV, NAPTR.
_COMPRESSIBLE = frozenset((2, 3, 4, 6, 7, 8, 9, 12, 14, 17, 18, 21, 24, 26, 30, 33, 35))
_SKIPPED = _COMPRESSIBLE


def _rrsets(records) -> list:
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rrset
    from dns.rdtypes.ANY.TXT import TXT

    groups: dict[tuple, Any] = {}
    for r in records:
        rtype, value = r.rtype, r.rdata
        if rtype in _SKIPPED:
            continue
        if isinstance(value, bytes):       # DNSSEC types, TLSA, ...: no compressed names
            rd = dns.rdata.from_wire(dns.rdataclass.IN, rtype, value, 0, len(value))
        elif isinstance(value, dnswire.TXT):
            rd = TXT(dns.rdataclass.IN, rtype, value.strings)
        elif isinstance(value, dnswire.MX):
            rd = dns.rdata.from_text("IN", "MX", f"{value.preference} {value.exchange}.")
        elif isinstance(value, dnswire.CNAME):
            rd = dns.rdata.from_text("IN", "CNAME", f"{value.target}.")
        else:                              # A, AAAA
            rd = dns.rdata.from_text("IN", rtype, value.address)
        covers = rd.covers()               # the RRSIG's type_covered; NONE (0) for the rest
        key = (r.owner, rtype, covers)
        rrset = groups.get(key)
        if rrset is None:
            owner = dns.name.from_text(r.owner) if r.owner else dns.name.root
            rrset = groups[key] = dns.rrset.RRset(owner, dns.rdataclass.IN, rtype, covers)
        rrset.add(rd, r.ttl)
    return list(groups.values())


class _DnssecCodec:
    """DO+CD queries of the validating stub: the fast codec, authority section included."""

    @staticmethod
    def parse(data: bytes, qid: int, name: str, rdtype: str) -> DnssecReply:
        return DnssecReply(dnswire.parse_response(data, qid, name, rdtype, sections=True),
                           data)

    @staticmethod
    def settle(response: DnssecReply, name: str, rdtype: str) -> tuple[Lookup, DnssecReply]:
        return _FastCodec.settle(response.fast, name, rdtype), response


class _AdCodec:
    """Queries of the AD-trusting mode (net/dnssec.py ``AdTrust``): the lookup and AD."""

    parse = staticmethod(dnswire.parse_response)

    @staticmethod
    def settle(response: dnswire.Response, name: str, rdtype: str) -> tuple[Lookup, bool]:
        return _FastCodec.settle(response, name, rdtype), response.authentic


_FAST = _FastCodec()
_DNSSEC = _DnssecCodec()
_AD = _AdCodec()


class _ServerError(Exception):
    def __init__(self, status: DnsStatus) -> None:
        self.status = status


async def _recv_exactly(sock, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await sock.recv(n - len(data))
        if not chunk:
            raise DnsWireError("the server closed the TCP connection mid-answer")
        data += chunk
    return bytes(data)


class HostCache:
    """A and AAAA of host names, each resolved once while in use (single flight, LRU)."""

    def __init__(self, resolver: Any, max_lookups: int | None = DEFAULT_CACHE) -> None:
        """``resolver``: a Resolver, or anything with its ``lookup`` (net/dnssec.py)."""
        self.resolver = resolver
        self._lookups: SingleFlight[Lookup] = SingleFlight(max_lookups)

    async def get(self, name: str, rdtype: str) -> Lookup:
        return await self._lookups.get((name, rdtype),
                                       lambda: self.resolver.lookup(name, rdtype))

    async def addresses(self, name: str) -> tuple[Lookup, Lookup]:
        """(A lookup, AAAA lookup) for a host, concurrently."""
        if (name, "A") in self._lookups and (name, "AAAA") in self._lookups:
            # both known (a provider's host): no tasks (SingleFlight.get returns at once)
            return await self.get(name, "A"), await self.get(name, "AAAA")
        results: dict[str, Lookup] = {}

        async def one(rdtype: str) -> None:
            results[rdtype] = await self.get(name, rdtype)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "AAAA")
        return results["A"], results["AAAA"]
