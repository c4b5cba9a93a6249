"""survey's DNSSEC statuses against Unbound's on generated zone shapes (issue 18, Deliver 5).

A seeded generator (tests/interop/dnssec_lab.py) draws child zones of ``lab.test``:
signed with a DS, unsigned, signed without DS, with a DS of another key; NSEC, NSEC3,
NSEC3 opt-out; signatures valid, expired or not yet valid; a record altered after
signing; wildcards; signed and unsigned grandchildren; CNAMEs into other zones. They are
signed by ldns-signzone, served by NSD, and validated by one Unbound from the anchor's DS;
survey's validator asks that Unbound with DO+CD, as a scan asks its resolver. Every
lookup's status must agree (Unbound: AD = secure, SERVFAIL with data under +cd = bogus,
neither = insecure), and the run must see all three statuses.

``SURVEY_DNSSEC_SEEDS`` (comma-separated) replaces the default seeds; a disagreement
prints the seed and the zone shapes, so a failing case can be rebuilt.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import trio

from survey.dnssec import Anchors
from survey.net.dns import Resolver
from survey.net.dnssec import AdTrust, Validator
from tests.interop.dnssec_lab import (
    NEEDS_LAB,
    SKEW_CASES,
    DnssecLab,
    build,
    queries,
    shapes,
    skew_shapes,
)

pytestmark = NEEDS_LAB

SEEDS = [int(s) for s in os.environ.get("SURVEY_DNSSEC_SEEDS", "1,2").split(",") if s]
ZONES = 18


@pytest.mark.parametrize("seed", SEEDS)
async def test_survey_and_unbound_agree_on_generated_zones(tmp_path, seed):
    """Every lookup four ways: survey validating through the validating Unbound and through
    a plain (non-validating) Unbound, and --dnssec-trust-ad through each."""
    drawn = shapes(seed, ZONES)
    zones, anchor = build(tmp_path, drawn)
    table = []
    with DnssecLab(tmp_path, zones, anchor, plain=True) as lab:
        anchors = Anchors.from_text(anchor + "\n")

        def resolver(port: int) -> Resolver:
            return Resolver([("127.0.0.1", port)], timeout=2, lifetime=5)

        ways = {"validating": Validator(resolver(lab.port), anchors),
                "validating_plain": Validator(resolver(lab.plain_port), anchors),
                "ad": AdTrust(resolver(lab.port), anchors),
                "ad_plain": AdTrust(resolver(lab.plain_port), anchors)}
        for name, rdtype in queries(drawn):
            found = {way: await v.lookup(name, rdtype) for way, v in ways.items()}
            theirs = await trio.to_thread.run_sync(lab.unbound_status, name, rdtype)
            table.append((name, rdtype, theirs, found))
    print(f"\nseed {seed}: lookup | unbound | survey (reason) | via plain unbound | trust-ad")
    for name, rdtype, theirs, found in table:
        ours = found["validating"]
        mark = "" if ours.dnssec == theirs else "   <-- DISAGREE"
        print(f"{name} {rdtype} | {theirs} | {ours.dnssec} ({ours.dnssec_reason}) | "
              f"{found['validating_plain'].dnssec} | {found['ad'].dnssec}{mark}")
    for way in ("validating", "validating_plain", "ad"):
        agree = sum(found[way].dnssec == theirs for *_n, theirs, found in table)
        print(f"{way}: {agree} of {len(table)} agree with Unbound")
    for way in ("validating", "validating_plain", "ad"):
        disagree = [(n, t, u, f[way].dnssec) for n, t, u, f in table if f[way].dnssec != u]
        assert not disagree, f"{way}, seed {seed}, shapes {drawn}"
    assert set(Counter(u for _n, _t, u, _f in table)) == {"secure", "insecure", "bogus"}
    # a resolver that does not validate: survey's own validation is unaffected (above);
    # trusting AD can say nothing, and says so instead of "insecure"
    assert {(f["ad_plain"].dnssec, f["ad_plain"].dnssec_reason) for *_x, f in table} == \
        {("indeterminate", "resolver_not_validating")}


async def test_clock_skew_edges_agree_with_unbound(tmp_path):
    """Signatures expired, or not yet valid, by a little less and a little more than
    Unbound's allowance (a tenth of the validity period, between val-sig-skew-min and
    val-sig-skew-max): secure inside, bogus outside, on both sides."""
    zones, anchor = build(tmp_path, skew_shapes())
    table = []
    with DnssecLab(tmp_path, zones, anchor) as lab:
        validator = Validator(Resolver([("127.0.0.1", lab.port)], timeout=2, lifetime=5),
                              Anchors.from_text(anchor + "\n"))
        for label, window, expected in SKEW_CASES:
            for name, rdtype in ((f"mx.{label}.lab.test", "A"), (f"{label}.lab.test", "MX"),
                                 (f"nope.{label}.lab.test", "A")):
                found = await validator.lookup(name, rdtype)
                theirs = await trio.to_thread.run_sync(lab.unbound_status, name, rdtype)
                table.append((label, window, name, rdtype, expected, found.dnssec,
                              found.dnssec_reason, theirs))
    print("\ncase | window (s from now) | lookup | expected | survey (reason) | unbound")
    for label, window, name, rdtype, expected, ours, reason, theirs in table:
        print(f"{label} | {window} | {name} {rdtype} | {expected} | {ours} ({reason}) | {theirs}")
    assert [(r[2], r[3], r[4], r[4]) for r in table] == [(r[2], r[3], r[5], r[7]) for r in table]
