"""The world's DNS server: authoritative for ``test.``, over UDP and TCP, with faults.

Theory of operation
-------------------
``Answerer`` turns one query (wire bytes) into one response (wire bytes) or
``None`` (drop it: the ``timeout`` fault). It is pure: the trio part only
moves datagrams and length-prefixed TCP messages. Encoding and decoding is
dnspython's message code; the world's records (presentation text) become
rdatasets lazily, on the first query for a name, so a 100,000-domain world
starts without parsing a million records.

Answers: the node's records of the asked type (AA set; RA set too, so stub
resolvers treat us as their recursive resolver); a CNAME is followed inside
the world (up to 8 links) and the chain put in the answer section; a missing
type is NODATA and a missing name NXDOMAIN, both with the SOA in the
authority section; names that only exist as parents of other names (empty
non-terminals such as ``_smtp.<domain>``) are NODATA, not NXDOMAIN.
A name outside ``test.`` is REFUSED: this server never recurses or forwards,
so a scanner pointed at it cannot reach the real DNS through it.

A signed world (``world.zones``; signing.py) answers queries with the DO bit
as a validating-capable resolver passes them on: every RRset with its RRSIG
(made on first use), DNSKEY at each signed zone apex, DS at a delegation
answered from the parent zone, and negative answers with the zone's SOA and
NSEC proofs; the world's own root ``.`` is served too (its DNSKEY, the DS of
``test.``). Without DO the answers are exactly the unsigned ones.

Faults (model.DNS_FAULTS) apply per name and query type: ``timeout`` drops
the query, ``servfail``/``refused``/``nxdomain`` set the rcode, ``truncate``
answers over UDP with an empty answer and the TC bit (a correct client retries
over TCP, where the full answer comes). A UDP answer larger than the
client's limit (512 bytes, or its EDNS payload size) is truncated the same way.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.nsbase
import dns.rrset
import trio

from survey.testbed.latency import dns_delay
from survey.testbed.model import TLD, World
from survey.testbed.signing import NS, SOA, Signer, parent_of

MAX_CNAME_CHAIN = 8
TCP_IDLE_TIMEOUT = 10.0
MAX_TCP_CONNECTIONS = 256
SIGNED_CACHE = 400_000      # signed answers kept whole (sections), per (name, type)


class Answerer:
    """Query bytes -> response bytes (or None to stay silent) for one world."""

    def __init__(self, world: World, tlsa_data: Any = None) -> None:
        self.world = world
        # TLSA association data named by the world (``@leaf-ec``...): the keys of this
        # process's PKI (serve.py; signing.tlsa_placeholders). Unknown names stay as written.
        self.tlsa_data = tlsa_data or {}
        self._rdatasets: dict[tuple[str, int], list[dns.rdata.Rdata]] = {}
        self._parents: set[str] | None = None
        soa = world.dns.get(TLD)
        soa_text = next((r.value for r in soa.records if r.rtype == "SOA"), None) if soa else None
        self._soa = dns.rrset.from_text(f"{TLD}.", 300, "IN", "SOA",
                                        soa_text or f"ns.{TLD}. hostmaster.{TLD}. 1 3600 600 "
                                        "86400 300")
        self.queries = 0
        self.signer = Signer(world) if world.zones else None
        self._signed: dict[tuple[str, int], tuple[dns.rcode.Rcode, list, list]] = {}

    # -- lookups ---------------------------------------------------------------------------

    def _is_parent(self, name: str) -> bool:
        if self._parents is None:
            parents: set[str] = set()
            for owner in self.world.dns:
                labels = owner.split(".")
                for i in range(1, len(labels)):
                    parents.add(".".join(labels[i:]))
            self._parents = parents
        return name in self._parents

    def _records(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[dns.rdata.Rdata]:
        key = (name, rdtype)
        cached = self._rdatasets.get(key)
        if cached is None:
            node = self.world.dns.get(name)
            text = dns.rdatatype.to_text(rdtype)
            origin = dns.name.root
            cached = [dns.rdata.from_text(dns.rdataclass.IN, rdtype,
                                          self._value(r.value) if r.rtype == "TLSA"
                                          else r.value, origin=origin, relativize=False)
                      for r in (node.records if node else ()) if r.rtype == text]
            self._rdatasets[key] = cached
        return cached

    def _value(self, value: str) -> str:
        head, _, placeholder = value.rpartition(" ")
        if not placeholder.startswith("@"):
            return value
        return f"{head} {self.tlsa_data.get(placeholder, '00')}"

    def _ttl(self, name: str, rdtype: dns.rdatatype.RdataType) -> int:
        node = self.world.dns.get(name)
        text = dns.rdatatype.to_text(rdtype)
        return next((r.ttl for r in node.records if r.rtype == text), 300) if node else 300

    @property
    def _signer(self) -> Signer:
        """The world's signer: only asked for when answering a signed world's query."""
        if self.signer is None:
            raise RuntimeError("not a signed world")
        return self.signer

    # -- answering -------------------------------------------------------------------------

    def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query; never raises (a bug answers SERVFAIL)."""
        self.queries += 1
        try:
            return self._answer(wire, tcp=tcp)
        except Exception:  # noqa: BLE001 - one bad name must not stop the world's DNS
            return _error_reply(wire, rcode=2)

    def _answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            return _error_reply(wire, rcode=1)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer those
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return self._wire(response, query, tcp)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return self._wire(response, query, tcp)
        question = query.question[0]
        qname = "" if question.name == dns.name.root else \
            question.name.to_text(omit_final_dot=True).lower()
        qtype = question.rdtype
        signed = self.signer is not None and bool(query.ednsflags & dns.flags.DO)
        if signed and qname == "":
            pass    # the world's own root: DNSKEY, SOA, NS
        elif question.rdclass != dns.rdataclass.IN or not (
                qname == TLD or qname.endswith("." + TLD)):
            response.set_rcode(dns.rcode.REFUSED)
            return self._wire(response, query, tcp)
        response.flags |= dns.flags.AA
        node = self.world.dns.get(qname)
        fault = node.faulty(dns.rdatatype.to_text(qtype)) if node else None
        if fault == "timeout":
            return None
        if fault in ("servfail", "refused"):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.REFUSED)
            return self._wire(response, query, tcp)
        if fault == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa)
            return self._wire(response, query, tcp)
        if fault == "truncate" and not tcp:
            response.flags |= dns.flags.TC
            return self._wire(response, query, tcp)
        if signed:
            cached = self._signed.get((qname, qtype))
            if cached is None:
                self._fill_signed(response, qname, qtype)
                if len(self._signed) >= SIGNED_CACHE:
                    self._signed.clear()
                self._signed[(qname, qtype)] = (response.rcode(), list(response.answer),
                                                list(response.authority))
            else:
                response.set_rcode(cached[0])
                response.answer.extend(cached[1])
                response.authority.extend(cached[2])
        else:
            self._fill(response, qname, qtype)
        return self._wire(response, query, tcp)

    # -- a signed world -----------------------------------------------------------------------

    def _types_at(self, name: str) -> set[dns.rdatatype.RdataType]:
        node = self.world.dns.get(name)
        types = {dns.rdatatype.from_text(r.rtype) for r in node.records} if node else set()
        if name in self._signer.zones or name == "":
            types |= {dns.rdatatype.SOA, dns.rdatatype.NS}
            if self._signer.signed(name):
                types.add(dns.rdatatype.DNSKEY)
        return types

    def _exists(self, name: str) -> bool:
        return (name == "" or name in self.world.dns or name in self._signer.zones
                or self._is_parent(name))

    def _signed_records(self, name: str, qtype: dns.rdatatype.RdataType) -> list[dns.rdata.Rdata]:
        """The records at a name, apex records of zones included (SOA, NS, DNSKEY)."""
        signer = self._signer
        if name in signer.zones or name == "":
            if qtype == dns.rdatatype.SOA:
                return [SOA]
            if qtype == dns.rdatatype.NS:
                return [NS]
            if qtype == dns.rdatatype.DNSKEY:
                return [signer.key(name)[1]] if signer.signed(name) else []
        if name == "":
            return []
        return self._records(name, qtype)

    def _add(self, section: list, name: str, rdtype: dns.rdatatype.RdataType, rdatas,
             zone: str) -> None:
        rrset = self._rrset(name, rdtype, rdatas) if name else self._root_rrset(rdtype, rdatas)
        section.append(rrset)
        node = self.world.dns.get(name)
        fault = node.dnssec_faulty(dns.rdatatype.to_text(rdtype)) if node else None
        sig = self._signer.rrsig(rrset, zone, fault)
        if sig is not None:
            section.append(sig)

    @staticmethod
    def _root_rrset(rdtype: dns.rdatatype.RdataType, rdatas) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(dns.name.root, dns.rdataclass.IN, rdtype)
        for rd in rdatas:
            rrset.add(rd, 300)
        return rrset

    def _fill_signed(self, response: dns.message.Message, qname: str,
                     qtype: dns.rdatatype.RdataType) -> None:
        signer = self._signer
        if qtype == dns.rdatatype.DS and qname in signer.zones and qname:
            parent = signer.zone_of(parent_of(qname))
            ds = signer.ds(qname)
            if ds is not None and signer.signed(parent):
                self._add(response.answer, qname, qtype, [ds], parent)
            else:
                types = {dns.rdatatype.NS}
                self._deny(response, parent, [signer.nodata(qname, types)])
            return
        name = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            zone = signer.zone_of(name)
            wanted = self._signed_records(name, qtype)
            if wanted:
                self._add(response.answer, name, qtype, wanted, zone)
                return
            cname = self._records(name, dns.rdatatype.CNAME) \
                if qtype != dns.rdatatype.CNAME and name else []
            if cname:
                self._add(response.answer, name, dns.rdatatype.CNAME, cname, zone)
                target = _target_of(cname[0])
                if not (target == TLD or target.endswith("." + TLD)):
                    return
                name = target
                continue
            if self._exists(name):
                self._deny(response, zone, [signer.nodata(name, self._types_at(name))])
                return
            if name == qname:
                response.set_rcode(dns.rcode.NXDOMAIN)
            encloser = parent_of(name)
            while not self._exists(encloser):
                encloser = parent_of(encloser)
            self._deny(response, zone, signer.nxdomain(name, encloser))
            return
        response.set_rcode(dns.rcode.SERVFAIL)

    def _deny(self, response: dns.message.Message, zone: str, nsecs) -> None:
        self._add(response.authority, zone, dns.rdatatype.SOA, [SOA], zone)
        if not self._signer.signed(zone):
            return
        for nsec in nsecs:
            response.authority.append(nsec)
            sig = self._signer.rrsig(nsec, zone, None)
            if sig is not None:
                response.authority.append(sig)

    def _fill(self, response: dns.message.Message, qname: str,
              qtype: dns.rdatatype.RdataType) -> None:
        name = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            node = self.world.dns.get(name)
            if node is None:
                if name == qname and not self._is_parent(name):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa)
                return
            wanted = self._records(name, qtype)
            if wanted:
                response.answer.append(self._rrset(name, qtype, wanted))
                return
            cname = self._records(name, dns.rdatatype.CNAME) \
                if qtype != dns.rdatatype.CNAME else []
            if not cname:
                response.authority.append(self._soa)
                return
            response.answer.append(self._rrset(name, dns.rdatatype.CNAME, cname))
            target = _target_of(cname[0])
            if not (target == TLD or target.endswith("." + TLD)):
                return
            name = target
        response.set_rcode(dns.rcode.SERVFAIL)  # a CNAME loop

    def _rrset(self, name: str, rdtype: dns.rdatatype.RdataType, rdatas: Iterable[dns.rdata.Rdata]
               ) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN, rdtype)
        ttl = self._ttl(name, rdtype)
        for rd in rdatas:
            rrset.add(rd, ttl)
        return rrset

    def _wire(self, response: dns.message.Message, query: dns.message.Message,
              tcp: bool) -> bytes:
        limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)


def _target_of(rdata: dns.rdata.Rdata) -> str:
    """A CNAME's target: lower-case, without the final dot."""
    assert isinstance(rdata, dns.rdtypes.nsbase.NSBase)
    return rdata.target.to_text(omit_final_dot=True).lower()


def _error_reply(wire: bytes, *, rcode: int) -> bytes | None:
    """A bare header-only reply (FORMERR=1, SERVFAIL=2) to a query we cannot parse."""
    if len(wire) < 12:
        return None
    (msg_id, flags) = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None
    # QR=1, opcode and RD copied, the rcode, no sections
    return struct.pack("!HHHHHH", msg_id, 0x8000 | (flags & 0x7900) | rcode, 0, 0, 0, 0)


UDP_RECEIVE_BUFFER = 8 << 20   # a burst of thousands of queries queues, not drops


def _widen_receive_buffer(sock: trio.socket.SocketType) -> None:
    """Room for bursts: a scan with thousands of domains in flight asks thousands at once."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:   # FORCE needs CAP_NET_ADMIN; plain RCVBUF caps at rmem_max
            continue


def _bind_to_loopback(sock: trio.socket.SocketType) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    except (OSError, AttributeError):
        pass  # bound to a loopback address anyway


class DnsServer:
    """Serves one world's DNS on ``host`` (default: the world's resolver) UDP+TCP ``port``."""

    def __init__(self, world: World, *, host: str | None = None, port: int = 0,
                 tlsa_data: Any = None, shared: bool = False) -> None:
        self.answerer = Answerer(world, tlsa_data)
        self.shared = shared    # one of several processes on the port (SO_REUSEPORT)
        self.host = host or world.resolver
        self.port = port
        self.latency = world.dns_latency       # None: answer at once (latency.py)
        self.seed = world.seed

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        udp, tcp = await self._bind()
        with udp, tcp:
            self.port = udp.getsockname()[1]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp, nursery)
                nursery.start_soon(self._serve_tcp, tcp, nursery)
                task_status.started((self.host, self.port))

    async def _bind(self) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        last: OSError | None = None
        for _ in range(20):
            udp = trio.socket.socket(family, socket.SOCK_DGRAM)
            tcp = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                for s in (udp, tcp):
                    _bind_to_loopback(s)
                _widen_receive_buffer(udp)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.shared:   # the kernel spreads queries over the members by hash
                    for s in (udp, tcp):
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                await udp.bind((self.host, self.port))
                await tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(128)
                return udp, tcp
            except OSError as exc:
                udp.close()
                tcp.close()
                last = exc
                if self.port:  # a fixed port that is taken: no point retrying
                    break
        raise OSError(f"cannot bind DNS on {self.host}:{self.port}: {last}")

    async def _serve_udp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                data, peer = await sock.recvfrom(65535)
            except OSError:
                continue
            reply = self.answerer.answer(data, tcp=False)
            if reply is None:
                continue
            delay = dns_delay(self.latency, data, self.seed)
            if delay > 0:
                nursery.start_soon(self._send_later, sock, reply, peer, delay)
                continue
            try:
                await sock.sendto(reply, peer)
            except OSError:
                pass

    @staticmethod
    async def _send_later(sock: trio.socket.SocketType, reply: bytes, peer: Any,
                          delay: float) -> None:
        """A slow resolution: the answer leaves ``delay`` seconds after the question."""
        await trio.sleep(delay)
        try:
            await sock.sendto(reply, peer)
        except OSError:
            pass

    async def _serve_tcp(self, listener: trio.socket.SocketType,
                         nursery: trio.Nursery) -> None:
        limiter = trio.CapacityLimiter(MAX_TCP_CONNECTIONS)
        while True:
            try:
                conn, _peer = await listener.accept()
            except OSError:
                continue
            await limiter.acquire_on_behalf_of(conn)
            nursery.start_soon(self._tcp_connection, conn, limiter)

    async def _tcp_connection(self, conn: trio.socket.SocketType,
                              limiter: trio.CapacityLimiter) -> None:
        stream = trio.SocketStream(conn)
        buffer = bytearray()
        try:
            while True:
                with trio.move_on_after(TCP_IDLE_TIMEOUT) as scope:
                    while True:
                        if len(buffer) >= 2:
                            need = 2 + struct.unpack("!H", buffer[:2])[0]
                            if len(buffer) >= need:
                                break
                        chunk = await stream.receive_some(65537)
                        if not chunk:
                            return
                        buffer += chunk
                if scope.cancelled_caught:
                    return
                size = struct.unpack("!H", buffer[:2])[0]
                message, buffer = bytes(buffer[2:2 + size]), buffer[2 + size:]
                reply = self.answerer.answer(message, tcp=True)
                if reply is not None:
                    delay = dns_delay(self.latency, message, self.seed)
                    if delay > 0:
                        await trio.sleep(delay)
                    await stream.send_all(struct.pack("!H", len(reply)) + reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            limiter.release_on_behalf_of(conn)
            await trio.aclose_forcefully(stream)


async def serve_dns(world: World, *, host: str | None = None, port: int = 0,
                    tlsa_data: Any = None, shared: bool = False,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve a world's DNS until cancelled; ``task_status.started((host, port))``."""
    await DnsServer(world, host=host, port=port, tlsa_data=tlsa_data, shared=shared).serve(
        task_status=task_status)
