"""survey.proto.dnswire: queries and responses on the wire (RFC 1035 §4), checked against
dnspython's own encoder and decoder, plus fuzzing: bad bytes are DnsWireError, nothing else."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto import dnswire
from survey.proto.dnswire import (
    AAAA,
    MX,
    TXT,
    A,
    DnsWireError,
    build_query,
    name_to_wire,
    parse_response,
    read_name,
)


def reply(query_wire: bytes, *rrsets: str, rcode=dns.rcode.NOERROR, flags=0) -> bytes:
    query = dns.message.from_wire(query_wire)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.flags |= flags
    for text in rrsets:
        response.answer.append(dns.rrset.from_text(*text.split(maxsplit=4)))
    return response.to_wire()


def test_the_query_is_what_dnspython_reads():  # RFC 1035 §4.1, RFC 6891 §6.1.2
    wire = build_query(0x1234, "Mail.Example.test", "MX")
    message = dns.message.from_wire(wire)
    assert message.id == 0x1234 and message.flags & dns.flags.RD
    assert message.question[0].name == dns.name.from_text("mail.example.test.")
    assert message.question[0].rdtype == 15
    assert message.edns == 0 and message.payload == 1232


def test_ad_and_cd_queries_and_the_ad_bit_of_answers():  # RFC 4035 §3.2, RFC 6840 §5.7
    ad = dns.message.from_wire(build_query(3, "d.test", "A", ad=True))
    assert ad.flags & dns.flags.AD and not ad.flags & dns.flags.CD
    assert not ad.ednsflags & dns.flags.DO          # AD alone: no DNSSEC records asked for
    cd = dns.message.from_wire(build_query(3, "d.test", "A", cd=True))
    assert cd.flags & dns.flags.CD and not cd.flags & dns.flags.AD
    q = build_query(4, "d.test", "A", ad=True)
    data = reply(q, "d.test. 300 IN A 127.0.0.1", flags=dns.flags.AD)
    assert parse_response(data, 4, "d.test", "A").authentic
    assert not parse_response(reply(q, "d.test. 300 IN A 127.0.0.1")).authentic


def test_answers_of_every_kind_a_scan_reads():
    q = build_query(7, "d.test", "MX")
    data = reply(q, "d.test. 300 IN MX 10 mx1.d.test.", "d.test. 300 IN MX 20 MX2.D.TEST.")
    response = parse_response(data, 7, "d.test", "MX")
    assert response.answer("d.test", "MX") == ("d.test", (MX(10, "mx1.d.test"),
                                                          MX(20, "mx2.d.test")))
    q = build_query(8, "h.test", "AAAA")
    data = reply(q, "h.test. 300 IN AAAA 2001:db8:0:0:0:0:0:1")
    assert parse_response(data).answer("h.test", "AAAA")[1] == (AAAA("2001:db8::1"),)
    q = build_query(9, "_mta-sts.d.test", "TXT")
    data = reply(q, '_mta-sts.d.test. 300 IN TXT "v=STSv1; " "id=1;"')
    assert parse_response(data).answer("_mta-sts.d.test", "TXT")[1] == (
        TXT((b"v=STSv1; ", b"id=1;")),)


def test_null_mx_exchange_is_the_root():  # RFC 7505
    q = build_query(1, "d.test", "MX")
    data = reply(q, "d.test. 300 IN MX 0 .")
    assert parse_response(data).answer("d.test", "MX")[1] == (MX(0, ""),)


def test_cname_chain_is_followed_to_the_canonical_name():  # RFC 1034 §3.6.2
    q = build_query(2, "mx.d.test", "A")
    data = reply(q, "mx.d.test. 300 IN CNAME mid.d.test.", "mid.d.test. 300 IN CNAME real.test.",
                 "real.test. 300 IN A 127.0.0.9")
    assert parse_response(data).answer("mx.d.test", "A") == ("real.test", (A("127.0.0.9"),))


def test_a_cname_loop_ends_without_records():
    q = build_query(2, "a.test", "A")
    data = reply(q, "a.test. 300 IN CNAME b.test.", "b.test. 300 IN CNAME a.test.")
    assert parse_response(data).answer("a.test", "A")[1] == ()


def test_records_for_other_names_are_not_the_answer():
    q = build_query(3, "a.test", "A")
    data = reply(q, "other.test. 300 IN A 127.0.0.1")
    assert parse_response(data).answer("a.test", "A") == ("a.test", ())


@pytest.mark.parametrize("rcode", [dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_rcodes_and_truncation_are_reported(rcode):
    q = build_query(4, "a.test", "A")
    assert parse_response(reply(q, rcode=rcode), 4, "a.test", "A").rcode == rcode
    assert parse_response(reply(q, flags=dns.flags.TC), 4, "a.test", "A").truncated


def test_a_response_to_another_question_is_refused():  # RFC 5452 §9.1
    q = build_query(5, "a.test", "A")
    data = reply(q, "a.test. 300 IN A 127.0.0.1")
    with pytest.raises(DnsWireError):
        parse_response(data, 6, "a.test", "A")
    with pytest.raises(DnsWireError):
        parse_response(data, 5, "b.test", "A")
    with pytest.raises(DnsWireError):
        parse_response(data, 5, "a.test", "AAAA")
    assert parse_response(data, 5, "A.Test.", "A").rcode == 0   # names compare case-blind


def test_hostile_labels_are_escaped_not_smuggled():
    wire = b"\x03a.b\x03C\x00\x01\x04test\x00"
    name, end = read_name(wire, 0)
    assert name == "a\\.b.c\\000\\001.test" and end == len(wire)
    assert name_to_wire(name) == wire.replace(b"C", b"c")    # and back again


@pytest.mark.parametrize("name", ["a" * 64 + ".test", ("a" * 60 + ".") * 5 + "test", "a..test",
                                  "bücher.test", "a\\"])
def test_unusable_names_are_refused(name):  # RFC 1035 §2.3.4
    with pytest.raises(DnsWireError):
        name_to_wire(name)


def test_compression_must_point_backwards():  # RFC 1035 §4.1.4; no loops
    with pytest.raises(DnsWireError):
        read_name(b"\xc0\x00", 0)                  # points at itself
    with pytest.raises(DnsWireError):
        read_name(b"\x01a\xc0\x05\x00\x00", 0)     # points forwards
    assert read_name(b"\x04test\x00\x01a\xc0\x00", 6) == ("a.test", 10)


def test_an_error_answer_may_omit_the_question():
    data = (5).to_bytes(2, "big") + bytes([0x81, 0x05]) + bytes(8)
    assert parse_response(data, 5, "a.test", "A").rcode == dnswire.REFUSED


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_a_response_or_a_dnswireerror(data):
    try:
        response = parse_response(data)
    except DnsWireError:
        return
    response.answer(response.qname or "x.test", "A")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFF), st.sampled_from(["A", "AAAA", "MX", "TXT", "CNAME"]),
       st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=6),
       st.integers(0, 200), st.binary(max_size=64))
def test_mutated_real_answers_never_raise_anything_else(qid, rdtype, labels, cut, noise):
    name = ".".join(read_name(bytes([len(x)]) + x + b"\x00", 0)[0] for x in labels)
    q = build_query(qid, name, rdtype)
    data = bytearray(reply(q, f"{name_to_text(q)} 300 IN A 127.0.0.1"))
    data[cut % len(data):cut % len(data) + len(noise)] = noise
    try:
        parse_response(bytes(data), qid, name, rdtype).answer(name, rdtype)
    except DnsWireError:
        pass


def name_to_text(query_wire: bytes) -> str:
    return dns.message.from_wire(query_wire).question[0].name.to_text()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=63), min_size=1, max_size=4))
def test_names_round_trip_through_text(labels):
    wire = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    text, _ = read_name(wire, 0)
    assert name_to_wire(text) == wire.lower()
    assert read_name(name_to_wire(text), 0)[0] == text
