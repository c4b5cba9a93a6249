"""DANE for SMTP (survey/dane.py): TLSA records against chains made here (trustme), with
the RFC 7672 / RFC 6698 / RFC 7671 rules each case cites; hypothesis for the parser."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from survey.dane import Tlsa, applicability, matches, parse_tlsa, session_status, verdict
from survey.vocabulary import DaneStatus

NOW = datetime.now(UTC)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _spki(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def chain():
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("mx.example.test")
    return [_der(p.bytes()) for p in leaf.cert_chain_pems]   # leaf, intermediate


def test_tlsa_rdata_round_trip_rfc6698_2_1():
    record = parse_tlsa(bytes([3, 1, 1]) + b"\xab" * 32)
    assert record == Tlsa(3, 1, 1, b"\xab" * 32) and record.usable
    assert record.text() == "3 1 1 " + "ab" * 32
    assert parse_tlsa(b"\x03\x01") is None


@given(st.binary(max_size=80))
def test_any_rdata_parses_or_is_refused_without_raising(data):
    record = parse_tlsa(data)
    assert record is None or record.data == data[3:]


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=70))
def test_matching_arbitrary_records_never_raises(usage, selector, mtype, data):
    assert matches(Tlsa(usage, selector, mtype, data), b"not a certificate") in (True, False)


def test_dane_ee_matches_the_leaf_by_every_selector_and_type(chain):
    leaf = chain[0]
    for selector, selected in ((0, leaf), (1, _spki(leaf))):
        for mtype, data in ((0, selected), (1, hashlib.sha256(selected).digest()),
                            (2, hashlib.sha512(selected).digest())):
            assert matches(Tlsa(3, selector, mtype, data), leaf), (selector, mtype)
            assert not matches(Tlsa(3, selector, mtype, data), chain[1])


def test_dane_ee_ignores_names_and_dates_rfc7672_3_1_1(chain):
    record = Tlsa(3, 1, 1, hashlib.sha256(_spki(chain[0])).digest())
    assert verdict([record], chain, ["some.other.name"], NOW) is DaneStatus.VALID
    leaf = x509.load_der_x509_certificate(chain[0])
    assert verdict([record], chain, ["mx.example.test"],
                   leaf.not_valid_before_utc - timedelta(days=1)) is DaneStatus.VALID


def test_dane_ta_needs_the_path_and_a_reference_name_rfc7672_3_2_3(chain):
    ta = Tlsa(2, 1, 1, hashlib.sha256(_spki(chain[1])).digest())
    assert verdict([ta], chain, ["mx.example.test"], NOW) is DaneStatus.VALID
    assert verdict([Tlsa(2, 0, 1, hashlib.sha256(chain[1]).digest())], chain,
                   ["mx.example.test"], NOW) is DaneStatus.VALID
    assert verdict([ta], chain, ["other.example.test"], NOW) is DaneStatus.NO_MATCH
    leaf = x509.load_der_x509_certificate(chain[0])
    before = leaf.not_valid_before_utc - timedelta(days=1)
    assert verdict([ta], chain, ["mx.example.test"], before) is DaneStatus.NO_MATCH  # dates
    assert verdict([ta], chain[:1], ["mx.example.test"], NOW) is DaneStatus.NO_MATCH
    # a TA record matching the leaf itself is no trust anchor for it
    assert verdict([Tlsa(2, 1, 1, hashlib.sha256(_spki(chain[0])).digest())], chain,
                   ["mx.example.test"], NOW) is DaneStatus.NO_MATCH


def test_rollover_unusable_and_mismatch(chain):
    fresh = Tlsa(3, 1, 1, hashlib.sha256(_spki(chain[0])).digest())
    stale = Tlsa(3, 1, 1, b"\x00" * 32)
    assert verdict([stale, fresh], chain, [], NOW) is DaneStatus.VALID   # any usable match
    assert verdict([stale], chain, [], NOW) is DaneStatus.NO_MATCH
    # RFC 7672 §3.1.3: PKIX-TA(0), PKIX-EE(1) and unknown parameters are unusable
    pkix = Tlsa(1, 1, 1, fresh.data)
    assert verdict([pkix, Tlsa(3, 1, 7, b""), Tlsa(3, 2, 1, b"")], chain, [], NOW) \
        is DaneStatus.NO_USABLE_RECORDS


def test_applicability_rfc7672_2_2():
    ok = ("secure", "secure", "secure", "ok", True)
    assert applicability(*ok) is None
    assert applicability("insecure", "secure", "secure", "ok", True) is DaneStatus.NOT_APPLICABLE
    assert applicability("secure", "insecure", None, None, False) is DaneStatus.NOT_APPLICABLE
    assert applicability("secure", "secure", "secure", "nxdomain", False) \
        is DaneStatus.NOT_APPLICABLE
    assert applicability("bogus", "secure", "secure", "ok", True) is DaneStatus.DNSSEC_BOGUS
    assert applicability("secure", "bogus", None, None, False) is DaneStatus.DNSSEC_BOGUS
    assert applicability("secure", "secure", "bogus", "ok", True) is DaneStatus.DNSSEC_BOGUS
    assert applicability("secure", "secure", "indeterminate", "servfail", False) \
        is DaneStatus.TLSA_LOOKUP_FAILED
    assert session_status("ok") is None
    assert session_status("no_starttls") is DaneStatus.NO_STARTTLS
    assert session_status("starttls_rejected") is DaneStatus.NO_STARTTLS
    assert session_status("tls_handshake_failed") is DaneStatus.TLS_FAILED
    assert session_status("connect_timeout") is DaneStatus.TLS_FAILED


def test_the_sender_decides_by_dane_then_mta_sts_then_opportunistic_rfc8461_2():
    from survey.dane import DANE_RESULT_TYPES, sender
    assert sender("valid", "fail") == "dane_deliver"             # DANE first
    assert sender("no_usable_records", None) == "dane_deliver"   # TLS without checks
    assert sender("no_match", "deliver") == "dane_fail"
    assert sender("not_applicable", "deliver") == "sts_deliver"
    assert sender("not_applicable", "fail") == "sts_fail"
    assert sender("not_applicable", "no_policy") == "opportunistic"
    assert sender(None, "deliver") is None                       # DANE not measured
    assert DANE_RESULT_TYPES[DaneStatus.NO_MATCH] == "tlsa-invalid"
    assert DANE_RESULT_TYPES[DaneStatus.DNSSEC_BOGUS] == "dnssec-invalid"
