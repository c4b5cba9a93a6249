"""The world's DNS: zone-file export (parsed by dnspython) and the trio DNS server,
queried with dnspython over UDP and TCP on loopback."""

from __future__ import annotations

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.zone
import pytest
import trio

from survey.testbed.dns_server import Answerer, serve_dns
from survey.testbed.generator import generate
from survey.testbed.model import World
from survey.testbed.zones import write_zones

RESOLVER = "127.53.0.1"


@pytest.fixture(scope="module")
def world() -> World:
    return generate(400, seed=3, scale="fast")


def _pick(world: World, pred):
    for node in world.dns.values():
        if pred(node):
            return node.name
    raise AssertionError("no such name in the world")


def _has(rtype):
    return lambda n: not n.fault and any(r.rtype == rtype for r in n.records)


@pytest.fixture
async def server(world: World, nursery):
    host, port = await nursery.start(serve_dns, world)
    assert host == RESOLVER and port > 0
    return port


def _resolver(port: int, lifetime: float = 2.0) -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [RESOLVER]
    r.port = port
    r.lifetime = lifetime
    r.timeout = lifetime
    return r


async def _query(name: str, rdtype: str, port: int, *, tcp: bool = False,
                 timeout: float = 2.0) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(q, RESOLVER, port=port, timeout=timeout)


# -- zone files -------------------------------------------------------------------------

def test_zone_file_parses_with_dnspython(world: World, tmp_path) -> None:
    info = write_zones(world, tmp_path)
    zone = dns.zone.from_file(str(tmp_path / info["zone"]), origin="test.", relativize=False)
    # TLSA data naming a key of the serving process is written as a comment (zones.py)
    named = [r for n in world.dns.values() for r in n.records
             if r.rtype == "TLSA" and r.value.rsplit(" ", 1)[-1].startswith("@")]
    assert named    # the default profile plants DANE records
    expected = sum(len(n.records) for n in world.dns.values()) - len(named)
    got = sum(len(rds) for _name, node in zone.nodes.items() for rds in node.rdatasets)
    assert got == expected
    mx_domain = next(d for d in world.domains if d.mx_kind == "mx" and d.dns_status == "ok")
    mx = zone.find_rdataset(f"{mx_domain.name}.", "MX")
    assert {r.exchange.to_text(omit_final_dot=True) for r in mx} == {
        m.host for m in mx_domain.mx}
    split = next(n for n in world.dns.values()
                 for r in n.records if r.rtype == "TXT" and '" "' in r.value)
    txt = zone.find_rdataset(f"{split.name}.", "TXT")
    assert any(len(r.strings) > 1 for r in txt)
    unbound = (tmp_path / info["unbound"]).read_text()
    assert 'local-zone: "test." nodefault' in unbound
    assert " refuse" in unbound and " deny" in unbound
    assert "servfail" in unbound  # listed as not reproducible
    assert "zonefile:" in (tmp_path / info["nsd"]).read_text()


# -- the server ----------------------------------------------------------------------------

async def test_mx_a_aaaa_cname_tlsa_over_udp(world: World, server: int) -> None:
    r = _resolver(server)
    d = next(d for d in world.domains if d.owner == "bigmail" and d.dns_status == "ok")
    answer = await r.resolve(d.name, "MX")
    assert {(a.preference, a.exchange.to_text(omit_final_dot=True)) for a in answer} == {
        (m.preference, m.host) for m in d.mx}
    a = await r.resolve("mx1.bigmail.test", "A")
    assert {x.address for x in a} == {
        ip for ip in world.mx_hosts["mx1.bigmail.test"].ips if ":" not in ip}
    aaaa = await r.resolve("mx1.bigmail.test", "AAAA")
    assert [x.address for x in aaaa] == ["::1"]
    cname = next(h for h in world.mx_hosts.values() if h.cname and h.ips)
    via = await r.resolve(cname.name, "A")
    assert via.canonical_name.to_text(omit_final_dot=True) == cname.cname
    assert {x.address for x in via} == set(cname.ips)
    tlsa_name = _pick(world, _has("TLSA"))
    tlsa = await r.resolve(tlsa_name, "TLSA")
    assert tlsa[0].usage == 3 and len(tlsa[0].cert) == 32
    null = next(d for d in world.domains if d.mx_kind == "null_mx")
    nmx = await r.resolve(null.name, "MX")
    assert [(x.preference, x.exchange.to_text()) for x in nmx] == [(0, ".")]


async def test_txt_split_into_character_strings(world: World, server: int) -> None:
    name = next(n.name for n in world.dns.values() if not n.fault
                for r in n.records if r.rtype == "TXT" and '" "' in r.value)
    for tcp in (False, True):
        reply = await _query(name, "TXT", server, tcp=tcp)
        strings = [rd.strings for rrset in reply.answer for rd in rrset]
        assert any(len(s) > 1 for s in strings)


async def test_nodata_nxdomain_and_empty_non_terminal(world: World, server: int) -> None:
    r = _resolver(server)
    with pytest.raises(dns.resolver.NoAnswer):
        await r.resolve("mx2.bigmail.test", "AAAA")
    with pytest.raises(dns.resolver.NXDOMAIN):
        await r.resolve("no-such-name.test", "A")
    ent = next(n.name[len("_smtp._tls."):] for n in world.dns.values()
               if n.name.startswith("_smtp._tls."))
    reply = await _query(f"_tls.{ent}", "TXT", server)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    nx = next(d for d in world.domains if d.dns_status == "nxdomain")
    for rdtype in ("MX", "A", "TXT"):
        assert (await _query(nx.name, rdtype, server)).rcode() == dns.rcode.NXDOMAIN
    assert (await _query(f"_mta-sts.{nx.name}", "TXT", server)).rcode() == dns.rcode.NXDOMAIN


async def test_faults(world: World, server: int) -> None:
    servfail = next(d for d in world.domains if d.dns_status == "servfail")
    assert (await _query(servfail.name, "MX", server)).rcode() == dns.rcode.SERVFAIL
    # the fault is for MX only: other types of the same name answer normally
    assert (await _query(servfail.name, "TXT", server)).rcode() == dns.rcode.NOERROR
    refused = next(d for d in world.domains if d.dns_status == "dns_refused")
    assert (await _query(refused.name, "MX", server, tcp=True)).rcode() == dns.rcode.REFUSED
    with pytest.raises(dns.resolver.NoNameservers):
        await _resolver(server).resolve(servfail.name, "MX")
    silent = next(d for d in world.domains if d.dns_status == "dns_timeout")
    with pytest.raises(dns.exception.Timeout):
        await _query(silent.name, "MX", server, timeout=0.3)
    with pytest.raises(dns.exception.Timeout):
        await _query(silent.name, "MX", server, tcp=True, timeout=0.3)
    with pytest.raises(dns.resolver.LifetimeTimeout):
        await _resolver(server, lifetime=0.3).resolve(silent.name, "MX")
    host = next(h for h in world.mx_hosts.values() if h.status == "servfail")
    assert (await _query(host.name, "A", server)).rcode() == dns.rcode.SERVFAIL


async def test_truncation_forces_tcp(world: World, server: int) -> None:
    d = next(d for d in world.domains if "dns:truncate" in d.traits)
    udp = await _query(d.name, "MX", server)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = await _query(d.name, "MX", server, tcp=True)
    assert not tcp.flags & dns.flags.TC and tcp.answer
    answer = await _resolver(server).resolve(d.name, "MX")  # retries over TCP itself
    assert {x.exchange.to_text(omit_final_dot=True) for x in answer} == {m.host for m in d.mx}


async def test_outside_test_is_refused_never_forwarded(server: int) -> None:
    for name in ("example.com", "localhost", "test.example", "."):
        for tcp in (False, True):
            reply = await _query(name, "A", server, tcp=tcp)
            assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


async def test_garbage_and_many_tcp_queries(world: World, server: int) -> None:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.sendto(b"\x00\x01garbage-not-dns", (RESOLVER, server))
        await sock.sendto(b"\x12", (RESOLVER, server))
    # the server survives and keeps answering, several queries on one TCP stream
    stream = await trio.open_tcp_stream(RESOLVER, server)
    async with stream:
        for name in ("mx1.bigmail.test", "mx2.bigmail.test"):
            wire = dns.message.make_query(name, "A").to_wire()
            await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                buf += await stream.receive_some(4096)
            reply = dns.message.from_wire(buf[2:])
            assert reply.answer and reply.question[0].name.to_text() == name + "."
    assert (await _query("mx1.bigmail.test", "A", server)).answer


def test_answerer_is_pure_and_large_answers_truncate(world: World) -> None:
    a = Answerer(world)
    q = dns.message.make_query("mx1.bigmail.test", "A")
    one, two = (dns.message.from_wire(a.answer(q.to_wire(), tcp=False)) for _ in range(2))
    assert one == two  # same content (record order within an RRset may rotate)
    reply = one
    assert reply.flags & dns.flags.AA
    # a response is never answered (no reflection loops)
    assert a.answer(reply.to_wire(), tcp=False) is None


def test_answer_larger_than_udp_limit_sets_tc() -> None:
    from survey.testbed.model import DnsNode, DnsRecord

    big = " ".join(f'"{"x" * 200}"' for _ in range(4))
    w = World(seed=0, profile="hand", domains=(), mx_hosts={}, smtp_servers={},
              policy_hosts={}, dns={"big.test": DnsNode("big.test", (DnsRecord("TXT", big),))})
    a = Answerer(w)
    plain = dns.message.from_wire(a.answer(dns.message.make_query("big.test", "TXT").to_wire(),
                                           tcp=False))
    assert plain.flags & dns.flags.TC and not plain.answer
    edns = dns.message.make_query("big.test", "TXT", use_edns=0, payload=4096)
    assert dns.message.from_wire(a.answer(edns.to_wire(), tcp=False)).answer
    tcp = dns.message.from_wire(a.answer(dns.message.make_query("big.test", "TXT").to_wire(),
                                         tcp=True))
    assert len(tcp.answer[0][0].strings) == 4
