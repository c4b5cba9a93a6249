"""Certificate facts and verdicts (survey/certs.py) on real chains from a test CA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from survey.certs import CertError, TrustStore, evaluate, facts, find_path, load_cert

NOW = datetime.now(UTC)
HOST = "mx.example.test"


def der_chain(leaf: trustme.LeafCert) -> list[bytes]:
    return [x509.load_pem_x509_certificate(b.bytes()).public_bytes(Encoding.DER)
            for b in leaf.cert_chain_pems]


def store_of(*cas: trustme.CA) -> TrustStore:
    return TrustStore([x509.load_pem_x509_certificate(ca.cert_pem.bytes()) for ca in cas])


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def store(ca):
    return store_of(ca)


def make_cert(*, subject_cn, issuer_cn=None, key=None, issuer_key=None, san=None,
              not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=30),
              ca=False):
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                          issuer_cn or subject_cn)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    return builder.sign(issuer_key or key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_a_valid_chain(ca, store):
    verdict = evaluate(der_chain(ca.issue_cert(HOST)), HOST, NOW, store)
    assert verdict.status == "valid"
    assert (verdict.trusted, verdict.time_valid, verdict.name_match) == (True, True, True)


def test_intermediates_in_any_order_and_a_missing_intermediate(ca, store):
    child = ca.create_child_ca()
    chain = der_chain(child.issue_cert(HOST))
    assert len(chain) == 2  # leaf, intermediate
    unrelated = der_chain(trustme.CA().issue_cert(HOST))[0]
    assert evaluate([chain[0], unrelated, chain[1]], HOST, NOW, store).status == "valid"
    # No AIA fetching: a server that omits its intermediate is untrusted.
    missing = evaluate(chain[:1], HOST, NOW, store)
    assert (missing.status, missing.trusted) == ("untrusted", False)


def test_untrusted_issuer(store):
    other = trustme.CA()
    verdict = evaluate(der_chain(other.issue_cert(HOST)), HOST, NOW, store)
    assert (verdict.status, verdict.trusted, verdict.name_match) == ("untrusted", False, True)


def test_self_signed():
    der = make_cert(subject_cn=HOST, san=[HOST])
    verdict = evaluate([der], HOST, NOW, TrustStore())
    assert (verdict.status, verdict.trusted, verdict.time_valid) == ("self_signed", False, True)
    assert facts(der).self_signed


def test_self_signed_but_added_as_an_anchor_is_valid():
    der = make_cert(subject_cn=HOST, san=[HOST])
    store = TrustStore([load_cert(der)])
    assert evaluate([der], HOST, NOW, store).status == "valid"


def test_expired_and_not_yet_valid(ca, store):
    expired = ca.issue_cert(HOST, not_before=NOW - timedelta(days=60),
                            not_after=NOW - timedelta(days=1))
    verdict = evaluate(der_chain(expired), HOST, NOW, store)
    assert (verdict.status, verdict.trusted, verdict.time_valid) == ("expired", True, False)
    future = ca.issue_cert(HOST, not_before=NOW + timedelta(days=1),
                           not_after=NOW + timedelta(days=60))
    assert evaluate(der_chain(future), HOST, NOW, store).status == "not_yet_valid"


def test_untrusted_outranks_expired_and_name():
    # docs/design.md: the first failing of no_cert, self_signed, untrusted, expired, name_mismatch.
    der = make_cert(subject_cn="other.test", san=["other.test"],
                    not_after=NOW - timedelta(days=1), not_before=NOW - timedelta(days=9))
    verdict = evaluate([der], HOST, NOW, TrustStore())
    assert verdict.status == "self_signed"
    assert (verdict.time_valid, verdict.name_match) == (False, False)


def test_name_mismatch(ca, store):
    verdict = evaluate(der_chain(ca.issue_cert("other.example.test")), HOST, NOW, store)
    assert (verdict.status, verdict.name_match, verdict.trusted) == ("name_mismatch", False, True)


def test_wildcard_name(ca, store):
    assert evaluate(der_chain(ca.issue_cert("*.example.test")), HOST, NOW, store).status == "valid"


def test_expired_intermediate_makes_the_path_time_invalid():
    root_key, mid_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = make_cert(subject_cn="Root", key=root_key, ca=True)
    mid = make_cert(subject_cn="Mid", issuer_cn="Root", key=mid_key, issuer_key=root_key,
                    not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=2),
                    ca=True)
    leaf = make_cert(subject_cn=HOST, issuer_cn="Mid", issuer_key=mid_key, san=[HOST])
    store = TrustStore([load_cert(root)])
    verdict = evaluate([leaf, mid], HOST, NOW, store)
    assert (verdict.status, verdict.trusted, verdict.time_valid) == ("expired", True, False)


def test_a_forged_issuer_name_is_not_a_path():
    # Same issuer name as the anchor, signed by another key: no path.
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert(subject_cn="Root", key=root_key)
    forged = make_cert(subject_cn=HOST, issuer_cn="Root", san=[HOST],
                       issuer_key=ec.generate_private_key(ec.SECP256R1()))
    assert find_path([load_cert(forged)], TrustStore([load_cert(root)])) is None


def test_no_cert_and_garbage():
    assert evaluate([], HOST, NOW, TrustStore()).status == "no_cert"
    garbage = evaluate([b"\x30\x03\x02\x01\x00"], HOST, NOW, TrustStore())
    assert (garbage.status, garbage.trusted) == ("untrusted", False)
    with pytest.raises(CertError):
        facts(b"not a certificate")


def test_facts_of_a_leaf(ca):
    der = der_chain(ca.issue_cert(HOST, "mx2.example.test"))[0]
    f = facts(der)
    assert f.san_dns == (HOST, "mx2.example.test") and f.key_type == "EC" and f.key_bits == 256
    assert f.signature_algorithm == "ecdsa-with-SHA256" and not f.self_signed
    assert len(f.sha256) == 64 and f.not_before < NOW < f.not_after
    row = f.row(NOW)
    assert row["san_dns"] == sorted(row["san_dns"]) and row["der"] == der


def test_rsa_key_facts():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    f = facts(make_cert(subject_cn=HOST, key=key))
    assert (f.key_type, f.key_bits, f.signature_algorithm) == ("RSA", 2048, "sha256WithRSAEncryption")
    assert f.subject == f"CN={HOST}" and f.san_dns == () and f.subject_cn == HOST


def test_cn_is_used_only_without_a_san(store):
    # RFC 6125 §6.4.4: no dNSName SAN -> the CN may be checked.
    der = make_cert(subject_cn=HOST)
    assert evaluate([der], HOST, NOW, TrustStore([load_cert(der)])).name_match is True
    der = make_cert(subject_cn=HOST, san=["other.test"])
    assert evaluate([der], HOST, NOW, TrustStore([load_cert(der)])).name_match is False


def test_mozilla_roots_load():
    store = TrustStore.load()
    assert len(store.anchors) > 100 and store.sources


def test_an_unreadable_ca_file_is_a_clear_error(tmp_path):
    with pytest.raises(CertError, match="cannot read CA file"):
        TrustStore.load([tmp_path / "nope.pem"], mozilla=False)


@given(st.lists(st.binary(max_size=300), max_size=4))
def test_any_bytes_give_a_verdict(chain):
    verdict = evaluate(chain, HOST, NOW, TrustStore())
    assert verdict.status in {"no_cert", "self_signed", "untrusted"}


@pytest.fixture(scope="module")
def good_chain():
    from survey.testbed import chains
    kind = chains.kind("valid_two_intermediates", HOST)
    built = chains.build(kind.spec, NOW)
    return built.sent_der(), TrustStore(list(built.anchors))


@given(st.data())
def test_damaged_chains_give_a_verdict_never_a_traceback(good_chain, data):
    """Hostile input: flip, cut or splice bytes anywhere in a real chain."""
    ders, store = good_chain
    i = data.draw(st.integers(0, len(ders) - 1))
    der = bytearray(ders[i])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(der) - 1))
        der[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        der = der[:data.draw(st.integers(1, len(der)))]
    chain = list(ders)
    chain[i] = bytes(der)
    verdict = evaluate(chain, HOST, NOW, store)
    assert verdict.status in {"valid", "untrusted", "self_signed", "expired", "not_yet_valid",
                              "name_mismatch"}
    if verdict.trusted is False:
        assert verdict.reason is not None


def test_every_reason_is_in_the_vocabulary():
    from survey.certs import REASONS
    from survey.vocabulary import CertReason
    assert set(REASONS) == set(CertReason)
