"""The destination policy (net/guard.py): RFC 6890 ranges, testbed loopback-only, blocklist."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survey.net.guard import DestinationPolicy, PolicyError, load_blocklist, parse_blocklist

INTERNET = DestinationPolicy("internet")
TESTBED = DestinationPolicy("testbed")


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1",   # RFC 1122, RFC 1918
    "100.64.0.1", "169.254.1.1", "0.1.2.3",                  # RFC 6598, RFC 3927, RFC 791
    "192.0.2.1", "198.51.100.7", "203.0.113.9",              # RFC 5737 documentation
    "198.18.0.1", "224.0.0.251", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fd00::25", "ff02::1", "2001:db8::25", "3fff::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2001:2::1", "2002:a00:1::1",
    "::ffff:93.184.216.34",  # an AAAA carrying a mapped IPv4 is not a real IPv6 destination
])
def test_internet_mode_refuses_special_purpose_ranges(ip):
    assert "special-purpose" in INTERNET.check(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "2a00:1450:4001:82a::1b",
                                "64:ff9b::5db8:d822"])
def test_internet_mode_allows_public_addresses(ip):
    assert INTERNET.check(ip) is None


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.12.34.56", "::1", "::ffff:127.0.0.2"])
def test_testbed_mode_allows_loopback(ip):
    assert TESTBED.allows(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "10.0.0.1", "192.168.1.1", "2a00:1450::1", "fe80::1"])
def test_testbed_mode_refuses_everything_else(ip):
    assert "not loopback" in TESTBED.check(ip)


def test_blocklist_applies_in_both_modes():
    blocklist = parse_blocklist(["# opt-outs", "", "127.9.0.0/16", "93.184.216.34 # example",
                                 "2a00:1450::/32"])
    testbed = DestinationPolicy("testbed", blocklist)
    internet = DestinationPolicy("internet", blocklist)
    assert "blocklist" in testbed.check("127.9.1.2")
    assert testbed.allows("127.8.1.2")
    assert "blocklist" in internet.check("93.184.216.34")
    assert "blocklist" in internet.check("::ffff:93.184.216.34")
    assert "blocklist" in internet.check("2a00:1450:4001::1")
    assert internet.allows("93.184.216.35")


def test_bad_blocklist_line_is_one_clear_error(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("10.0.0.0/8\nnot-a-cidr\n")
    with pytest.raises(PolicyError, match=r"block.txt:2: not an address or CIDR"):
        load_blocklist(path)
    with pytest.raises(PolicyError, match="cannot read blocklist"):
        load_blocklist(tmp_path / "missing.txt")


def test_garbage_is_refused_not_raised():
    assert "not an IP address" in INTERNET.check("mx.example.com")
    assert "not an IP address" in TESTBED.check("")


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        DestinationPolicy("lan")


@given(st.text(max_size=60))
def test_any_text_gives_a_verdict(text):
    for policy in (INTERNET, TESTBED):
        assert policy.check(text) is None or isinstance(policy.check(text), str)


@given(st.ip_addresses())
def test_testbed_never_allows_what_internet_mode_allows(address):
    # The two modes are disjoint: nothing is reachable in both.
    assert not (INTERNET.allows(str(address)) and TESTBED.allows(str(address)))
