"""testssl.sh and sslscan on the same Postfix listeners: do they, we and the configuration agree?

Three independent views of each listener: its configuration (expanded by
OpenSSL, tests/interop/expected.py), two peer tools (tests/interop/peers.py),
and our `--profile ciphers` scan. Every pair must agree on the versions and
the (version, suite) pairs; testssl.sh must also agree on whether the server
enforces its own order, and where it does, the suite sslscan reports as
"preferred" must be the first of our preference order. The table of who agreed is printed at the end of the
test session (conftest's terminal summary) and kept in AGREEMENT.

Known, explained differences (asserted, so a change in a tool shows up):
- testssl.sh reports "NOT a cipher order configured" even for a server that
  never reached TLS; the parser drops the order when the tool found no TLS.
- Neither tool tells "no STARTTLS" from "554 at the greeting" the way our
  status does: testssl.sh calls both "doesn't seem to be a TLS/SSL enabled
  server"; sslscan says "did not appear to support STARTTLS" for the first
  and "did not appear to be an SMTP service" for the second.
"""

from __future__ import annotations

import pytest

from tests.interop.conftest import AGREEMENT
from tests.interop.expected import TLS_LISTENERS, configured
from tests.interop.lab import BY_LABEL, LISTENERS, NEEDS_LAB
from tests.interop.peers import NEEDS_PEERS

# The first test here waits for the peers (started with the first scan): more than the
# suite's default two minutes when the machine is busy.
pytestmark = [pytest.mark.interop, NEEDS_LAB, NEEDS_PEERS, pytest.mark.timeout(300)]
TOOLS = ("testssl.sh", "sslscan")


def ours(ciphers_scan, label):
    row = ciphers_scan.hosts[BY_LABEL[label].ip]
    return (set(row["versions_supported"] or ()),
            {(s["version"], s["name"]) for s in row["cipher_suites"] or ()}, row)


def diff(a: set, b: set) -> str:
    return "yes" if a == b else f"NO (only ours: {sorted(a - b)}; only theirs: {sorted(b - a)})"


def test_peers_reported_every_suite_by_a_known_code(peer_views):
    assert {key: view.unknown for key, view in peer_views.items() if view.unknown} == {}


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=lambda listener: listener.label)
def test_peers_see_the_configuration(peer_views, listener):
    expected = configured(listener)
    for tool in TOOLS:
        view = peer_views.get((tool, listener.label))
        if view is None:
            continue                       # testssl.sh runs on one of each configuration
        assert view.error is None, (tool, view.error)
        assert view.versions == set(expected.versions), tool
        assert view.all_suites() == expected.suite_set(), tool
        if tool == "testssl.sh":
            assert view.server_order is expected.server_order


@pytest.mark.parametrize("listener", TLS_LISTENERS, ids=lambda listener: listener.label)
def test_we_agree_with_the_peers(peer_views, ciphers_scan, listener):
    versions, suites, row = ours(ciphers_scan, listener.label)
    for tool in TOOLS:
        view = peer_views.get((tool, listener.label))
        if view is None:
            continue
        order = "n/a"
        if view.server_order is not None:
            enforced = {p["enforced"] for p in row["server_preference"]}
            order = diff(enforced, {view.server_order})
        elif view.preferred and configured(listener).server_order:
            # sslscan does not judge the order, but a server that enforces its own picks
            # its first choice from whatever the tool offers: our preference_order 1.
            firsts = {s["version"]: s["name"] for s in row["cipher_suites"]
                      if s["preference_order"] == 1}
            order = diff(set(firsts.items()), set(view.preferred.items()))
        AGREEMENT[(listener.label, tool)] = (diff(versions, view.versions),
                                             diff(suites, view.all_suites()), order)
    for tool in TOOLS:
        if (listener.label, tool) in AGREEMENT:
            assert set(AGREEMENT[(listener.label, tool)]) <= {"yes", "n/a"}, tool


@pytest.mark.parametrize("listener", [x for x in LISTENERS if x not in TLS_LISTENERS],
                         ids=lambda listener: listener.label)
def test_no_tls_listeners(peer_views, ciphers_scan, listener):
    """No TLS for anyone; our status says why, the tools' messages less precisely."""
    status = ciphers_scan.hosts[listener.ip]["status"]
    testssl, sslscan = peer_views[("testssl.sh", listener.label)], peer_views[("sslscan",
                                                                              listener.label)]
    assert not testssl.versions and not sslscan.versions
    assert "doesn't seem to be a TLS/SSL enabled server" in testssl.error
    if listener.tls == "none":
        assert status == "no_starttls" and "did not appear to support STARTTLS" in sslscan.error
    else:
        assert status == "smtp_reject_5xx"
        assert "did not appear to be an SMTP service" in sslscan.error
    for tool in ("testssl.sh", "sslscan"):
        AGREEMENT[(listener.label, tool)] = (f"yes (none; ours: {status})", "yes (none)", "n/a")
