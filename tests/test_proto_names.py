"""Certificate name matching (RFC 6125 §6.4, RFC 7817 §3, RFC 8461 §4.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto.mtasts import mx_matches
from survey.proto.names import cert_name_matches, match_presented, normalise_reference

FUZZ = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("MX.Example.COM.", "mx.example.com"),
        ("mx.bücher.example", "mx.xn--bcher-kva.example"),  # RFC 6125 §6.4.2
        ("MX.BÜCHER.example.", "mx.xn--bcher-kva.example"),  # UTS-46 mapping
        ("mx.xn--bcher-kva.example", "mx.xn--bcher-kva.example"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        (".", None),
        ("", None),
        ("mx..example.com", None),
        ("mx.example.com..", None),
        (".example.com", None),
        ("*.example.com", None),
        ("mx example.com", None),
        ("a" * 64 + ".example", None),
        (".".join(["a" * 63] * 4), None),
        ("mx_1.bücher.example", None),  # IDNA2008 rejects "_" next to a U-label
        ("x" * 5000, None),
    ],
)
def test_normalise_reference(host, expected):
    assert normalise_reference(host) == expected


@pytest.mark.parametrize(
    ("host", "san", "cn", "expected"),
    [
        # RFC 6125 §6.4.1: whole labels, case-insensitive.
        ("mx.example.com", ["other.example.com", "MX.EXAMPLE.COM"], None, True),
        ("mx.example.com", ["mx.example.co"], None, False),
        ("mx.example.com", ["x.example.com"], None, False),
        # RFC 6125 §6.4.3 rule 2: "*" is exactly one left-most label.
        ("mx.example.com", ["*.example.com"], None, True),
        ("example.com", ["*.example.com"], None, False),
        ("a.mx.example.com", ["*.example.com"], None, False),
        ("mx.example.com.", ["*.EXAMPLE.com"], None, True),
        # RFC 6125 §6.4.3 rule 1 / RFC 7817 §3: no wildcard outside the left-most label.
        ("mx.a.example.com", ["mx.*.example.com"], None, False),
        ("a.example.*", ["a.example.*"], None, False),
        # RFC 7817 §3: partial-label wildcards are not matched (decision 7).
        ("mx1.example.com", ["mx*.example.com"], None, False),
        ("mx1.example.com", ["m*1.example.com"], None, False),
        ("mx1.example.com", ["*1.example.com"], None, False),
        # RFC 6125 §6.4.3 rule 3: no wildcard inside an A-label.
        ("xn--bcher-kva.example.com", ["xn--*.example.com"], None, False),
        # A whole-label wildcard may stand for an A-label (names.py docstring).
        ("xn--bcher-kva.example.com", ["*.example.com"], None, True),
        ("bücher.example.com", ["*.example.com"], None, True),
        # "*.tld" and "*" never match (decision 7).
        ("example.com", ["*.com"], None, False),
        ("localhost", ["*"], None, False),
        ("mx.example.com", ["*."], None, False),
        # A SAN with a trailing dot or an empty label is malformed (RFC 5280 §4.2.1.6).
        ("mx.example.com", ["mx.example.com."], None, False),
        ("mx.example.com", ["*.example.com."], None, False),
        ("mx.example.com", ["mx..example.com"], None, False),
        ("mx.example.com", [""], None, False),
        # A dNSName is IA5String: a U-label SAN is not compared.
        ("mx.xn--bcher-kva.example", ["mx.bücher.example"], None, False),
        # RFC 6125 §6.4.4: CN only without any DNS-ID.
        ("mx.example.com", [], "MX.example.com", True),
        ("mx.example.com", [], "*.example.com", True),
        ("mx.example.com", [], "*.com", False),
        ("mx.example.com", ["other.example.com"], "mx.example.com", False),
        ("mx.example.com", ["mx.example.com."], "mx.example.com", False),  # malformed SAN still counts
        ("mx.example.com", None, "mx.example.com", True),
        ("mx.example.com", [], "", False),
        ("mx.example.com", [], "Example Mail Server", False),
        # RFC 6125 §1.7.2: IP addresses are not DNS-IDs.
        ("192.0.2.1", ["192.0.2.1"], None, False),
        ("2001:db8::1", ["2001:db8::1"], None, False),
        ("192.0.2.1", ["*.0.2.1"], None, False),
        ("192.0.2.1.", ["192.0.2.1"], None, False),
        # Hosts that are not host names match nothing.
        (".", ["*.example.com"], None, False),
        ("", [""], "", False),
    ],
)
def test_default_profile(host, san, cn, expected):
    assert cert_name_matches(host, san, cn) is expected


@pytest.mark.parametrize(
    ("host", "san", "cn", "expected"),
    [
        ("mx.example.com", ["*.example.com"], "unrelated.example.net", True),
        ("mx.example.com", [], "mx.example.com", False),  # RFC 8461 §4.2: a DNS-ID is required
        ("mx.example.com", None, "mx.example.com", False),
        ("mta-sts.example.com", ["mta-sts.example.com"], None, True),  # RFC 8461 §3.3 policy host
        ("mta-sts.example.com", ["*.example.com"], None, True),
        ("mx.example.com", ["example.com"], "mx.example.com", False),
    ],
)
def test_mta_sts_profile(host, san, cn, expected):
    assert cert_name_matches(host, san, cn, profile="mta-sts") is expected


def test_unknown_profile_is_a_caller_bug():
    with pytest.raises(ValueError):
        cert_name_matches("mx.example.com", ["mx.example.com"], None, profile="dane")


def test_mx_and_cert_share_the_label_rules():
    # RFC 8461 §4.1 and RFC 6125 §6.4.3 agree except for "*.tld" and the trailing dot.
    for pattern, host in [("*.example.com", "a.example.com"), ("*.example.com", "a.b.example.com"),
                          ("mx*.example.com", "mx1.example.com"), ("a.example.com", "a.example.com")]:
        assert mx_matches(pattern, host) is cert_name_matches(host, [pattern], None)
    assert mx_matches("*.com", "example.com") and not cert_name_matches("example.com", ["*.com"], None)
    assert mx_matches("mx.example.com.", "mx.example.com")
    assert not cert_name_matches("mx.example.com", ["mx.example.com."], None)


# --- hypothesis -------------------------------------------------------------------------

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # keeps dotted quads (IP literals) out
hostname = st.tuples(st.lists(label, min_size=1, max_size=4), tld).map(lambda t: ".".join(t[0] + [t[1]]))


@FUZZ
@given(st.text(max_size=60), st.lists(st.text(max_size=60), max_size=4),
       st.none() | st.text(max_size=60), st.sampled_from(["default", "mta-sts"]))
def test_arbitrary_names_never_raise(host, san, cn, profile):
    assert cert_name_matches(host, san, cn, profile) in (True, False)


@FUZZ
@given(st.text(max_size=60), st.text(max_size=60), st.integers(0, 3))
def test_match_presented_arbitrary(presented, host, minimum):
    reference = normalise_reference(host)
    if reference is not None:
        assert match_presented(presented, reference, min_wildcard_suffix_labels=minimum) in (True, False)


@FUZZ
@given(hostname, st.booleans(), st.booleans())
def test_exact_san_always_matches_any_case(host, upper_host, upper_san):
    san = host.upper() if upper_san else host
    assert cert_name_matches(host.upper() if upper_host else host, [san], None)


@FUZZ
@given(label, hostname, hostname)
def test_wildcard_matches_exactly_one_label(left, suffix, other):
    assert cert_name_matches(f"{left}.{suffix}", [f"*.{suffix}"], None)
    assert not cert_name_matches(suffix, [f"*.{suffix}"], None)
    assert not cert_name_matches(f"{left}.{left}.{suffix}", [f"*.{suffix}"], None)
    if other != suffix:
        assert not cert_name_matches(f"{left}.{other}", [f"*.{suffix}"], None)
