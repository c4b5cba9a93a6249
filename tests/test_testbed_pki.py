"""The testbed PKI: every certificate kind, judged by a real TLS client (Python ssl).

Handshakes run in memory (two SSLObjects pumping bytes through MemoryBIOs):
the same OpenSSL code paths as over a socket, without ports or threads.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from survey.testbed import chains
from survey.testbed.pki import (
    CERT_KINDS,
    INTERMEDIATE_NAME,
    ROOT_NAME,
    UNTRUSTED_NAME,
    Pki,
    PkiError,
    cipher_string,
    sni_default_name,
    wrong_name_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")

NAME = "mx1.example.test"


@dataclass(frozen=True)
class Tls:
    """A stand-in with the fields ``Pki.server_context`` reads."""

    versions: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: str | None = None
    server_preference: bool = True
    cert_kind: str = "valid"
    key_type: str = "ec"


def client_context(pki: Pki, *, verify: bool = True, legacy: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
              sni: str | None) -> ssl.SSLObject:
    """Run a full handshake in memory; return the client's SSLObject or raise its error."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=sni)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(50):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                if c_out.pending == 0 and s_out.pending == 0:
                    raise
        c_in.write(s_out.read())
        if client_done and server_done:
            return client
    raise AssertionError("handshake did not finish")


def served_chain(sslobj: ssl.SSLObject) -> list[x509.Certificate]:
    chain = sslobj._sslobj.get_unverified_chain()  # public from Python 3.13
    return [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER))
            for c in chain]


def test_bundle_holds_the_roots_only(pki):
    """The world's root and the roots the chain kinds trust (survey/testbed/chains.py);
    never an intermediate."""
    certs = x509.load_pem_x509_certificates(pki.ca_bundle_path.read_bytes())
    assert [c.subject.rfc4514_string() for c in certs] == [
        f"CN={ROOT_NAME},O=survey testbed"] + [
        f"CN={spec.name},O=survey chains" for spec in chains.anchor_specs()]
    assert all(c.subject == c.issuer for c in certs)
    assert pki.ca_bundle_path.parent == pki.directory


@pytest.mark.parametrize("kind", chains.KIND_NAMES)
def test_every_chain_kind_is_served_as_built(pki, kind):
    """A chain kind's server sends the kind's chain, with a key that matches its leaf."""
    names = ("mx1.chain.test", "mx2.chain.test")
    built = chains.for_names(kind, names)
    sslobj = handshake(pki.server_context(Tls(cert_kind=f"chain:{kind}",
                                              key_type=built.leaf_key_type), names),
                       client_context(pki, verify=False), names[0])
    chain = served_chain(sslobj)
    assert len(chain) == len(built.spec.sent)
    leaf = chain[0]
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        built.leaf.name
    sans = ([] if built.leaf.san is None else leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    assert tuple(sans) == (built.leaf.san or ())


def test_valid_leaf_verifies_with_intermediate(pki):
    sslobj = handshake(pki.server_context(Tls(), (NAME,)), client_context(pki), NAME)
    chain = served_chain(sslobj)
    assert len(chain) == 2
    assert chain[1].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        INTERMEDIATE_NAME


def test_leaf_has_the_standard_profile(pki):
    leaf = pki.leaf("valid", (NAME, "mx2.example.test")).cert
    san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == [NAME, "mx2.example.test"]
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == NAME


@pytest.mark.parametrize(("kind", "message"), [
    ("expired", "certificate has expired"),
    ("not_yet_valid", "certificate is not yet valid"),
    ("self_signed", "self-signed certificate"),
    ("untrusted", "self-signed certificate in certificate chain"),
    ("missing_intermediate", "unable to get local issuer certificate"),
    ("wrong_name", "Hostname mismatch"),
])
def test_bad_kinds_fail_verification_for_their_reason(pki, kind, message):
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(pki.server_context(Tls(cert_kind=kind), (NAME,)), client_context(pki), NAME)
    assert message in str(err.value)


@pytest.mark.parametrize(("kind", "length", "issuer"), [
    ("valid", 2, INTERMEDIATE_NAME), ("expired", 2, INTERMEDIATE_NAME),
    ("not_yet_valid", 2, INTERMEDIATE_NAME), ("wrong_name", 2, INTERMEDIATE_NAME),
    ("self_signed", 1, NAME), ("untrusted", 2, UNTRUSTED_NAME),
    ("missing_intermediate", 1, INTERMEDIATE_NAME),
])
def test_each_kind_sends_its_chain(pki, kind, length, issuer):
    sslobj = handshake(pki.server_context(Tls(cert_kind=kind), (NAME,)),
                       client_context(pki, verify=False), NAME)
    chain = served_chain(sslobj)
    assert len(chain) == length
    assert chain[0].issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == issuer


def test_dates_relative_to_now(pki):
    now = pki.now
    assert pki.leaf("expired", (NAME,)).cert.not_valid_after_utc < now
    assert pki.leaf("not_yet_valid", (NAME,)).cert.not_valid_before_utc > now
    valid = pki.leaf("valid", (NAME,)).cert
    assert valid.not_valid_before_utc < now < valid.not_valid_after_utc


def test_wrong_name_matches_nothing_requested(pki):
    leaf = pki.leaf("wrong_name", (NAME,))
    assert leaf.names == (wrong_name_for((NAME,)),)
    assert leaf.names[0].endswith(".invalid")


def test_sni_dependent_switches_certificate_by_name(pki):
    names = ("a.provider.test", "b.provider.test")
    server = pki.server_context(Tls(cert_kind="sni_dependent"), names)
    seen = {}
    for sni in names:
        sslobj = handshake(server, client_context(pki), sni)  # verifies, name included
        seen[sni] = served_chain(sslobj)[0]
    assert seen[names[0]].fingerprint(hashes.SHA256()) != \
        seen[names[1]].fingerprint(hashes.SHA256())
    # No SNI, or a name it doesn't know: the default certificate, which names neither.
    for sni in (None, "other.provider.test"):
        client = client_context(pki, verify=False)
        leaf = served_chain(handshake(server, client, sni))[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [sni_default_name(names)]


@pytest.mark.parametrize("version", ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
def test_single_version_servers_speak_only_that_version(pki, version):
    server = pki.server_context(Tls(versions=(version,)), (NAME,))
    sslobj = handshake(server, client_context(pki, legacy=True), NAME)
    assert sslobj.version() == version.replace("TLSv1.0", "TLSv1")


def test_version_gaps_are_honoured(pki):
    server = pki.server_context(Tls(versions=("TLSv1.0", "TLSv1.2")), (NAME,))
    client = client_context(pki, legacy=True)
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        handshake(server, client, NAME)
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1
    assert handshake(server, client, NAME).version() == "TLSv1"


def test_legacy_versions_refused_by_a_modern_only_server(pki):
    server = pki.server_context(Tls(versions=("TLSv1.2",)), (NAME,))
    client = client_context(pki, legacy=True)
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        handshake(server, client, NAME)


def test_cipher_string_gets_seclevel_only_for_legacy_versions():
    assert cipher_string(None, ("TLSv1.2",)) == "DEFAULT"
    assert cipher_string("HIGH", ("TLSv1.1", "TLSv1.2")) == "HIGH:@SECLEVEL=0"
    assert cipher_string("HIGH:@SECLEVEL=1", ("TLSv1.0",)) == "HIGH:@SECLEVEL=1"


@pytest.mark.parametrize("server_preference", [True, False])
def test_cipher_preference_follows_the_spec(pki, server_preference):
    spec = Tls(versions=("TLSv1.2",), server_preference=server_preference,
               ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    server = pki.server_context(spec, (NAME,))
    assert bool(server.options & ssl.OP_CIPHER_SERVER_PREFERENCE) is server_preference
    client = client_context(pki)
    client.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
    chosen = handshake(server, client, NAME).cipher()[0]
    assert chosen == ("ECDHE-ECDSA-AES128-GCM-SHA256" if server_preference
                      else "ECDHE-ECDSA-AES256-GCM-SHA384")


def test_rsa_leaf_serves_rsa_key_exchange(pki):
    spec = Tls(versions=("TLSv1.2",), ciphers="AES128-SHA", key_type="rsa")
    client = client_context(pki)
    client.set_ciphers("AES128-SHA")
    sslobj = handshake(pki.server_context(spec, (NAME,)), client, NAME)
    assert sslobj.cipher()[0] == "AES128-SHA"
    assert served_chain(sslobj)[0].public_key().key_size == 2048


def test_caches_share_keys_and_reuse_contexts(pki):
    a, b = pki.leaf("valid", ("x.test",)), pki.leaf("expired", ("y.test",))
    assert a is pki.leaf("valid", ("x.test",))
    assert a.cert.public_key() == b.cert.public_key()
    assert pki.server_context(Tls(), ("x.test",)) is pki.server_context(Tls(), ("x.test",))


def test_context_cache_is_bounded(tmp_path):
    small = Pki(tmp_path, max_contexts=3)
    for i in range(10):
        small.server_context(Tls(), (f"mx{i}.test",))
    assert len(small._contexts) == 3


def test_fixed_clock_and_seed_form(tmp_path):
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    pki = Pki(7, now=now)
    assert pki.ca_bundle_path.exists()
    assert pki.leaf("valid", ("z.test",)).cert.not_valid_before_utc < now


def test_bad_specs_raise_pki_error(pki):
    with pytest.raises(PkiError):
        pki.leaf("sni_dependent", (NAME,))
    with pytest.raises(PkiError):
        pki.leaf("valid", ())
    with pytest.raises(PkiError):
        pki.server_context(Tls(versions=("SSLv3",)), (NAME,))
    with pytest.raises(PkiError):
        pki.leaf("valid", (NAME,), key_type="dsa")
    assert set(CERT_KINDS) >= {"valid", "sni_dependent"}


@pytest.mark.parametrize("kind", ["valid", "expired", "self_signed", "untrusted",
                                  "sni_dependent", "chain:valid_cross_signed",
                                  "chain:weak_signature", "chain:valid_rsa"])
def test_a_server_contacted_again_sends_the_same_certificates(tmp_path, kind):
    """Scans of one world compare by certificate hash (benchmarks/cores.py, a --resume,
    the SNI probe of scan/servers.py): a server sends the same DER on every contact, also
    after its context and leaf left the bounded caches and were built again."""
    small = Pki(tmp_path, max_contexts=1, max_leaves=1)
    names = ("mx1.again.test", "mx2.again.test")
    key_type = (chains.for_names(kind.removeprefix("chain:"), names).leaf_key_type
                if kind.startswith("chain:") else "ec")

    def contact(sni: str) -> list[bytes]:
        ctx = small.server_context(Tls(cert_kind=kind, key_type=key_type), names)
        sslobj = handshake(ctx, client_context(small, verify=False), sni)
        return [c.public_bytes(serialization.Encoding.DER) for c in served_chain(sslobj)]

    first = [contact(sni) for sni in names]
    for i in range(3):                   # other servers push it out of every cache
        small.server_context(Tls(cert_kind=kind, key_type=key_type), (f"mx{i}.other.test",))
    assert [contact(sni) for sni in names] == first
