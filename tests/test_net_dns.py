"""net/dns.py against the testbed's DNS server on loopback: statuses, TCP fallback, caching."""

from __future__ import annotations

import pytest
import trio

from survey.net.dns import HostCache, Resolver, parse_resolver
from survey.testbed.dns_server import serve_dns
from survey.testbed.generator import generate
from survey.vocabulary import DnsStatus


@pytest.fixture(scope="module")
def world():
    return generate(400, seed=7)


@pytest.fixture
async def resolver(nursery, world):
    host, port = await nursery.start(serve_dns, world)
    return Resolver([(host, port)], timeout=0.5, lifetime=1.5)


def faulty(world, fault: str) -> tuple[str, str]:
    """(name, qtype) of a world node answering ``fault``."""
    node = next((n for n in world.dns.values() if n.fault == fault), None)
    assert node is not None, f"the world has no {fault} node"
    return node.name, (node.fault_types or ("A",))[0]


async def test_mx_status_of_every_domain_matches_the_world(resolver, world):
    for spec in world.domains:
        lookup = await resolver.lookup(spec.name, "MX")
        expected = "ok" if spec.dns_status == "ok" and spec.mx_kind in ("mx", "null_mx") \
            else spec.dns_status
        if spec.mx_kind in ("implicit", "none") and spec.dns_status == "ok":
            expected = "no_data"
        assert lookup.status == expected, spec


@pytest.mark.parametrize(("fault", "status"), [("servfail", "servfail"), ("refused", "dns_refused")])
async def test_faults_map_to_their_own_status(resolver, fault, status, world):
    assert (await resolver.lookup(*faulty(world, fault))).status == status


async def test_a_missing_name_is_nxdomain(resolver, world):
    spec = next(d for d in world.domains if d.dns_status == "nxdomain")
    assert (await resolver.lookup(spec.name, "MX")).status == "nxdomain"


async def test_a_silent_server_is_a_timeout_not_a_missing_record(resolver, world):
    with trio.fail_after(5):
        assert (await resolver.lookup(*faulty(world, "timeout"))).status == "dns_timeout"


async def test_truncation_falls_back_to_tcp(resolver, world):
    node = next(n for n in world.dns.values() if n.fault == "truncate" and n.records)
    rtype = node.records[0].rtype
    lookup = await resolver.lookup(node.name, rtype)
    assert lookup.status == "ok" and len(lookup.records) == sum(
        r.rtype == rtype for r in node.records)


async def test_cnamed_mx_host_resolves_to_its_target(resolver, world):
    host = next(h for h in world.mx_hosts.values() if h.cname and h.status == "ok" and h.ips)
    cache = HostCache(resolver)
    a, aaaa = await cache.addresses(host.name)
    got = [r.address for r in a.records] + [r.address for r in aaaa.records]
    assert sorted(got) == sorted(host.ips)
    assert a.canonical_name == host.cname or aaaa.canonical_name == host.cname


async def test_outside_the_world_is_refused_never_forwarded(resolver):
    assert (await resolver.lookup("example.com", "A")).status == "dns_refused"


async def test_the_host_cache_asks_once(resolver, world):
    host = next(h for h in world.mx_hosts.values() if h.status == "ok" and h.ips)
    cache = HostCache(resolver)
    before = resolver.queries
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(cache.addresses, host.name)
    assert resolver.queries - before == 2   # one A, one AAAA


async def test_query_rate_is_paced(autojump_clock, nursery, world):
    host, port = await nursery.start(serve_dns, world)
    paced = Resolver([(host, port)], rate=10, timeout=0.5, lifetime=1.5)
    start = trio.current_time()
    for spec in world.domains[:11]:
        await paced.lookup(spec.name, "MX")
    assert trio.current_time() - start >= 0.99  # 10 intervals of 0.1 s


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353))])
def test_parse_resolver(text, expected):
    assert parse_resolver(text) == expected


@pytest.mark.parametrize("text", ["resolver.example", "127.0.0.1:x", "[::1]5353", "1.2.3.4:0"])
def test_parse_resolver_rejects(text):
    with pytest.raises(ValueError, match="bad resolver"):
        parse_resolver(text)


def test_no_nameservers_is_an_error():
    with pytest.raises(ValueError):
        Resolver([])


def _signed_reply(answer: str, authority: str = ""):
    """A DO+CD reply as dnspython writes it (names compressed), read by the fast codec."""
    import dns.message
    import dns.rrset

    from survey.net.dns import DnssecReply
    from survey.proto import dnswire

    query = dns.message.make_query("lab.test.", "SOA", want_dnssec=True)
    reply = dns.message.make_response(query)
    for section, text in ((reply.answer, answer), (reply.authority, authority)):
        for line in filter(None, text.splitlines()):
            owner, ttl, rdtype, rdata = line.split(maxsplit=3)
            section.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, rdata))
    wire = reply.to_wire()
    return DnssecReply(dnswire.parse_response(wire, sections=True), wire)


RRSIG_SOA = ("lab.test. 300 RRSIG SOA 15 2 300 20300101000000 20200101000000 1 lab.test. "
             "AAAA")


def test_apex_soa_and_ns_with_compressed_names_reach_the_validator():
    # RFC 1035 §4.1.4 / RFC 3597 §4: SOA and NS rdata names may be compressed; the
    # validator needs them exactly as signed (they were left out: apex lookups looked bogus)
    import dns.name
    import dns.rdatatype

    reply = _signed_reply("lab.test. 300 SOA ns.lab.test. hostmaster.lab.test. 1 3600 600 "
                          "86400 300\n" + RRSIG_SOA + "\nlab.test. 300 NS ns.lab.test.\n")
    ns_wire = next(r.rdata for r in reply.fast.records if r.rtype == dns.rdatatype.NS)
    assert len(ns_wire) == 2                # a compression pointer: ns.lab.test was sent before
    by_type = {r.rdtype: r for r in reply.message.answer}
    soa = by_type[dns.rdatatype.SOA][0]
    assert soa.mname == dns.name.from_text("ns.lab.test.")
    assert soa.rname == dns.name.from_text("hostmaster.lab.test.")
    assert by_type[dns.rdatatype.NS][0].target == dns.name.from_text("ns.lab.test.")
    assert by_type[dns.rdatatype.RRSIG][0].type_covered == dns.rdatatype.SOA


def test_authority_soa_of_a_negative_answer_stays_out():
    import dns.rdatatype

    reply = _signed_reply("", "lab.test. 300 SOA ns.lab.test. hostmaster.lab.test. 1 3600 "
                          "600 86400 300\n" + RRSIG_SOA + "\n")
    assert [r.rdtype for r in reply.message.authority] == [dns.rdatatype.RRSIG]


async def _slow_answerer(world, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A UDP resolver that answers each query 50 ms late; records the most pending at once."""
    import socket

    from survey.testbed.dns_server import Answerer

    answerer = Answerer(world)
    state = {"pending": 0, "peak": 0}
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))

        async def answer(data: bytes, peer) -> None:
            state["pending"] += 1
            state["peak"] = max(state["peak"], state["pending"])
            await trio.sleep(0.05)
            state["pending"] -= 1
            reply = answerer.answer(data, tcp=False)
            if reply is not None:
                await sock.sendto(reply, peer)

        async with trio.open_nursery() as nursery:
            task_status.started((sock.getsockname(), state))
            while True:
                data, peer = await sock.recvfrom(65535)
                nursery.start_soon(answer, data, peer)


@pytest.mark.parametrize("outstanding", [8, None])
async def test_outstanding_lookups_are_capped(nursery, world, outstanding):
    # 60 lookups at once: with a cap of 8 the resolver never holds more than 8 queries;
    # without one it holds (nearly) all 60 -- the burst a testbed scan used to send
    address, state = await nursery.start(_slow_answerer, world)
    resolver = Resolver([address], timeout=2.0, lifetime=6.0, outstanding=outstanding)
    results = []

    async def one(name: str) -> None:
        results.append(await resolver.lookup(name, "MX"))

    async with trio.open_nursery() as lookups:
        for spec in world.domains[:60]:
            lookups.start_soon(one, spec.name)
    assert len(results) == 60
    assert not [r for r in results if r.status == DnsStatus.DNS_TIMEOUT]
    if outstanding:
        assert state["peak"] <= outstanding
    else:
        assert state["peak"] > 8


def test_outstanding_must_be_positive():
    with pytest.raises(ValueError, match="outstanding"):
        Resolver([("127.0.0.1", 53)], outstanding=0)


def test_the_processes_of_one_scan_share_the_outstanding_cap(tmp_path):
    # the cap is a total for the resolver, divided like the rates among the processes of
    # a --processes / --dask scan (8 task slots asked 8 x 1,024 at once of a testbed world)
    from survey.net.dns import DEFAULT_OUTSTANDING
    from survey.scan.config import ScanConfig
    from survey.scan.toolkit import Toolkit

    domains = tmp_path / "list.txt"
    domains.write_text("a.test\n")
    config = ScanConfig(input=domains, out=tmp_path / "scan", mode="testbed",
                        resolvers=[("127.0.0.1", 9)], ehlo_name="scanner.survey.test",
                        mozilla_roots=False, dnssec=False)
    assert Toolkit(config).resolver.outstanding == DEFAULT_OUTSTANDING
    assert Toolkit(config, share=8).resolver.outstanding == DEFAULT_OUTSTANDING // 8
