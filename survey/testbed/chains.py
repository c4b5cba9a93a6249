"""Certificate chains of every kind a verifier must judge, each with its verdict from construction.

Theory of operation
-------------------
Certificate verdicts cannot be tested against themselves: the truth of a
chain comes from how it was *built* (this module knows it left out
keyCertSign, or set pathLenConstraint 0 above two intermediates), never
from ``survey.certs``. Three users:

- the testbed (``survey.testbed.pki``) serves these chains and writes their
  verdicts as truth, so ``survey score`` checks the scanner on each kind;
- tests/test_certs_openssl.py checks ``survey.certs`` against the system
  ``openssl verify`` on every kind and on random combinations
  (``CertSpec`` / ``build``);
- the interop suite serves them from a real Postfix and asks Postfix's own
  client, ``posttls-finger``.

A chain is described by ``CertSpec`` values from the anchor down to the leaf
(``ChainSpec``); ``build`` signs them, with a small shared pool of keys
(``Keys``: EC P-256 keys by role, RSA keys of 2048, 1024 and 768 bits), so
building a chain costs a few signatures. SHA-1 and MD5 signatures, which
``cryptography`` refuses to make, are made by signing the to-be-signed bytes
directly (RSA keys only).

``KINDS`` lists the named chain kinds with their expected verdicts:
``trusted``, the ``reason`` (after OpenSSL's verify errors, as in
``survey.certs.CertReason``; duplicated here as strings on purpose),
``time_valid`` and whether the leaf names ``host``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

DAY = dt.timedelta(days=1)
CHAIN_PREFIX = "chain:"        # a testbed cert_kind naming one of these kinds
UNKNOWN_EXTENSION = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
KEY_ROLES = ("root", "root2", "inter", "inter2", "inter3", "leaf", "other", "forger")

_RSA_SHA256 = bytes.fromhex("2a864886f70d01010b")   # sha256WithRSAEncryption OID body
_WEAK_OID = {"sha1": bytes.fromhex("2a864886f70d010105"),
             "md5": bytes.fromhex("2a864886f70d010104")}


class Keys:
    """The shared keys: EC P-256 by role, plus ``rsa2048`` and ``rsa1024`` (made lazily)."""

    def __init__(self, max_signed: int = 4096) -> None:
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()
        # signed certificates by (spec, issuer DER, now): the same spec under the same
        # issuer is the same certificate in every chain (one "root" in a shared trust store);
        # forgotten all at once beyond ``max_signed``, and then signed again alike (``sign``)
        self.signed: dict[tuple[Any, ...], x509.Certificate] = {}
        self.max_signed = max(1, max_signed)

    def get(self, name: str) -> Any:
        with self._lock:
            key = self._keys.get(name)
            if key is None:
                if name.startswith("rsa") and int(name[3:]) < 1024:
                    key = _small_rsa_key(int(name[3:]))
                elif name.startswith("rsa"):
                    key = rsa.generate_private_key(public_exponent=65537,
                                                   key_size=int(name[3:]))
                else:
                    key = ec.generate_private_key(ec.SECP256R1())
                self._keys[name] = key
            return key


def _probable_prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if all(n % p for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)) and \
                all(_miller_rabin(n, rng.randrange(2, n - 2)) for _ in range(24)):
            return n


def _miller_rabin(n: int, a: int) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    x = pow(a, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(r - 1):
        x = pow(x, 2, n)
        if x == n - 1:
            return True
    return False


def _small_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key below 1024 bits (``cryptography`` makes none): a weak key for the
    verifier to refuse. Not for anything but tests."""
    rng = random.Random()
    e = 65537
    while True:
        p, q = _probable_prime(bits // 2, rng), _probable_prime(bits // 2, rng)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@functools.cache
def shared_keys() -> Keys:
    return Keys()


@dataclass(frozen=True)
class CertSpec:
    """One certificate. ``issuer`` is the index of its signer in the chain spec (None:
    self-signed). Validity is in days relative to the chain's ``now``."""

    name: str                                   # subject CN
    issuer: int | None = None
    key: str = ""                               # a key role (default: ``name``'s role)
    ca: bool | None = True                      # None: no basicConstraints
    path_length: int | None = None
    key_usage: str | None = "ca"                # "ca", "leaf", "no_certsign",
                                                # "certsign_only", None
    eku: tuple[ObjectIdentifier, ...] | None = None
    san: tuple[str, ...] | None = None          # dNSNames; None: no SAN extension
    permitted_dns: tuple[str, ...] = ()         # name constraints
    excluded_dns: tuple[str, ...] = ()
    akid: str = "right"                         # "right", "none", "wrong"
    skid: bool = True
    critical_unknown: bool = False
    not_before: int = -30
    not_after: int = 365
    hash: str = "sha256"                        # sha256, sha384, sha1, md5 (RSA signer)
    signer_key: str = ""                        # sign with this key instead of the issuer's
    issuer_name: str = ""                       # issuer name override (default: issuer's)


def leaf_spec(name: str, issuer: int | None, names: Sequence[str] = (), cn: str | None = None,
              **kw: Any) -> CertSpec:
    """A Web PKI server leaf: SAN = names, CN = first name, CA:FALSE, serverAuth."""
    names = tuple(names) or (name,)
    defaults: dict[str, Any] = {"key": "leaf", "ca": False, "key_usage": "leaf",
                                "eku": (SERVER_AUTH,), "san": names, "not_before": -30,
                                "not_after": 90}
    defaults.update(kw)
    return CertSpec(name=cn or names[0], issuer=issuer, **defaults)


@dataclass(frozen=True)
class ChainSpec:
    """Certificates (``certs``), what the server sends (indexes, leaf first), what the
    verifier trusts (indexes)."""

    certs: tuple[CertSpec, ...]
    sent: tuple[int, ...]
    anchors: tuple[int, ...]


@dataclass(frozen=True)
class Kind:
    """A named chain kind with its verdicts from construction."""

    name: str
    spec: ChainSpec
    trusted: bool
    reason: str | None
    time_valid: bool = True
    name_match: bool = True
    note: str = ""
    time_state: str | None = None               # "expired" / "not_yet_valid" when not in date

    @property
    def leaf(self) -> CertSpec:
        return self.spec.certs[self.spec.sent[0]]

    @property
    def leaf_key_bits(self) -> int:
        key = _key_name(self.leaf)
        return int(key[3:]) if key.startswith("rsa") else 256

    @property
    def leaf_key_type(self) -> str:
        return "rsa" if _key_name(self.leaf).startswith("rsa") else "ec"

    @property
    def tls13_only(self) -> bool:
        """A leaf whose keyUsage forbids signing is served by OpenSSL in TLS 1.3 only: at
        TLS <= 1.2 it finds no suite the key may sign for ("no shared cipher"; measured with
        s_server), while TLS 1.3 does not look at keyUsage."""
        return self.leaf.key_usage == "certsign_only"


@dataclass
class Built:
    """A built chain: DER of everything, what is sent, what is trusted."""

    certs: list[x509.Certificate]
    sent: list[x509.Certificate]
    anchors: list[x509.Certificate]
    keys: list[Any] = field(default_factory=list)

    def sent_der(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self.sent]

    def sent_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.sent)

    def anchors_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.anchors)

    @property
    def leaf_key(self) -> Any:
        return self.keys[self.spec_leaf]

    spec_leaf: int = 0


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "survey chains"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(kind: str | None, rsa_key: bool) -> x509.KeyUsage | None:
    if kind is None:
        return None
    return x509.KeyUsage(
        digital_signature=kind != "certsign_only", content_commitment=False,
        key_encipherment=kind == "leaf" and rsa_key, data_encipherment=False,
        key_agreement=False, key_cert_sign=kind in ("ca", "certsign_only"),
        crl_sign=kind != "leaf", encipher_only=False, decipher_only=False)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _weak_sign(cert: x509.Certificate, key: rsa.RSAPrivateKey, digest: str) -> x509.Certificate:
    """Re-sign a sha256WithRSA certificate with SHA-1 or MD5 (cryptography refuses to)."""
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_RSA_SHA256) == 1, "the weak-signature trick needs an RSA signer"
    tbs = tbs.replace(_RSA_SHA256, _WEAK_OID[digest])
    algorithm = hashes.SHA1() if digest == "sha1" else hashes.MD5()
    signature = key.sign(tbs, padding.PKCS1v15(), algorithm)
    alg_id = b"\x30\x0d\x06\x09" + _WEAK_OID[digest] + b"\x05\x00"
    bits = b"\x03" + _der_len(len(signature) + 1) + b"\x00" + signature
    body = tbs + alg_id + bits
    return x509.load_der_x509_certificate(b"\x30" + _der_len(len(body)) + body)


def serial_for(*what: object) -> int:
    """A serial number fixed by what the certificate is, its key included (positive, 159
    bits, as ``x509.random_serial_number``), so that signing it again gives the same DER."""
    digest = hashlib.sha256(repr(what).encode()).digest()
    return (int.from_bytes(digest[:20], "big") >> 1) or 1


def public_key_der(key: Any) -> bytes:
    """The SubjectPublicKeyInfo DER of a private key's public half."""
    der: bytes = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def sign(builder: x509.CertificateBuilder, key: Any,
         digest: hashes.SHA256 | hashes.SHA384) -> x509.Certificate:
    """``builder`` signed deterministically: ECDSA with RFC 6979 nonces (PKCS#1 v1.5 RSA
    signatures are deterministic already). With ``serial_for``, the same certificate signed
    twice is the same bytes, as a real server's certificate is on every contact."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return builder.sign(key, digest, ecdsa_deterministic=True)
    return builder.sign(key, digest)


def _key_name(spec: CertSpec) -> str:
    return spec.key or (spec.name if spec.name in KEY_ROLES else "leaf")


def build(chain: ChainSpec, now: dt.datetime, keys: Keys | None = None) -> Built:
    """Sign every certificate of ``chain`` (issuers before their children)."""
    keys = keys or shared_keys()
    built: list[x509.Certificate | None] = [None] * len(chain.certs)
    own_keys = [keys.get(_key_name(s)) for s in chain.certs]

    def make(i: int) -> x509.Certificate:
        done = built[i]
        if done is not None:
            return done
        spec = chain.certs[i]
        key = own_keys[i]
        parent_der = b""
        if spec.issuer is None or spec.issuer == i:
            issuer_name, issuer_key = _name(spec.issuer_name or spec.name), key
        else:
            parent = make(spec.issuer)
            parent_der = parent.public_bytes(serialization.Encoding.DER)
            issuer_name = _name(spec.issuer_name) if spec.issuer_name else parent.subject
            issuer_key = own_keys[spec.issuer]
        memo = (spec, parent_der, now)
        if memo in keys.signed:
            built[i] = keys.signed[memo]
            return keys.signed[memo]
        signer = keys.get(spec.signer_key) if spec.signer_key else issuer_key
        subject = _name(spec.name)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
                   .public_key(key.public_key())
                   .serial_number(serial_for(spec, parent_der, now, public_key_der(key)))
                   .not_valid_before(now + spec.not_before * DAY)
                   .not_valid_after(now + spec.not_after * DAY))
        if spec.ca is not None:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=spec.ca,
                                      path_length=spec.path_length if spec.ca else None),
                critical=True)
        usage = _key_usage(spec.key_usage, isinstance(key, rsa.RSAPrivateKey))
        if usage is not None:
            builder = builder.add_extension(usage, critical=True)
        if spec.eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)),
                                            critical=False)
        if spec.san is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.san]),
                critical=False)
        if spec.permitted_dns or spec.excluded_dns:
            builder = builder.add_extension(x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(n) for n in spec.permitted_dns] or None,
                excluded_subtrees=[x509.DNSName(n) for n in spec.excluded_dns] or None),
                critical=True)
        if spec.skid:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if spec.akid == "right" and spec.issuer is not None and spec.issuer != i:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False)
        elif spec.akid == "wrong":
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier(key_identifier=b"\x5a" * 20,
                                            authority_cert_issuer=None,
                                            authority_cert_serial_number=None),
                critical=False)
        if spec.critical_unknown:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(UNKNOWN_EXTENSION, b"\x05\x00"), critical=True)
        digest = hashes.SHA384() if spec.hash == "sha384" else hashes.SHA256()
        cert = sign(builder, signer, digest)
        if spec.hash in _WEAK_OID:
            cert = _weak_sign(cert, signer, spec.hash)
        if len(keys.signed) > keys.max_signed:
            keys.signed.clear()
        built[i] = keys.signed[memo] = cert
        return cert

    for i in range(len(chain.certs)):
        make(i)
    certs = [c for c in built if c is not None]
    return Built(certs, [certs[i] for i in chain.sent], [certs[i] for i in chain.anchors],
                 own_keys, chain.sent[0])


# -- the named kinds ------------------------------------------------------------------------

ROOT = CertSpec("root", key_usage="ca")
INTER = CertSpec("inter", issuer=0)


def _simple(leaf: CertSpec | None = None, inter: CertSpec | None = None,
            root: CertSpec | None = None, sent: tuple[int, ...] = (2, 1)) -> ChainSpec:
    """root (0, trusted) -> inter (1) -> leaf (2); the server sends ``sent``."""
    return ChainSpec((root or ROOT, inter or INTER, leaf or leaf_spec("host", 1)),
                     sent, (0,))


def kinds(host: str) -> tuple[Kind, ...]:
    """Every named chain kind for a server reached as ``host`` (its SAN unless stated)."""
    leaf = functools.partial(leaf_spec, names=(host,))
    parent = host.split(".", 1)[1]
    other = CertSpec("unrelated", key="other")    # an unrelated self-signed CA
    return (
        Kind("valid", _simple(leaf("leaf", 1)), True, None),
        Kind("valid_out_of_order", ChainSpec(
            (ROOT, INTER, leaf("leaf", 1), other), (2, 3, 0, 1), (0,)), True, None,
            note="anchor and an unrelated certificate sent, intermediate last"),
        Kind("valid_root_sent", _simple(leaf("leaf", 1), sent=(2, 1, 0)), True, None),
        Kind("valid_cross_signed", ChainSpec(
            (ROOT, INTER, leaf("leaf", 1), CertSpec("root2", key="root2"),
             CertSpec("root", key="root", issuer=3, not_before=-400, not_after=-10)),
            (2, 1, 4), (0,)), True, None,
            note="an expired cross-sign of the root sent; the trust store's root wins"),
        Kind("valid_via_cross_sign", ChainSpec(
            (CertSpec("root", key="root"), INTER, leaf("leaf", 1),
             CertSpec("root2", key="root2"), CertSpec("root", key="root", issuer=3)),
            (2, 1, 4), (3,)), True, None,
            note="only the old root is trusted: the path goes through the cross-sign"),
        # a two-label host (an implicit MX) gets "*.test": one label after the star, which
        # OpenSSL's X509_check_host (every sender) refuses, so its name does not match
        Kind("valid_wildcard", _simple(leaf("leaf", 1, names=(f"*.{parent}",))), True, None,
             name_match="." in parent),
        Kind("valid_cn_only", _simple(leaf("leaf", 1, san=None, cn=host)), True, None),
        Kind("valid_rsa", _simple(leaf("leaf", 1, key="rsa2048")), True, None),
        Kind("valid_two_intermediates", ChainSpec(
            (ROOT, INTER, CertSpec("inter2", issuer=1), leaf("leaf", 2)), (3, 2, 1), (0,)),
            True, None),
        Kind("expired", _simple(leaf("leaf", 1, not_before=-400, not_after=-35)), True, None,
             time_valid=False, time_state="expired"),
        Kind("not_yet_valid", _simple(leaf("leaf", 1, not_before=35, not_after=400)), True,
             None, time_valid=False, time_state="not_yet_valid"),
        Kind("expired_intermediate", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, not_before=-400, not_after=-3)),
            True, None, time_valid=False, time_state="expired"),
        Kind("wrong_name", _simple(leaf("leaf", 1, names=("wrong-name.invalid",))), True,
             None, name_match=False),
        Kind("missing_intermediate", _simple(leaf("leaf", 1), sent=(2,)), False,
             "unknown_issuer"),
        Kind("self_signed", ChainSpec((leaf("leaf", None, ca=None, akid="none"),), (0,), ()),
             False, "self_signed"),
        Kind("untrusted_root", ChainSpec(
            (CertSpec("rogue root", key="other"), CertSpec("rogue inter", issuer=0, key="inter"),
             leaf("leaf", 1)), (2, 1, 0), ()), False, "untrusted_root"),
        Kind("inter_not_ca", _simple(leaf("leaf", 1), CertSpec("inter", issuer=0, ca=False)),
             False, "not_ca"),
        Kind("inter_no_basic_constraints", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, ca=None)), False, "not_ca"),
        Kind("path_length", ChainSpec(
            (ROOT, CertSpec("inter", issuer=0, path_length=0), CertSpec("inter2", issuer=1),
             leaf("leaf", 2)), (3, 2, 1), (0,)), False, "path_length"),
        Kind("inter_no_keycertsign", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, key_usage="no_certsign")), False,
            "key_usage"),
        Kind("leaf_key_usage", _simple(leaf("leaf", 1, key_usage="certsign_only")), False,
             "key_usage",
             note="a leaf whose keyUsage is only keyCertSign/cRLSign"),
        Kind("leaf_client_auth_only", _simple(leaf("leaf", 1, eku=(CLIENT_AUTH,))), False,
             "purpose"),
        Kind("leaf_any_eku_only", _simple(leaf("leaf", 1, eku=(ANY_EKU,))), False, "purpose",
             note="OpenSSL 3.0 does not take anyExtendedKeyUsage for serverAuth"),
        Kind("inter_client_auth_only", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, eku=(CLIENT_AUTH,))), False,
            "purpose"),
        Kind("root_client_auth_only", _simple(
            leaf("leaf", 1), CertSpec("eku inter", issuer=0, key="inter"),
            CertSpec("eku root", key="root2", eku=(CLIENT_AUTH,))), False, "purpose"),
        Kind("name_constraints", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, permitted_dns=("allowed.invalid",))),
            False, "name_constraints"),
        Kind("name_constraints_ok", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, permitted_dns=(parent,))), True,
            None),
        Kind("excluded_name", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, excluded_dns=(parent,))), False,
            "name_constraints"),
        Kind("unknown_critical_extension", _simple(leaf("leaf", 1, critical_unknown=True)),
             False, "unknown_critical_extension"),
        Kind("inter_unknown_critical_extension", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, critical_unknown=True)), False,
            "unknown_critical_extension"),
        Kind("akid_mismatch", _simple(leaf("leaf", 1, akid="wrong")), False, "akid_mismatch"),
        Kind("weak_signature", _simple(
            leaf("leaf", 1, hash="sha1"), CertSpec("inter", issuer=0, key="rsa2048")), False,
            "weak_signature", note="the leaf signed with SHA-1"),
        Kind("weak_key", _simple(leaf("leaf", 1), CertSpec("inter", issuer=0, key="rsa768")),
             False, "weak_key", note="an RSA-768 intermediate"),
        Kind("weak_leaf_key", _simple(leaf("leaf", 1, key="rsa768")), False, "weak_key"),
        Kind("rsa1024_intermediate", _simple(
            leaf("leaf", 1), CertSpec("inter", issuer=0, key="rsa1024")), True, None,
            note="80 bits: enough at security level 1 (Debian 12's Postfix client)"),
        Kind("sha1_root_self_signature", _simple(
            leaf("leaf", 1), CertSpec("sha1 inter", issuer=0, key="inter"),
            CertSpec("sha1 root", key="rsa2048", hash="sha1")), True, None,
            note="a root's own signature is not checked"),
        Kind("bad_signature", _simple(leaf("leaf", 1, akid="none", signer_key="forger")),
             False, "signature_invalid"),
    )


KIND_NAMES = tuple(k.name for k in kinds("mx.example.test"))


def kind(name: str, host: str) -> Kind:
    for k in kinds(host):
        if k.name == name:
            return k
    raise KeyError(name)


def with_leaf_names(spec: ChainSpec, names: Sequence[str]) -> ChainSpec:
    """The same chain with the leaf's SAN replaced (a server's own names)."""
    leaf_index = spec.sent[0]
    certs = list(spec.certs)
    certs[leaf_index] = replace(certs[leaf_index], name=names[0], san=tuple(names))
    return replace(spec, certs=tuple(certs))


def for_names(name: str, names: Sequence[str]) -> Kind:
    """The kind ``name`` as a server with ``names`` serves it: built for ``names[0]``, and
    where the kind's leaf names its host, the leaf holds every one of ``names``."""
    if not names:
        raise ValueError("a chain kind needs at least one name")
    built = kind(name, names[0])
    if built.leaf.san == (names[0],) and len(names) > 1:
        built = replace(built, spec=with_leaf_names(built.spec, names))
    return built


def anchor_specs() -> list[CertSpec]:
    """Every trust anchor some kind trusts (one per name: kinds share them)."""
    found: dict[str, CertSpec] = {}
    for k in kinds("anchor.invalid"):
        for i in k.spec.anchors:
            found.setdefault(k.spec.certs[i].name, k.spec.certs[i])
    return list(found.values())
