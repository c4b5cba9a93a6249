"""Cipher suite enumeration against a fake server model (survey.proto.enumerate)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto import ciphers
from survey.proto.enumerate import (
    Chosen,
    Failed,
    Offer,
    Refused,
    ServerEnumeration,
    SuiteEnumeration,
    outcome_from_events,
    run,
)
from survey.proto.tlshello import Alert, HelloRetryRequest, ServerHello, TLSProtocolError

TLS12 = ciphers.TLS12
CANDIDATES = ciphers.scan_candidates(TLS12)


@dataclass
class FakeServer:
    """A server model: supported suites per version in its own preference order.

    ``server_preference``: pick by its own order, else by the client's.
    ``max_offer``: refuse hellos with more suites than this (a size-limited stack).
    ``fail_after``: answer ``Failed`` from that hello on (a server that errors).
    """

    suites: dict[str, list[int]]
    server_preference: bool = True
    max_offer: int | None = None
    fail_after: int | None = None
    seen: list[Offer] = field(default_factory=list)

    def answer(self, offer: Offer):
        self.seen.append(offer)
        if self.fail_after is not None and len(self.seen) > self.fail_after:
            return Failed("timeout")
        mine = self.suites.get(offer.version, [])
        if not mine:
            return Refused("protocol_version")
        if self.max_offer is not None and len(offer.suites) > self.max_offer:
            return Refused("closed")
        if self.server_preference:
            pick = next((s for s in mine if s in offer.suites), None)
        else:
            pick = next((s for s in offer.suites if s in mine), None)
        return Chosen(pick) if pick is not None else Refused("handshake_failure")


def enumerate_with(server: FakeServer, version: str = TLS12, **kw):
    e = SuiteEnumeration(version, kw.pop("candidates", ciphers.scan_candidates(version)), **kw)
    run(e, server.answer)
    return e.result()


def pick_suites(n: int, seed: int = 1, pool=CANDIDATES) -> list[int]:
    rng = random.Random(seed)
    return rng.sample(list(pool), n)


def test_server_preference_30_suites_in_one_chunk():
    mine = pick_suites(30, pool=CANDIDATES[:128])
    r = enumerate_with(FakeServer({TLS12: mine}))
    assert r.supported and r.complete and r.preference == "server" and r.server_preference is True
    assert list(r.suites) == mine and r.ordered
    assert (
        r.hellos == 30 + 1 + 1
    )  # discovery in chunk 1 + refusal of chunk 2 (order differs from ours)


def test_client_preference_30_suites():
    mine = pick_suites(30, pool=CANDIDATES[:128])
    r = enumerate_with(FakeServer({TLS12: mine}, server_preference=False))
    assert r.preference == "client" and r.server_preference is False
    assert set(r.suites) == set(mine)
    assert list(r.suites) == [c for c in CANDIDATES if c in mine]  # our order
    assert r.hellos == 30 + 2 + 1  # + the reverse-order test hello


def test_server_order_that_agrees_with_ours_needs_the_test_hello():
    mine = [c for c in CANDIDATES[:128] if c in set(pick_suites(10, pool=CANDIDATES[:128]))]
    r = enumerate_with(FakeServer({TLS12: mine}))
    assert r.preference == "server" and list(r.suites) == mine
    assert r.hellos == 10 + 2 + 1


def test_one_suite_preference_is_undefined():
    r = enumerate_with(FakeServer({TLS12: [0xC02F]}))
    assert (
        r.supported
        and r.suites == (0xC02F,)
        and r.preference == "undefined"
        and r.server_preference is None
    )
    assert r.hellos == 1 + 2  # pick, refusal in chunk 1, refusal of chunk 2


def test_unsupported_version_costs_one_hello():
    r = enumerate_with(FakeServer({"TLSv1.3": [0x1301]}))
    assert r.supported is False and r.suites == () and r.hellos == 1 and r.complete


def test_no_shared_suite_costs_one_hello_per_chunk():
    r = enumerate_with(FakeServer({TLS12: [0x9999]}))
    assert r.supported is False and r.hellos == 2 and r.complete


def test_suites_only_in_a_later_chunk():
    late = list(CANDIDATES[128:])[:3]
    r = enumerate_with(FakeServer({TLS12: late}))
    assert set(r.suites) == set(late) and r.preference == "server" and list(r.suites) == late
    assert r.hellos == 1 + 3 + 1 + 1  # chunk 1 refused, 3 picks, chunk 2 refusal, test hello


@pytest.mark.parametrize("legacy_first", [False, True])
def test_server_order_across_chunks_is_merged(legacy_first):
    modern = list(CANDIDATES[:10])
    legacy = list(CANDIDATES[130:133])
    mine = legacy + modern if legacy_first else modern + legacy
    random.Random(3).shuffle(modern)
    mine = (legacy + modern) if legacy_first else (modern + legacy)
    r = enumerate_with(FakeServer({TLS12: mine}))
    assert r.preference == "server" and list(r.suites) == mine and r.ordered and r.complete
    discovery = 13 + 2
    merge = r.hellos - discovery
    if legacy_first:
        assert merge == 1 + 3  # tail check, then one hello per suite that ranks at the top
    else:
        assert merge == 1  # one comparison shows the legacy chain goes last


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_server_order_and_spread_is_found_exactly(data):
    n = data.draw(st.integers(0, 40))
    mine = data.draw(st.permutations(list(CANDIDATES)).map(lambda p: p[:n]))
    pref = data.draw(st.booleans())
    chunk = data.draw(st.sampled_from([16, 64, 128, 1000]))
    r = enumerate_with(FakeServer({TLS12: mine}, server_preference=pref), chunk_size=chunk)
    assert set(r.suites) == set(mine) and r.complete
    assert r.supported == (n > 0)
    if n >= 2:
        assert r.preference == ("server" if pref else "client")
        if pref:
            assert list(r.suites) == mine
    else:
        assert r.preference == "undefined"
    if chunk >= len(CANDIDATES):
        assert r.hellos <= n + 2


def test_size_limited_server_is_enumerated_with_smaller_chunks():
    mine = pick_suites(5, pool=CANDIDATES[:60])
    big = enumerate_with(FakeServer({TLS12: mine}, max_offer=64), chunk_size=1000)
    assert big.supported is False  # one hello of 235 suites: the server hangs up
    small = enumerate_with(FakeServer({TLS12: mine}, max_offer=64), chunk_size=64)
    assert set(small.suites) == set(mine)


def test_server_that_errors_midway_gives_a_partial_result():
    mine = pick_suites(10, pool=CANDIDATES[:100])
    r = enumerate_with(FakeServer({TLS12: mine}, fail_after=4))
    assert not r.complete and r.error == "timeout" and r.suites == tuple(mine[:4]) and not r.ordered
    r = enumerate_with(FakeServer({TLS12: mine}, fail_after=0))
    assert r.supported is None and r.suites == () and r.hellos == 1


def test_hello_budget():
    e = SuiteEnumeration(TLS12, CANDIDATES, max_hellos=5)
    run(e, FakeServer({TLS12: pick_suites(20)}).answer)
    r = e.result()
    assert r.hellos == 5 and not r.complete and r.error == "hello_budget"


def test_pick_outside_the_offer_stops():
    e = SuiteEnumeration(TLS12, CANDIDATES)
    e.record(Chosen(0xFFFF))
    assert e.done and e.result().error == "suite_not_offered" and not e.result().complete
    with pytest.raises(RuntimeError):
        e.record(Refused("closed"))


def test_mixed_preference_is_reported():
    # Client order while discovering, but the reverse-order test gets an answer neither model
    # explains (a suite from the middle): reported as mixed, suites still complete.
    mine = [0xC030, 0xC02F, 0xCCA8]

    def answer(offer):
        if offer.purpose == "preference":
            return Chosen(offer.suites[1])
        pick = next((s for s in offer.suites if s in mine), None)
        return Chosen(pick) if pick else Refused("handshake_failure")

    e = SuiteEnumeration(TLS12, CANDIDATES)
    run(e, answer)
    assert (
        e.result().preference == "mixed"
        and set(e.result().suites) == set(mine)
        and e.result().complete
    )


class Reversed(SuiteEnumeration):
    """The hooks (module doc): offers reversed, the first found suite folded in at the end."""

    def discovery_offer(self, chunk, chain):
        return tuple(chunk[::-1]) + (tuple(self.found[:1]) if len(chain) == 1 else ())

    def known_pick(self, suite, chain):
        self.known_picks.append(suite)
        return True

    def settled_preference(self):
        return "client" if self.known_picks else None

    known_picks: list[int]


@pytest.mark.parametrize("server_preference", [True, False])
def test_the_hooks_shape_the_offers_and_the_machine_keeps_the_rest(server_preference):
    one_chunk = CANDIDATES[:128]
    mine = pick_suites(4, seed=3, pool=one_chunk)
    e = Reversed(TLS12, one_chunk)
    e.known_picks = []
    server = FakeServer({TLS12: mine}, server_preference=server_preference)
    run(e, server.answer)
    r = e.result()
    first = server.seen[0].suites
    assert first == tuple(reversed(one_chunk))
    assert [o for o, _ in e.history] == [o.suites for o in server.seen if o.purpose == "discover"
                                         ][:len(e.history)]
    if server_preference:   # the folded suite is its favourite: picked again, the chunk ends
        assert e.known_picks == [mine[0]] and e.found == (mine[0],)
        assert r.preference == "client" and r.complete
    else:
        assert e.known_picks == [] and set(r.suites) == set(mine) and r.complete


def test_a_refused_offer_with_found_suites_stops():
    mine = pick_suites(3, seed=4, pool=CANDIDATES[:100])

    def answer(offer):
        if offer.suites[-1] in mine:
            return Refused("handshake_failure")   # the folded offer: contradicts the pick
        pick = next((s for s in offer.suites if s in mine), None)
        return Chosen(pick) if pick else Refused("handshake_failure")

    class Folding(SuiteEnumeration):
        def discovery_offer(self, chunk, chain):
            return tuple(chunk) + tuple(chain)

    e = Folding(TLS12, CANDIDATES[:128])
    run(e, answer)
    assert e.result().error == "refused_known_suites" and not e.result().complete
    assert e.found == (next(s for s in CANDIDATES[:128] if s in mine),)


def test_preference_with_single_suite_chains_needs_two_test_hellos():
    a, b = CANDIDATES[0], CANDIDATES[200]  # one suite in each chunk
    for pref, order in ((True, [b, a]), (True, [a, b]), (False, [a, b])):
        r = enumerate_with(FakeServer({TLS12: order}, server_preference=pref))
        assert set(r.suites) == {a, b} and r.preference == ("server" if pref else "client")
        if pref:
            assert list(r.suites) == order


def test_tls13_all_versions_and_counts():
    server = FakeServer(
        {
            "SSLv3": [0x000A, 0x0005],
            "TLSv1.0": [0xC014, 0x0035, 0x000A],
            "TLSv1.2": pick_suites(30, pool=CANDIDATES[:128]),
            "TLSv1.3": [0x1301, 0x1302, 0x1303],
        }
    )
    e = ServerEnumeration()
    run(e, server.answer)
    by_version = {r.version: r for r in e.results()}
    assert e.versions_supported() == ("SSLv3", "TLSv1.0", "TLSv1.2", "TLSv1.3")
    assert by_version["TLSv1.1"].supported is False and by_version["TLSv1.1"].hellos == 1
    assert list(by_version["TLSv1.3"].suites) == [0x1301, 0x1302, 0x1303]
    assert by_version["TLSv1.3"].hellos == 4  # 3 picks + 1 refusal; order differs from ours
    assert e.hellos == sum(r.hellos for r in e.results())


# --- outcome_from_events --------------------------------------------------------------------


def test_outcomes_from_parser_events():
    offer = Offer(TLS12, (0xC02F, 0x002F))
    sh = ServerHello(TLS12, 0x0303, 0xC02F)
    assert outcome_from_events(offer, [sh]) == Chosen(0xC02F)
    assert outcome_from_events(offer, [ServerHello("TLSv1.0", 0x0301, 0x002F)]) == Refused(
        "version:TLSv1.0"
    )
    assert outcome_from_events(offer, [ServerHello(None, 0x7F1C, 0x002F)]) == Refused(
        "version:0x7f1c"
    )
    assert outcome_from_events(offer, [ServerHello(TLS12, 0x0303, 0x0005)]) == Failed(
        "suite_not_offered"
    )
    assert outcome_from_events(offer, [Alert(2, 40)]) == Refused("handshake_failure")
    assert outcome_from_events(offer, [Alert(1, 112), Alert(2, 70)]) == Refused("protocol_version")
    assert outcome_from_events(offer, []) == Refused("closed")
    assert outcome_from_events(offer, [], transport="reset") == Refused("reset")
    assert outcome_from_events(offer, [], transport="timeout") == Failed("timeout")
    assert outcome_from_events(offer, [], error=TLSProtocolError("plaintext", "x")) == Failed(
        "plaintext"
    )
    hrr = HelloRetryRequest("TLSv1.3", 0x0304, 0x1301, group=0x18)
    assert outcome_from_events(Offer("TLSv1.3", (0x1301,)), [hrr]) == Chosen(0x1301)
