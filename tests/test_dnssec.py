"""DNSSEC validation in the scanner (survey/dnssec.py, survey/net/dnssec.py) against a
signed testbed world served on loopback (survey/testbed/signing.py), plus the sans-IO
parts on their own: trust anchors, denial proofs (RFC 4035 §5.4, RFC 5155 §8), and the
RFC 4470 names of the on-line signer (hypothesis)."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdatatype
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.dnssec import (
    Anchors,
    DsAbsence,
    Nsec,
    Nsec3,
    Proof,
    Skew,
    check_rrset,
    ds_absence,
    nsec3_nodata,
    nsec3_nxdomain,
    nsec3_wildcard,
    nsec_wildcard,
    proves_nodata,
    proves_nxdomain,
    wildcard_encloser,
)
from survey.net.dns import Resolver
from survey.net.dnssec import Validator, status_of
from survey.testbed.dns_server import DnsServer
from survey.testbed.model import DnsNode, DnsRecord, World, ZoneSpec
from survey.testbed.signing import Signer, predecessor, successor, successor_sibling

N = dns.name.from_text


def _node(name, *records, **kw):
    return DnsNode(name, tuple(DnsRecord(t, v) for t, v in records), **kw)


def signed_world() -> World:
    """Every DNSSEC behaviour the validator must tell apart, with its expected status."""
    nodes = [
        _node("test", ("SOA", "ns.test. hostmaster.test. 1 3600 600 86400 300"),
              ("NS", "ns.test.")),
        _node("ns.test", ("A", "127.53.0.1")),
        _node("signed.test", ("MX", "10 mx.signed.test.")),
        _node("mx.signed.test", ("A", "127.16.0.1")),
        _node("_25._tcp.mx.signed.test", ("TLSA", "3 1 1 " + "ab" * 32)),
        _node("plain.test", ("MX", "10 mx.plain.test.")),
        _node("mx.plain.test", ("A", "127.16.0.2")),
        _node("exp.test", ("MX", "10 mx.signed.test."), dnssec_fault="expired"),
        _node("early.test", ("MX", "10 mx.signed.test."), dnssec_fault="not_yet_valid"),
        _node("alt.test", ("MX", "10 mx.signed.test."), dnssec_fault="altered"),
        _node("strip.test", ("MX", "10 mx.signed.test."), dnssec_fault="unsigned"),
        _node("bad.test", ("MX", "10 mx.signed.test.")),
        _node("mx.sub.signed.test", ("A", "127.16.0.3")),
        _node("cn.signed.test", ("CNAME", "mx.plain.test.")),
        _node("cn2.plain.test", ("CNAME", "mx.signed.test.")),
        _node("intest.test", ("MX", "10 mx.signed.test.")),
    ]
    zones = [ZoneSpec(""), ZoneSpec("test"), ZoneSpec("signed.test"),
             ZoneSpec("plain.test", signed=False, ds=False),
             ZoneSpec("bad.test", fault="ds_mismatch"),
             ZoneSpec("sub.signed.test", signed=False, ds=False)]
    return World(seed=1, profile="dnssec-test", domains=(), mx_hosts={}, smtp_servers={},
                 policy_hosts={}, dns={n.name: n for n in nodes},
                 zones={z.name: z for z in zones}, resolver="127.0.0.1")


CASES = [
    # (name, type, lookup status, dnssec status, reason)
    ("signed.test", "MX", "ok", "secure", None),
    ("mx.signed.test", "A", "ok", "secure", None),
    ("mx.signed.test", "AAAA", "no_data", "secure", None),          # NSEC at the name
    ("_25._tcp.mx.signed.test", "TLSA", "ok", "secure", None),
    ("_tcp.mx.signed.test", "TLSA", "no_data", "secure", None),     # empty non-terminal
    ("nope.signed.test", "A", "nxdomain", "secure", None),          # RFC 4470 NSEC pair
    ("_mta-sts.signed.test", "TXT", "nxdomain", "secure", None),
    ("intest.test", "MX", "ok", "secure", None),                    # no cut: test.'s key
    ("nx.test", "MX", "nxdomain", "secure", None),
    ("plain.test", "MX", "ok", "insecure", None),                   # delegation without DS
    ("mx.plain.test", "A", "ok", "insecure", None),
    ("_25._tcp.mx.plain.test", "TLSA", "nxdomain", "insecure", None),
    ("mx.sub.signed.test", "A", "ok", "insecure", None),            # unsigned under signed
    ("cn.signed.test", "A", "ok", "insecure", None),                # secure CNAME, insecure target
    ("cn2.plain.test", "A", "ok", "insecure", None),                # insecure CNAME, secure target
    ("exp.test", "MX", "ok", "bogus", "signature_expired"),
    ("early.test", "MX", "ok", "bogus", "signature_not_yet_valid"),
    ("alt.test", "MX", "ok", "bogus", "bad_signature"),
    ("strip.test", "MX", "ok", "bogus", "no_rrsig"),
    ("bad.test", "MX", "ok", "bogus", "no_matching_dnskey"),
]


@pytest.fixture
async def served(nursery):
    world = signed_world()
    server = DnsServer(world, host="127.0.0.1")
    host, port = await nursery.start(server.serve)
    return world, server, Resolver([(host, port)], timeout=1.0, lifetime=3.0)


async def test_every_behaviour_gets_its_status(served):
    world, _server, resolver = served
    validator = Validator(resolver, Anchors.from_text(Signer(world).anchor_text()))
    got = []
    for name, rdtype, *_ in CASES:
        lookup = await validator.lookup(name, rdtype)
        got.append((name, rdtype, lookup.status, lookup.dnssec, lookup.dnssec_reason))
    assert got == [tuple(c) for c in CASES]


async def test_keys_and_ds_are_asked_once_per_zone(served):
    world, _server, resolver = served
    validator = Validator(resolver, Anchors.from_text(Signer(world).anchor_text()))
    await validator.lookup("signed.test", "MX")
    first = resolver.queries
    assert first == 6     # MX; DNSKEY .; DS test; DNSKEY test; DS signed.test; DNSKEY signed.test
    await validator.lookup("mx.signed.test", "A")
    await validator.lookup("_25._tcp.mx.signed.test", "TLSA")
    assert resolver.queries == first + 2      # the chain is cached: one query each


async def test_a_stripping_resolver_is_indeterminate_not_bogus(served):
    world, server, resolver = served
    server.answerer.signer.rrsig = lambda *args: None        # no RRSIG ever leaves
    validator = Validator(resolver, Anchors.from_text(Signer(world).anchor_text()))
    for name in ("signed.test", "plain.test"):
        lookup = await validator.lookup(name, "MX")
        assert (lookup.dnssec, lookup.dnssec_reason) == ("indeterminate", "no_dnssec_records")


async def test_a_wrong_anchor_makes_everything_bogus(served):
    _world, _server, resolver = served
    other = World(seed=2, profile="other", domains=(), mx_hosts={}, smtp_servers={},
                  policy_hosts={}, dns={}, zones={"": ZoneSpec("")})
    validator = Validator(resolver, Anchors.from_text(Signer(other).anchor_text()))
    lookup = await validator.lookup("plain.test", "MX")
    assert (lookup.dnssec, lookup.dnssec_reason) == ("bogus", "no_matching_dnskey")


async def test_no_anchor_above_the_name_and_failed_lookups_are_indeterminate(served):
    world, _server, resolver = served
    anchors = Anchors.from_text(f"elsewhere.example. IN DS {Signer(world).anchor_text().split('DS ')[1]}")
    lookup = await Validator(resolver, anchors).lookup("signed.test", "MX")
    assert (lookup.dnssec, lookup.dnssec_reason) == ("indeterminate", "no_trust_anchor")
    dead = Resolver([("127.0.0.1", 9)], timeout=0.2, lifetime=0.4)
    lookup = await Validator(dead, Anchors.iana()).lookup("signed.test", "MX")
    assert lookup.status == "dns_timeout"
    assert (lookup.dnssec, lookup.dnssec_reason) == ("indeterminate", "dns_error")


async def test_a_signature_that_expires_during_the_scan_is_seen(served):
    world, _server, resolver = served
    validator = Validator(resolver, Anchors.from_text(Signer(world).anchor_text()),
                          now=lambda: __import__("time").time() + 60 * 86400)
    lookup = await validator.lookup("signed.test", "MX")
    assert (lookup.dnssec, lookup.dnssec_reason) == ("bogus", "signature_expired")


def test_status_of_combines_worst_first():
    from survey.net.dns import Lookup
    a = Lookup("ok", dnssec="secure")
    b = Lookup("no_data", dnssec="insecure")
    c = Lookup("ok", dnssec="bogus", dnssec_reason="no_rrsig")
    assert status_of(a, a) == ("secure", None)
    assert status_of(a, b) == ("insecure", None)
    assert status_of(b, c, a) == ("bogus", "no_rrsig")
    assert status_of(a, Lookup("ok")) == (None, None)      # not validated: not measured


# -- trust anchors ----------------------------------------------------------------------

def test_the_iana_root_anchors_ship_with_the_package():
    anchors = Anchors.iana()
    ds = sorted((d.key_tag, d.algorithm, d.digest_type, d.digest.hex().upper())
                for d in anchors.ds[dns.name.root])
    assert ds == [
        (20326, 8, 2, "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"),
        (38696, 8, 2, "683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16")]


def test_anchor_files_take_ds_or_dnskey_and_reject_other_records(tmp_path):
    world = signed_world()
    key = Signer(world).key("")[1]
    path = tmp_path / "anchor.zone"
    path.write_text(f"; a lab's anchor\n. IN DNSKEY {key.to_text()}\n")
    assert Anchors.from_file(path).keys[dns.name.root] == [key]
    path.write_text(". IN A 192.0.2.1\n")
    with pytest.raises(ValueError, match="neither DS nor DNSKEY"):
        Anchors.from_file(path)
    with pytest.raises(ValueError, match="cannot read"):
        Anchors.from_file(tmp_path / "missing")


async def test_a_dnskey_anchor_validates_like_its_ds(served):
    world, _server, resolver = served
    key = Signer(world).key("")[1]
    validator = Validator(resolver, Anchors.from_text(f". IN DNSKEY {key.to_text()}"))
    assert (await validator.lookup("signed.test", "MX")).dnssec == "secure"


# -- signature dates and Unbound's clock-skew allowance -------------------------------------

HOUR, DAY = 3600, 86400


def _signed_a(inception: int, expiration: int):
    """An A RRset of example. and its RRSIG by a fresh Ed25519 key, valid between the two."""
    import dns.rrset
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    key = dns.dnssec.make_dnskey(private.public_key(), dns.dnssec.Algorithm.ED25519, flags=257)
    rrset = dns.rrset.from_text("example.", 300, "IN", "A", "192.0.2.1")
    sig = dns.dnssec.sign(rrset, private, N("example."), key, inception=inception,
                          expiration=expiration)
    return rrset, sig, [key]


@pytest.mark.parametrize(("period", "allowance"), [
    (20 * HOUR, 2 * HOUR),        # a tenth of the validity period
    (5 * HOUR, HOUR),             # a tenth is 30 min: raised to val-sig-skew-min (1 h)
    (30 * DAY, DAY),              # a tenth is 3 days: capped at val-sig-skew-max (24 h)
])
def test_signature_dates_allow_unbounds_clock_skew(period, allowance):
    # validator/val_sigcrypt.c check_dates: bogus only when off by MORE than the allowance
    start = 1_700_000_000
    rrset, sig, keys = _signed_a(start, start + period)
    zone = N("example.")
    assert Skew().allowance(sig) == allowance
    expired = start + period
    assert check_rrset(rrset, [sig], zone, keys, expired + allowance) is None
    assert check_rrset(rrset, [sig], zone, keys, expired + allowance + 1) == "signature_expired"
    assert check_rrset(rrset, [sig], zone, keys, start - allowance) is None
    assert check_rrset(rrset, [sig], zone, keys, start - allowance - 1) \
        == "signature_not_yet_valid"
    # no allowance: the dates exactly (RFC 4035 §5.3.1)
    assert check_rrset(rrset, [sig], zone, keys, expired + 1, Skew(0, 0)) == "signature_expired"
    assert check_rrset(rrset, [sig], zone, keys, expired, Skew(0, 0)) is None


def test_the_allowance_never_rescues_a_bad_signature():
    start = 1_700_000_000
    rrset, sig, keys = _signed_a(start, start + DAY)
    altered = rrset.copy()
    altered.clear()
    altered.add(dns.rdata.from_text("IN", "A", "192.0.2.2"))
    assert check_rrset(altered, [sig], N("example."), keys, start + DAY + 60) == "bad_signature"
    backwards = sig.replace(inception=start + DAY, expiration=start)
    assert check_rrset(rrset, [backwards], N("example."), keys, start) == "bad_signature"


# -- denial proofs, sans-IO ---------------------------------------------------------------

A, CNAME, DS, NS, SOA, MX = (dns.rdatatype.A, dns.rdatatype.CNAME, dns.rdatatype.DS,
                             dns.rdatatype.NS, dns.rdatatype.SOA, dns.rdatatype.MX)


def nsec(owner, nxt, *types):
    return Nsec(N(owner), N(nxt), frozenset(types))


def test_nsec_nodata_and_nxdomain_rfc4035_5_4():
    at = [nsec("b.example.", "d.example.", A)]
    assert proves_nodata(N("b.example."), MX, at, [])
    assert not proves_nodata(N("b.example."), A, at, [])            # the type exists
    assert not proves_nodata(N("b.example."), MX, [nsec("b.example.", "d.example.", CNAME)], [])
    # NXDOMAIN needs the name covered and the wildcard at the closest encloser covered
    cover = nsec("b.example.", "d.example.", A)
    star = nsec("example.", "a.example.", SOA, NS)                  # covers *.example.
    assert proves_nxdomain(N("c.example."), [cover, star], [])
    assert not proves_nxdomain(N("c.example."), [cover], [])         # wildcard not denied
    assert not proves_nxdomain(N("e.example."), [cover, star], [])  # not covered


def test_ds_absence_tells_cut_from_no_cut():
    cut = [nsec("child.example.", "d.example.", NS)]
    assert ds_absence(N("child.example."), cut, [], False) is DsAbsence.UNSIGNED_DELEGATION
    host = [nsec("host.example.", "d.example.", A)]
    assert ds_absence(N("host.example."), host, [], False) is DsAbsence.NOT_A_CUT
    apex = [nsec("example.", "d.example.", NS, SOA)]                 # child side: not a proof
    assert ds_absence(N("example."), apex, [], False) is DsAbsence.NOT_A_CUT
    lying = [nsec("child.example.", "d.example.", NS, DS)]
    assert ds_absence(N("child.example."), lying, [], False) is DsAbsence.UNPROVEN
    assert ds_absence(N("child.example."), [], [], False) is DsAbsence.UNPROVEN


def _nsec3_for(zone, names_types, opt_out=False, iterations=0):
    """An NSEC3 chain over ``names_types`` (RFC 5155 §7.1), hashes computed by dnspython."""
    import base64
    hashed = sorted((base64.b32hexdecode(dns.dnssec.nsec3_hash(N(n), b"", iterations, 1)), t)
                    for n, t in names_types)
    out = []
    for i, (h, types) in enumerate(hashed):
        nxt = hashed[(i + 1) % len(hashed)][0]
        out.append(Nsec3(N(zone), h, nxt, frozenset(types), opt_out, 1, iterations, b""))
    return out


def test_nsec3_closest_encloser_and_opt_out_rfc5155_8():
    chain = _nsec3_for("example.", [("example.", {SOA, NS}), ("a.example.", {A}),
                                    ("ns.example.", {A})])
    assert proves_nodata(N("a.example."), MX, [], chain)
    assert not proves_nodata(N("a.example."), A, [], chain)
    assert proves_nxdomain(N("zz.example."), [], chain)
    assert not proves_nxdomain(N("a.example."), [], chain)
    insecure = [Nsec3(n.zone, n.hash, n.next, n.types, True, 1, 0, b"") for n in chain]
    assert ds_absence(N("unsigned.example."), [], insecure, False) \
        is DsAbsence.UNSIGNED_DELEGATION                            # §8.6 opt-out span
    assert ds_absence(N("unsigned.example."), [], chain, False) is DsAbsence.UNPROVEN
    costly = _nsec3_for("example.", [("example.", {SOA})], iterations=151)
    assert ds_absence(N("x.example."), [], costly, False) \
        is DsAbsence.UNSIGNED_DELEGATION                            # RFC 9276 §3.2


def _opt_out(chain):
    return [Nsec3(n.zone, n.hash, n.next, n.types, True, 1, 0, b"") for n in chain]


def test_nsec3_opt_out_spans_prove_only_insecurity_rfc5155_9_2():
    # Unbound's readings (validator/val_nsec3.c), which the interop tests compare against
    chain = _nsec3_for("example.", [("example.", {SOA, NS}), ("a.example.", {A}),
                                    ("ns.example.", {A})])
    assert nsec3_nxdomain(N("zz.example."), chain) is Proof.PROVEN
    # the next closer name under an opt-out NSEC3: it may be an unsigned delegation
    assert nsec3_nxdomain(N("zz.example."), _opt_out(chain)) is Proof.INSECURE
    assert nsec3_nxdomain(N("a.example."), _opt_out(chain)) is Proof.UNPROVEN   # it exists
    # NODATA with no NSEC3 at the name: only an opt-out span says "insecure" (§8.6)
    assert nsec3_nodata(N("zz.example."), A, chain) is Proof.UNPROVEN
    assert nsec3_nodata(N("zz.example."), A, _opt_out(chain)) is Proof.INSECURE
    assert nsec3_nodata(N("a.example."), MX, _opt_out(chain)) is Proof.PROVEN  # at the name
    # a name below an unsigned delegation: the closest encloser is the cut (insecure)
    cut = _nsec3_for("example.", [("example.", {SOA, NS}), ("child.example.", {NS})])
    assert nsec3_nxdomain(N("www.child.example."), cut) is Proof.INSECURE
    assert nsec3_nodata(N("child.example."), A, cut) is Proof.INSECURE
    signed_cut = _nsec3_for("example.", [("example.", {SOA, NS}), ("child.example.", {NS, DS})])
    assert nsec3_nxdomain(N("www.child.example."), signed_cut) is Proof.UNPROVEN


def test_wildcard_answers_need_the_name_denied_rfc4035_5_3_4_rfc5155_8_8():
    from dns.rdtypes.ANY.RRSIG import RRSIG

    def sig(labels):
        return RRSIG(1, 46, A, 15, labels, 300, 2000000000, 1000000000, 1, N("example."), b"x")

    assert wildcard_encloser(N("x.w.example."), [sig(3)]) is None          # no expansion
    assert wildcard_encloser(N("x.w.example."), [sig(2)]) == N("w.example.")
    assert wildcard_encloser(N("*.w.example."), [sig(2)]) is None          # the wildcard itself
    # NSEC: the NSEC covering x.w.example. must have w.example. as closest encloser
    after_star = nsec("*.w.example.", "z.example.", A)
    assert nsec_wildcard(N("x.w.example."), N("w.example."), [after_star])
    assert not nsec_wildcard(N("x.w.example."), N("w.example."), [])      # no proof
    assert not nsec_wildcard(N("x.w.example."), N("example."), [after_star])  # wrong source
    # NSEC3: the next closer name covered; under opt-out, insecure
    chain = _nsec3_for("example.", [("example.", {SOA, NS}), ("w.example.", set()),
                                    ("*.w.example.", {A})])
    assert nsec3_wildcard(N("x.w.example."), N("w.example."), chain) is Proof.PROVEN
    assert nsec3_wildcard(N("x.w.example."), N("w.example."), _opt_out(chain)) \
        is Proof.INSECURE
    exists = _nsec3_for("example.", [("example.", {SOA, NS}), ("x.w.example.", {A})])
    assert nsec3_wildcard(N("x.w.example."), N("w.example."), exists) is Proof.UNPROVEN


# -- NSEC3 proofs against a whole zone's chain (hypothesis) ---------------------------------

ZLABEL = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
ZNAMES = st.lists(ZLABEL, min_size=1, max_size=3).map(lambda ls: N(".".join(ls) + ".example."))


def _zone_chain(owners: set, wildcard_at=None, opt_out=False):
    """The NSEC3 chain of a zone holding ``owners`` (A records) and the empty non-terminals
    above them (RFC 5155 §7.1: they get NSEC3 records too), plus ``*.wildcard_at``."""
    zone = N("example.")
    names = {zone: {SOA, NS}}
    for owner in owners | ({N("*", wildcard_at)} if wildcard_at is not None else set()):
        names[owner] = {A}
        parent = owner.parent()
        while parent != zone and parent not in names:
            names[parent] = set()
            parent = parent.parent()
    chain = _nsec3_for("example.", [(n.to_text(), t) for n, t in names.items()])
    return ([Nsec3(n.zone, n.hash, n.next, n.types, opt_out, 1, 0, b"") for n in chain],
            set(names))


@settings(max_examples=150, deadline=None)
@given(st.sets(ZNAMES, min_size=1, max_size=8), ZNAMES, st.booleans())
def test_nsec3_proofs_over_a_whole_chain_rfc5155_8(owners, qname, opt_out):
    chain, existing = _zone_chain(owners, opt_out=opt_out)
    if qname in existing:
        assert nsec3_nxdomain(qname, chain) is Proof.UNPROVEN       # it exists
        assert nsec3_nodata(qname, MX, chain) is Proof.PROVEN        # but has no MX
        assert nsec3_nodata(qname, A, chain) in (Proof.UNPROVEN, Proof.PROVEN)
        if qname in owners:
            assert nsec3_nodata(qname, A, chain) is Proof.UNPROVEN   # A is there
    else:
        # absent, with no wildcard in the zone: NXDOMAIN proven; opt-out: only insecure
        expected = Proof.INSECURE if opt_out else Proof.PROVEN
        assert nsec3_nxdomain(qname, chain) is expected
        assert nsec3_nodata(qname, MX, chain) is (Proof.INSECURE if opt_out
                                                  else Proof.UNPROVEN)


@settings(max_examples=100, deadline=None)
@given(st.sets(ZNAMES, min_size=1, max_size=6), ZNAMES, ZLABEL)
def test_nsec3_wildcard_answers_need_the_next_closer_name_covered(owners, base, label):
    qname = N(label, base)
    chain, existing = _zone_chain(owners, wildcard_at=base)
    if qname in existing:
        # an existing name is never answered from the wildcard: the proof must fail
        assert nsec3_wildcard(qname, base, chain) is Proof.UNPROVEN
    else:
        assert nsec3_wildcard(qname, base, chain) is Proof.PROVEN
        assert nsec3_nxdomain(qname, chain) is Proof.UNPROVEN        # the wildcard exists


@settings(max_examples=100, deadline=None)
@given(st.sets(ZNAMES, min_size=1, max_size=6), ZNAMES, ZLABEL)
def test_nsec_wildcard_answers_need_the_name_covered_rfc4035_5_3_4(owners, base, label):
    zone, qname = N("example."), N(label, base)
    star = N("*", base)
    records = sorted({zone, star} | owners)            # names that own records, in order
    chain = [nsec(a.to_text(), records[(i + 1) % len(records)].to_text(), A)
             for i, a in enumerate(records)]
    existing = {n for r in records for n in _ancestors(r, zone)}
    assert nsec_wildcard(qname, base, chain) is (qname not in existing)


def _ancestors(name, zone):
    while name != zone:
        yield name
        name = name.parent()
    yield zone


# -- the on-line signer's names (RFC 4470) -----------------------------------------------

LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
NAMES = st.lists(LABEL, min_size=1, max_size=4).map(lambda ls: N(".".join(ls) + ".test."))


@settings(max_examples=300, deadline=None)
@given(NAMES, st.lists(NAMES, max_size=20))
def test_minimal_covering_nsec_names_cover_nothing_else(name, others):
    before, after = predecessor(name), successor_sibling(name)
    assert before < name < successor(name) < after
    for other in others:
        if other == name or other.is_subdomain(name):
            continue
        assert not (before < other < after), other


def test_the_dataset_refuses_a_dnssec_status_outside_its_vocabulary():
    from survey.store.schema import SchemaError, to_table
    row = {"domain": "a.test", "dns_status": "ok", "probed_at": __import__("datetime").datetime(
        2026, 1, 1, tzinfo=__import__("datetime").UTC)}
    assert to_table("domains", [{**row, "mx_dnssec": "secure"}]).num_rows == 1
    with pytest.raises(SchemaError, match="DnssecStatus"):
        to_table("domains", [{**row, "mx_dnssec": "validated"}])


# -- a generated signed world: the DNS stage through the validator vs the truth -----------

async def test_the_dns_stage_of_a_signed_world_matches_the_truth(nursery):
    from collections import Counter

    from survey.net.dns import HostCache
    from survey.scan.resolve import resolve_domain
    from survey.scan.targets import Target
    from survey.testbed.dns_server import serve_dns
    from survey.testbed.generator import DNSSEC_KINDS, generate
    from survey.testbed.truth import build_truth

    world = generate(400, seed=18, scale="fast")
    kinds = Counter(t for d in world.domains for t in d.traits if t.startswith("dnssec:"))
    assert set(kinds) == {f"dnssec:{k}" for k in DNSSEC_KINDS}
    truth = build_truth(world)
    host, port = await nursery.start(serve_dns, world)
    resolver = Resolver([(host, port)], timeout=2.0, lifetime=6.0)
    validator = Validator(resolver, Anchors.from_text(Signer(world).anchor_text()))
    cache = HostCache(validator)
    got = {}
    limiter = trio.CapacityLimiter(20)

    async def one(spec):
        async with limiter:
            got[spec.name] = await resolve_domain(Target(spec.name, spec.name, spec.rank),
                                                  validator, cache)

    async with trio.open_nursery() as inner:
        for spec in world.domains:
            inner.start_soon(one, spec)
    seen = Counter()
    for row in truth.rows["domains"]:
        d = got[row["domain"]]
        assert (d.mx_dnssec, d.mx_dnssec_reason) == (row["mx_dnssec"], row["mx_dnssec_reason"]), \
            row["domain"]
        assert (d.mta_sts.dnssec, d.tlsrpt.dnssec) == (row["mta_sts_txt_dnssec"],
                                                      row["tlsrpt_dnssec"]), row["domain"]
        seen[(row["mx_dnssec"], row["mx_dnssec_reason"])] += 1
    for row in truth.rows["mx"]:
        target = next(m for m in got[row["domain"]].mx if m.host == row["mx_host"])
        assert (target.dnssec, target.dnssec_reason) == (
            row["address_dnssec"], row["address_dnssec_reason"]), (row["domain"], target.host)
        seen[("address", row["address_dnssec"])] += 1
    # every status the world plants was there to be found
    assert {("secure", None), ("insecure", None), ("bogus", "signature_expired"),
            ("bogus", "signature_not_yet_valid"), ("bogus", "bad_signature"),
            ("bogus", "no_rrsig"), ("bogus", "no_matching_dnskey"),
            ("indeterminate", "dns_error")} <= set(seen)
    assert seen[("address", "insecure")] and seen[("address", "secure")]
