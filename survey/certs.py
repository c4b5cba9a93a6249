"""X.509 facts and verdicts: what a certificate says, and whether a sender should trust it.

Theory of operation
-------------------
A scan records the chain a server presented (DER, leaf first) and, per
(domain, MX host, IP), four verdicts defined in docs/design.md "Verdict definitions" and a
reason:

- ``trusted``: the chain passes certificate path validation as the sending
  MTA's TLS library decides it -- OpenSSL's ``X509_verify_cert`` for a TLS
  client (purpose ``sslserver``), which is what Postfix (and Exim, and most
  MTAs on Linux) use. ``trusted`` is that verification with every error but
  the time errors; ``reason`` names the first failure (``REASONS``).
- ``time_valid``: every certificate on the path OpenSSL built is within its
  validity period at ``probed_at`` (as OpenSSL checks: ``notBefore <= t <
  notAfter``; the top of an untrusted path is checked only when self-signed).
- ``name_match``: the MX host matches the leaf's names (survey.proto.names:
  RFC 6125 §6.4 as profiled by RFC 7817).
- ``status``: ``valid`` when all three hold, else the first failing of
  ``no_cert``, ``self_signed``, ``untrusted``, ``expired`` / ``not_yet_valid``,
  ``name_mismatch``.

Path validation (``validate``) follows OpenSSL 3.0's ``x509_vfy.c`` step by
step, so that the verdict is the one a sender reaches (tests/test_certs_openssl.py
compares it with the system ``openssl verify -purpose sslserver`` on a corpus
of defects and on random chains; docs/certificates.md lists the rules):

1. **Build** one path, greedily, never backtracking (``build_chain``): the
   trust store is searched first at every step (``X509_V_FLAG_TRUSTED_FIRST``),
   then the certificates the server sent, in the order sent. A candidate
   issuer must have the child's issuer name as subject, match the child's
   authority key identifier (keyid, serial, directory name) and have a key
   of the signature's type; among several, the first one valid at the
   verification time wins, else the one expiring last. A trust-store
   certificate ends the path when it is self-signed (OpenSSL's definition:
   self-issued, AKID agreeing with its own SKID, signature type matching
   its key; the signature itself is not checked). No AIA fetching, no
   partial chains (``-partial_chain`` off).
2. **Check each certificate** (``check_chain``): no unknown critical
   extension; every issuer is a CA (basicConstraints CA:TRUE and, if present,
   keyUsage keyCertSign -- the trust anchor may also be a v1 self-signed
   certificate, or carry keyUsage keyCertSign without basicConstraints);
   extendedKeyUsage, where present, includes serverAuth (or Netscape/Microsoft
   SGC) on the leaf *and on every issuer and the anchor*; the leaf's keyUsage,
   where present, allows digitalSignature, keyEncipherment or keyAgreement;
   pathLenConstraint counts the non-self-issued intermediates below.
3. **Security level** (``AUTH_LEVEL`` 1, OpenSSL's ``auth_level``, as
   Debian 12's Postfix client has it): every key on the path must give at
   least 80 bits of security and every signature but the anchor's own
   likewise: SHA-1 (63 bits) and MD5 (39) signatures fail, RSA-1024 (80)
   passes, RSA-768 fails; P-256 gives 128.
4. **Signatures** from the top down with the issuer's key (the self-signed
   anchor's own signature is not checked), then time.
5. **Name constraints** of every CA on the path over the names of the
   certificates below it (dNSName, directoryName, iPAddress; the leaf's CN
   when it has no dNSName and looks like a host name).

Certificates are hostile input: malformed DER or extensions give a
``CertError`` from ``facts`` and an ``untrusted`` verdict from ``evaluate``,
never a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from survey.proto.names import PROFILE_DEFAULT, cert_name_matches
from survey.vocabulary import CertReason, CertStatus

MAX_PATH_LENGTH = 10     # certificates on a path, leaf and anchor included (Postfix: depth 9)
MAX_PRESENTED = 16       # a server sending more is not helped by our reading them all
_DER = Encoding.DER
# Caches (performance; none changes a verdict): a scan judges each chain once, but
# intermediates and anchors recur in most chains, and many domains share a policy host's
# chain. Bounded: parsed certificates by DER (LRU), whole-chain facts per trust store
# (cleared when full), signature checks between two certificates (cleared when full).
PARSED_CACHE = 2048
LINK_CACHE = 1 << 16
CHAIN_CACHE = 1024

# OpenSSL's security levels (ssl/ssl_cert.c minbits_table): the bits of security a key
# and a signature must give at auth_level 1..5. Debian 12's Postfix client verifies at
# level 1, measured with posttls-finger (tests/interop/test_posttls_finger.py): SHA-1
# and MD5 signatures fail (63 and 39 bits), RSA-1024 passes (80), RSA-768 fails
# (docs/certificates.md).
MIN_BITS = {0: 0, 1: 80, 2: 112, 3: 128, 4: 192, 5: 256}
AUTH_LEVEL = 1


REASONS = tuple(CertReason)


class CertError(ValueError):
    """A certificate we cannot parse (the peer's fault)."""


# What cryptography raises for a certificate it cannot read; parsing is lazy, so a
# broken version, name or extension shows when that part is first read.
PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
                x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def load_cert(der: bytes) -> x509.Certificate:
    try:
        with warnings.catch_warnings():   # a peer's non-positive serial is its business
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except PARSE_ERRORS as exc:
        raise CertError(f"malformed certificate: {exc}") from None


_load_cached = functools.lru_cache(maxsize=PARSED_CACHE)(load_cert)


@dataclass(frozen=True, slots=True)
class CertFacts:
    """One certificate, as the ``certs`` table records it."""

    sha256: str
    der: bytes
    subject: str
    issuer: str
    san_dns: tuple[str, ...]
    subject_cn: str | None
    not_before: datetime
    not_after: datetime
    key_type: str | None
    key_bits: int | None
    signature_algorithm: str | None
    self_signed: bool

    def row(self, probed_at: datetime) -> dict:
        return {"sha256": self.sha256, "der": self.der, "subject": self.subject,
                "issuer": self.issuer, "san_dns": sorted(self.san_dns),
                "not_before": self.not_before, "not_after": self.not_after,
                "key_type": self.key_type, "key_bits": self.key_bits,
                "signature_algorithm": self.signature_algorithm,
                "self_signed": self.self_signed, "probed_at": probed_at}


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _san_dns(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    except PARSE_ERRORS as exc:
        raise CertError(f"malformed subjectAltName: {exc}") from None
    return tuple(san.get_values_for_type(x509.DNSName))


def _subject_cn(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[-1].value if names else None  # the most specific CN (RFC 6125 §6.4.4)
    return value if isinstance(value, str) else None


def _key(cert: x509.Certificate) -> tuple[str | None, int | None]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, None


def _signature_algorithm(cert: x509.Certificate) -> str | None:
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def is_directly_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


@functools.lru_cache(maxsize=PARSED_CACHE)
def facts(der: bytes) -> CertFacts:
    """The ``certs`` row facts of one DER certificate (CertError when unreadable).

    Cached: the same leaf is judged and then written, intermediates recur.
    """
    cert = _load_cached(der)
    try:
        with warnings.catch_warnings():   # e.g. a 5-letter country code: the peer's business
            warnings.simplefilter("ignore", UserWarning)
            return _facts(der, cert)
    except CertError:
        raise
    except PARSE_ERRORS as exc:
        raise CertError(f"malformed certificate: {exc}") from None


def _facts(der: bytes, cert: x509.Certificate) -> CertFacts:
    key_type, key_bits = _key(cert)
    return CertFacts(
        sha256=sha256_hex(der), der=der,
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        san_dns=_san_dns(cert), subject_cn=_subject_cn(cert),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        key_type=key_type, key_bits=key_bits,
        signature_algorithm=_signature_algorithm(cert),
        self_signed=is_directly_issued_by(cert, cert),
    )


# -- what path validation needs of one certificate (OpenSSL's x509v3_cache_extensions) ------

# Extensions OpenSSL's verifier understands (X509_supported_extension); any other marked
# critical fails the path.
_SUPPORTED_CRITICAL = frozenset({
    "2.16.840.1.113730.1.1",   # Netscape cert type
    ExtensionOID.KEY_USAGE.dotted_string,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
    ExtensionOID.CERTIFICATE_POLICIES.dotted_string,
    ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string,
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string,
    "1.3.6.1.5.5.7.1.7",       # sbgp-ipAddrBlock (RFC 3779)
    "1.3.6.1.5.5.7.1.8",       # sbgp-autonomousSysNum
    "1.3.6.1.5.5.7.48.1.5",    # OCSP no check
    ExtensionOID.POLICY_CONSTRAINTS.dotted_string,
    "1.3.6.1.5.5.7.1.14",      # proxyCertInfo
    ExtensionOID.NAME_CONSTRAINTS.dotted_string,
    ExtensionOID.POLICY_MAPPINGS.dotted_string,
    ExtensionOID.INHIBIT_ANY_POLICY.dotted_string,
})
_NS_CERT_TYPE = "2.16.840.1.113730.1.1"
_NS_SSL_SERVER, _NS_SSL_CA, _NS_ANY_CA = 0x40, 0x04, 0x07
# extendedKeyUsage values OpenSSL accepts for a TLS server: serverAuth, Netscape and
# Microsoft Server Gated Crypto (XKU_SSL_SERVER | XKU_SGC). anyExtendedKeyUsage is not one.
_SERVER_EKUS = frozenset({ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,
                          "2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"})
# signature algorithm OID -> (key type it needs, security bits of the signature)
_SIG_ALGS = {
    "1.2.840.113549.1.1.2": ("RSA", 0),     # md2WithRSAEncryption
    "1.2.840.113549.1.1.3": ("RSA", 0),     # md4WithRSAEncryption
    "1.2.840.113549.1.1.4": ("RSA", 39),    # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": ("RSA", 63),    # sha1WithRSAEncryption
    "1.3.14.3.2.29": ("RSA", 63),
    "1.2.840.113549.1.1.14": ("RSA", 112),  # sha224
    "1.2.840.113549.1.1.11": ("RSA", 128),
    "1.2.840.113549.1.1.12": ("RSA", 192),
    "1.2.840.113549.1.1.13": ("RSA", 256),
    "1.2.840.113549.1.1.10": ("RSA", -1),   # RSASSA-PSS: from its hash
    "1.2.840.10045.4.1": ("EC", 63),
    "1.2.840.10045.4.3.1": ("EC", 112),
    "1.2.840.10045.4.3.2": ("EC", 128),
    "1.2.840.10045.4.3.3": ("EC", 192),
    "1.2.840.10045.4.3.4": ("EC", 256),
    "1.2.840.10040.4.3": ("DSA", 63),
    "2.16.840.1.101.3.4.3.1": ("DSA", 112),
    "2.16.840.1.101.3.4.3.2": ("DSA", 128),
    "1.3.101.112": ("Ed25519", 128),
    "1.3.101.113": ("Ed448", 224),
}
_HASH_BITS = {"sha1": 63, "md5": 39, "sha224": 112, "sha256": 128, "sha384": 192,
              "sha512": 256}


def _ifc_security_bits(n: int) -> int:
    """OpenSSL's ossl_ifc_ffc_compute_security_bits: RSA/DSA modulus size -> bits."""
    fixed = {2048: 112, 3072: 128, 4096: 152, 6144: 176, 7680: 192, 8192: 200, 15360: 256}
    if n in fixed:
        return fixed[n]
    if n < 8:
        return 0
    cap = 192 if n <= 7680 else 256 if n <= 15360 else 1200
    x = n * math.log(2)
    y = int((1.923 * (x * math.log(x) ** 2) ** (1 / 3) - 4.690) / math.log(2))
    return min((y + 4) & ~7, cap)


def _canon(value: object) -> object:
    """OpenSSL's canonical form of a name attribute: ASCII-lower-cased, spaces collapsed."""
    if isinstance(value, str):
        return " ".join(value.split()).translate(_LOWER)
    return value


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _name_key(name: x509.Name) -> tuple:
    return tuple(tuple((a.oid.dotted_string, _canon(a.value)) for a in rdn)
                 for rdn in name.rdns)


@dataclass(frozen=True, slots=True, eq=False)
class _Info:
    """One certificate as OpenSSL's verifier sees it (x509v3_cache_extensions)."""

    cert: x509.Certificate
    der: bytes
    subject: tuple
    issuer: tuple
    invalid: bool                   # an extension we (and OpenSSL) cannot decode
    v1: bool
    ski: bytes | None
    akid_keyid: bytes | None
    akid_serial: int | None
    akid_dirname: tuple | None
    bc: bool                        # basicConstraints present
    ca: bool
    pathlen: int | None
    ku: frozenset[str] | None       # keyUsage bits set, None when absent
    eku: frozenset[str] | None      # dotted OIDs, None when absent
    ns_type: int | None             # Netscape cert type bits
    nc: x509.NameConstraints | None
    unknown_critical: bool
    dns_sans: tuple[str, ...]
    ip_sans: tuple
    cns: tuple[str, ...]
    key_type: str | None
    key_secbits: int
    sig_key_type: str | None
    sig_secbits: int
    not_before: datetime
    not_after: datetime

    @property
    def self_issued(self) -> bool:
        return self.subject == self.issuer

    @property
    def self_signed(self) -> bool:
        """OpenSSL's EXFLAG_SS: self-issued, own AKID agrees, signature type fits the key."""
        return self.self_issued and likely_issued(self, self) is None

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at < self.not_after


_KU_BITS = ("digital_signature", "content_commitment", "key_encipherment",
            "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


def _key_security(cert: x509.Certificate) -> tuple[str | None, int]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None, 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", _ifc_security_bits(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size // 2
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 128
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 224
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", _ifc_security_bits(key.key_size)
    return type(key).__name__, 0


def _signature_security(cert: x509.Certificate) -> tuple[str | None, int]:
    key_type, bits = _SIG_ALGS.get(cert.signature_algorithm_oid.dotted_string, (None, 0))
    if bits == -1:     # RSASSA-PSS
        try:
            algorithm = cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            algorithm = None
        bits = _HASH_BITS.get(algorithm.name if algorithm else "", 0)
    return key_type, bits


def _ns_cert_type(value: bytes) -> int:
    # BIT STRING: 03 len unused-bits first-byte...
    return value[3] if len(value) >= 4 and value[0] == 0x03 else 0


def _info(der: bytes) -> _Info:
    """What path validation needs of one certificate (CertError when it cannot be read:
    parsing is lazy, so a broken name or key shows only here)."""
    try:
        return _read_info(der)
    except CertError:
        raise
    except PARSE_ERRORS as exc:
        raise CertError(f"malformed certificate: {exc}") from None


def _read_info(der: bytes) -> _Info:
    cert = _load_cached(der)
    invalid = False
    ski = akid_keyid = akid_dirname = None
    akid_serial = None
    bc = ca = False
    pathlen = None
    ku = eku = None
    ns_type = None
    nc = None
    unknown_critical = False
    dns_sans: tuple[str, ...] = ()
    ip_sans: tuple = ()
    try:
        extensions = list(cert.extensions)
    except PARSE_ERRORS:
        extensions, invalid = [], True
    for ext in extensions:
        oid, value = ext.oid.dotted_string, ext.value
        if ext.critical and oid not in _SUPPORTED_CRITICAL:
            unknown_critical = True
        if isinstance(value, x509.SubjectKeyIdentifier):
            ski = value.digest
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            akid_keyid = value.key_identifier
            akid_serial = value.authority_cert_serial_number
            for general in value.authority_cert_issuer or ():
                if isinstance(general, x509.DirectoryName):
                    akid_dirname = _name_key(general.value)
                    break
        elif isinstance(value, x509.BasicConstraints):
            bc, ca, pathlen = True, value.ca, value.path_length
        elif isinstance(value, x509.KeyUsage):
            ku = frozenset(bit for bit in _KU_BITS if getattr(value, bit))
        elif isinstance(value, x509.ExtendedKeyUsage):
            eku = frozenset(o.dotted_string for o in value)
        elif isinstance(value, x509.NameConstraints):
            nc = value
        elif isinstance(value, x509.SubjectAlternativeName):
            dns_sans = tuple(value.get_values_for_type(x509.DNSName))
            ip_sans = tuple(value.get_values_for_type(x509.IPAddress))
        elif oid == _NS_CERT_TYPE and isinstance(value, x509.UnrecognizedExtension):
            ns_type = _ns_cert_type(value.value)
    cns = tuple(a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                if isinstance(a.value, str))
    key_type, key_secbits = _key_security(cert)
    sig_key_type, sig_secbits = _signature_security(cert)
    return _Info(cert, der, _name_key(cert.subject), _name_key(cert.issuer), invalid,
                 cert.version == x509.Version.v1, ski, akid_keyid, akid_serial, akid_dirname,
                 bc, ca, pathlen, ku, eku, ns_type, nc, unknown_critical, dns_sans, ip_sans,
                 cns, key_type, key_secbits, sig_key_type, sig_secbits,
                 cert.not_valid_before_utc, cert.not_valid_after_utc)


_info_cached = functools.lru_cache(maxsize=PARSED_CACHE)(_info)


def likely_issued(issuer: _Info, child: _Info) -> CertReason | None:
    """None when ``issuer`` may have issued ``child`` (ossl_x509_likely_issued), else why not.

    Names, authority key identifier and the signature's key type; not the signature.
    """
    if issuer.subject != child.issuer:
        return CertReason.UNKNOWN_ISSUER
    if issuer.invalid or child.invalid:
        return CertReason.MALFORMED
    if child.akid_keyid is not None and issuer.ski is not None \
            and child.akid_keyid != issuer.ski:
        return CertReason.AKID_MISMATCH
    if child.akid_serial is not None and child.akid_serial != issuer.cert.serial_number:
        return CertReason.AKID_MISMATCH
    if child.akid_dirname is not None and child.akid_dirname != issuer.issuer:
        return CertReason.AKID_MISMATCH
    if issuer.key_type is None or child.sig_key_type != issuer.key_type:
        return CertReason.UNKNOWN_ISSUER
    return None


def _ku_rejects(info: _Info, *bits: str) -> bool:
    return info.ku is not None and not info.ku.intersection(bits)


def _check_ca(info: _Info) -> int:
    """OpenSSL's check_ca: 0 not a CA, 1 a CA, 3 a v1 root, 4 keyUsage-only, 5 Netscape."""
    if _ku_rejects(info, "key_cert_sign"):
        return 0
    if info.bc:
        return 1 if info.ca else 0
    if info.v1 and info.self_signed:
        return 3
    if info.ku is not None:
        return 4
    if info.ns_type is not None and info.ns_type & _NS_ANY_CA:
        return 5
    return 0


def _purpose_ok(info: _Info, as_ca: bool) -> bool:
    """X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, as_ca) != 0."""
    if info.eku is not None and not info.eku & _SERVER_EKUS:
        return False
    if as_ca:
        ret = _check_ca(info)
        return ret != 0 and (ret != 5 or bool((info.ns_type or 0) & _NS_SSL_CA))
    if info.ns_type is not None and not info.ns_type & _NS_SSL_SERVER:
        return False
    return not _ku_rejects(info, "digital_signature", "key_encipherment", "key_agreement")


def _purpose_reason(info: _Info, as_ca: bool) -> CertReason:
    if info.eku is not None and not info.eku & _SERVER_EKUS:
        return CertReason.PURPOSE
    if as_ca:
        return CertReason.KEY_USAGE if _ku_rejects(info, "key_cert_sign") else CertReason.NOT_CA
    if _ku_rejects(info, "digital_signature", "key_encipherment", "key_agreement"):
        return CertReason.KEY_USAGE
    return CertReason.PURPOSE


# -- name constraints (OpenSSL's v3_ncons.c, the name types mail servers use) --------------


def _nc_dns(name: str, base: str) -> bool:
    if not base:
        return True
    if len(name) < len(base):
        return False
    if len(name) > len(base) and not base.startswith(".") \
            and name[len(name) - len(base) - 1] != ".":
        return False
    return name[len(name) - len(base):].lower() == base.lower()


def _nc_single(kind: str, value: object, base: x509.GeneralName) -> bool | None:
    """Does ``value`` match constraint ``base``? None: a type we do not judge."""
    if kind == "dns":
        return _nc_dns(str(value), str(base.value))
    if kind == "dir":
        key = _name_key(base.value)
        return len(key) <= len(value) and tuple(value[:len(key)]) == key  # type: ignore
    if kind == "ip":
        network = base.value
        return isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and \
            value in network
    return None


_NC_TYPES = {"dns": x509.DNSName, "dir": x509.DirectoryName, "ip": x509.IPAddress}


def _nc_match(kind: str, value: object, nc: x509.NameConstraints) -> bool:
    """OpenSSL's nc_match: permitted of this type (if any) must match one, excluded none."""
    gtype = _NC_TYPES[kind]
    permitted = [s for s in nc.permitted_subtrees or () if isinstance(s, gtype)]
    if permitted and not any(_nc_single(kind, value, s) for s in permitted):
        return False
    excluded = [s for s in nc.excluded_subtrees or () if isinstance(s, gtype)]
    return not any(_nc_single(kind, value, s) for s in excluded)


def _cn_as_dns(cn: str) -> str | None:
    """OpenSSL's cn2dnsid: a CN that looks like a host name with two labels or more."""
    cn = cn.removesuffix(".")
    plausible = False
    for i, c in enumerate(cn):
        if c.isascii() and c.isalnum():
            continue
        if 0 < i < len(cn) - 1:
            if c == "-":
                continue
            if c == "." and cn[i + 1] not in ".-" and cn[i - 1] != "-":
                plausible = True
                continue
        return None
    return cn if plausible else None


def _names_within(info: _Info, nc: x509.NameConstraints, leaf: bool) -> bool:
    if info.subject and not _nc_match("dir", info.subject, nc):
        return False
    for name in info.dns_sans:
        if not _nc_match("dns", name, nc):
            return False
    for ip in info.ip_sans:
        if not _nc_match("ip", ip, nc):
            return False
    if leaf and not info.dns_sans:
        for cn in info.cns:
            dns = _cn_as_dns(cn)
            if dns is not None and not _nc_match("dns", dns, nc):
                return False
    return True


# -- the trust store -------------------------------------------------------------------------


@dataclass
class TrustStore:
    """Trust anchors indexed by subject: Mozilla's roots (certifi) plus the user's CA files."""

    anchors: list[x509.Certificate] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_subject: dict[tuple, list[_Info]] = {}
        self._der: set[bytes] = set()
        self._links: dict[tuple[bytes, bytes], bool] = {}
        self._chains: dict[tuple[bytes, ...], _ChainFacts | None] = {}
        for cert in self.anchors:
            self._index(cert)

    def _index(self, cert: x509.Certificate) -> None:
        der = cert.public_bytes(_DER)
        if der in self._der:
            return
        try:
            info = _info(der)
        except CertError:
            return
        self._by_subject.setdefault(info.subject, []).append(info)
        self._der.add(der)
        self._chains.clear()

    def signed(self, child: _Info, issuer: _Info) -> bool:
        """The child's signature verifies with the issuer's key (remembered per pair)."""
        key = (child.der, issuer.der)
        known = self._links.get(key)
        if known is None:
            if len(self._links) >= LINK_CACHE:
                self._links.clear()
            try:
                child.cert.verify_directly_issued_by(issuer.cert)
                known = True
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                known = False
            self._links[key] = known
        return known

    def add_pem_file(self, path: Path | str) -> None:
        try:
            with warnings.catch_warnings():
                # a few Mozilla roots have non-positive serial numbers; they are still roots
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
                for cert in certs:
                    self.anchors.append(cert)
                    self._index(cert)
        except (OSError, *PARSE_ERRORS) as exc:
            raise CertError(f"cannot read CA file {path}: {exc}") from None
        self.sources.append(str(path))

    @classmethod
    def load(cls, ca_files: Iterable[Path | str] = (), *, mozilla: bool = True) -> TrustStore:
        store = cls()
        if mozilla:
            store.add_pem_file(certifi.where())
        for path in ca_files:
            store.add_pem_file(path)
        return store

    def candidates(self, subject: tuple) -> list[_Info]:
        return self._by_subject.get(subject, [])

    def contains(self, cert: x509.Certificate) -> bool:
        return cert.public_bytes(_DER) in self._der

    def contains_der(self, der: bytes) -> bool:
        return der in self._der


# -- path validation (OpenSSL 3.0 X509_verify_cert) -----------------------------------------


@dataclass(frozen=True, slots=True)
class PathResult:
    """One path validation: the path OpenSSL builds and what is wrong with it."""

    path: tuple[_Info, ...]        # leaf first; ends at an anchor when trusted
    trusted: bool
    reason: CertReason | None      # the first failure, None when trusted
    time_state: CertStatus | None  # None, EXPIRED or NOT_YET_VALID (on the checked part)
    time_sensitive: bool           # the issuer choice depended on the verification time


def _pick(candidates: Iterable[_Info], child: _Info, at: datetime, on_path: set[bytes],
          alone: bool, misses: set[CertReason]) -> tuple[_Info | None, bool]:
    """OpenSSL's issuer choice among candidates: the first valid at ``at``, else the one
    expiring last. Returns (issuer, did the time decide it). A certificate already on
    the path is no candidate, except a self-issued leaf's own (``alone``)."""
    best: _Info | None = None
    matches = 0
    for cand in candidates:
        if cand.der in on_path and not (alone and child.self_issued):
            continue
        why = likely_issued(cand, child)
        if why is not None:
            misses.add(why)
            continue
        matches += 1
        if cand.valid_at(at):
            return cand, matches > 1
        if best is None or cand.not_after > best.not_after:
            best = cand
    return best, matches > 1


def build_path(chain: Sequence[_Info], store: TrustStore, at: datetime
               ) -> tuple[list[_Info], CertReason | None, bool]:
    """(path, failure or None, did the time decide an issuer): OpenSSL's build_chain
    with X509_V_FLAG_TRUSTED_FIRST, no partial chains, no DANE."""
    leaf = chain[0]
    pool = [c for c in chain[1:MAX_PRESENTED] if c.der != leaf.der]
    path = [leaf]
    on_path = {leaf.der}
    sensitive = False
    misses: set[CertReason] = set()
    search_untrusted = bool(pool)
    trusted = False
    while len(path) <= MAX_PATH_LENGTH:
        top = path[-1]
        # the trust store first, at every step (for a self-signed certificate too)
        issuer, timed = _pick(store.candidates(top.issuer), top, at, on_path, len(path) == 1,
                              misses)
        sensitive |= timed
        if issuer is not None:
            if not top.self_signed:
                path.append(issuer)
                on_path.add(issuer.der)
                misses = set()
                search_untrusted = False
                if issuer.self_signed:
                    trusted = True
                    break
                continue
            if issuer.der == top.der:       # the server sent a trust anchor itself
                path[-1] = issuer
                trusted = True
                break
            # else a self-signed mimic of a trust anchor: no match
        if not search_untrusted:
            break
        if top.self_signed:
            search_untrusted = False
            continue
        issuer, timed = _pick(pool, top, at, on_path, len(path) == 1, misses)
        sensitive |= timed
        if issuer is None:
            search_untrusted = False
            continue
        pool.remove(issuer)
        path.append(issuer)
        on_path.add(issuer.der)
        misses = set()
    if trusted:
        return path, None, sensitive
    top = path[-1]
    if len(path) > MAX_PATH_LENGTH:
        reason = CertReason.CHAIN_TOO_LONG
    elif top.self_signed:
        reason = CertReason.SELF_SIGNED if len(path) == 1 else CertReason.UNTRUSTED_ROOT
    elif CertReason.AKID_MISMATCH in misses:
        reason = CertReason.AKID_MISMATCH
    else:
        reason = CertReason.UNKNOWN_ISSUER
    return path, reason, sensitive


def _check_chain(path: Sequence[_Info]) -> CertReason | None:
    """check_chain: critical extensions, CA flags, purpose, path length (in path order)."""
    plen = 0
    num = len(path)
    for i, info in enumerate(path):
        if info.invalid:
            return CertReason.MALFORMED
        if info.unknown_critical:
            return CertReason.UNKNOWN_CRITICAL_EXTENSION
        if i > 0:
            ret = _check_ca(info)
            if ret == 0 or (i + 1 < num and ret != 1):
                return CertReason.KEY_USAGE if _ku_rejects(info, "key_cert_sign") \
                    else CertReason.NOT_CA
        if not _purpose_ok(info, i > 0):
            return _purpose_reason(info, i > 0)
        if i > 1 and info.pathlen is not None and plen > info.pathlen:
            return CertReason.PATH_LENGTH
        if i > 0 and not info.self_issued:
            plen += 1
    return None


def _check_auth_level(path: Sequence[_Info], level: int) -> CertReason | None:
    minbits = MIN_BITS.get(level, 0)
    if minbits <= 0:
        return None
    for i, info in enumerate(path):
        if i > 0 and info.key_secbits < minbits:
            return CertReason.WEAK_KEY
        if i < len(path) - 1 and info.sig_secbits < minbits:
            return CertReason.WEAK_SIGNATURE
    return None


def _time_checked(path: Sequence[_Info]) -> Sequence[_Info]:
    """The certificates internal_verify checks the time of: all but a top that is not
    self-signed above a leaf."""
    top = path[-1]
    return path if len(path) == 1 or likely_issued(top, top) is None else path[:-1]


def _signatures_and_time(path: Sequence[_Info], store: TrustStore, at: datetime
                         ) -> tuple[CertReason | None, CertStatus | None]:
    """internal_verify: signatures top-down with the issuer's key, and each one's time."""
    top = path[-1]
    reason: CertReason | None = None
    if len(path) == 1 and likely_issued(top, top) is not None:
        reason = CertReason.UNKNOWN_ISSUER     # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    for k in range(len(path) - 2, -1, -1):
        child, issuer = path[k], path[k + 1]
        if reason is None and _ku_rejects(issuer, "key_cert_sign"):
            reason = CertReason.KEY_USAGE
        if reason is None and not store.signed(child, issuer):
            reason = CertReason.SIGNATURE_INVALID
    return reason, _time_state_of(path, at)


def _time_state_of(path: Sequence[_Info], at: datetime) -> CertStatus | None:
    states: set[CertStatus] = set()
    for info in _time_checked(path):
        _time_of(info, at, states)
    return CertStatus.EXPIRED if CertStatus.EXPIRED in states else next(iter(states), None)


def _time_of(info: _Info, at: datetime, states: set[CertStatus]) -> None:
    if at < info.not_before:
        states.add(CertStatus.NOT_YET_VALID)
    elif at >= info.not_after:
        states.add(CertStatus.EXPIRED)


def _check_name_constraints(path: Sequence[_Info]) -> CertReason | None:
    num = len(path)
    for i in range(num - 1, -1, -1):
        info = path[i]
        if i != 0 and info.self_issued:
            continue
        for j in range(num - 1, i, -1):
            nc = path[j].nc
            if nc is not None and not _names_within(info, nc, leaf=i == 0):
                return CertReason.NAME_CONSTRAINTS
    return None


def validate(chain_der: Sequence[bytes], store: TrustStore, at: datetime, *,
             auth_level: int = AUTH_LEVEL) -> PathResult:
    """Path validation of a presented chain (leaf first) at time ``at``, as OpenSSL does it
    for a TLS client checking a server (``-purpose sslserver``), with every error seen.

    Raises CertError when the leaf cannot be read (presented certificates that
    cannot be read are skipped, as a TLS library would never have got them).
    """
    leaf = _info_cached(chain_der[0])
    chain = [leaf]
    for der in chain_der[1:MAX_PRESENTED]:
        try:
            chain.append(_info_cached(der))
        except CertError:
            continue
    reasons: list[CertReason | None] = []
    minbits = MIN_BITS.get(auth_level, 0)
    if minbits and leaf.key_secbits < minbits:
        reasons.append(CertReason.WEAK_KEY)        # checked before the path is built
    path, build_reason, sensitive = build_path(chain, store, at)
    reasons.append(build_reason)
    reasons.append(_check_chain(path))
    reasons.append(_check_auth_level(path, auth_level))
    sig_reason, time_state = _signatures_and_time(path, store, at)
    reasons.append(sig_reason)
    reasons.append(_check_name_constraints(path))
    reason = next((r for r in reasons if r is not None), None)
    return PathResult(tuple(path), reason is None, reason, time_state, sensitive)


def find_path(chain: Sequence[x509.Certificate], store: TrustStore,
              at: datetime | None = None) -> list[x509.Certificate] | None:
    """The validated path leaf -> ... -> anchor, or None when the chain is untrusted."""
    when = at or datetime.now().astimezone()
    result = validate([c.public_bytes(_DER) for c in chain], store, when)
    return [i.cert for i in result.path] if result.trusted else None


# -- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: CertStatus
    trusted: bool | None
    time_valid: bool | None
    name_match: bool | None
    reason: str | None = None       # CertReason when not trusted


NO_CERT = Verdict(CertStatus.NO_CERT, None, None, None)
# a chain we cannot read earns no trust
UNPARSABLE = Verdict(CertStatus.UNTRUSTED, False, None, None, CertReason.MALFORMED.value)


@dataclass(frozen=True, slots=True)
class ChainJudgement:
    """What a chain says independently of the name it was reached by (judged once per chain)."""

    trusted: bool
    time_state: CertStatus | None   # None (valid), EXPIRED or NOT_YET_VALID
    self_signed: bool
    san_dns: tuple[str, ...]
    subject_cn: str | None
    reason: str | None = None


@dataclass(frozen=True)
class _ChainFacts:
    """What a chain's judgement needs; the time only matters when ``sensitive``."""

    result: PathResult
    leaf: CertFacts
    at: datetime


def _chain_facts(chain_der: tuple[bytes, ...], store: TrustStore, at: datetime
                 ) -> _ChainFacts | None:
    try:
        leaf = facts(chain_der[0])
        result = validate(chain_der, store, at)
    except CertError:
        return None
    return _ChainFacts(result, leaf, at)


def judge_chain(chain_der: Sequence[bytes], at: datetime, store: TrustStore
                ) -> ChainJudgement | None:
    """Path and time facts of a chain (leaf first); None when there is no readable leaf.

    The path is validated once per distinct chain and trust store (a provider's
    policy host shows one chain to thousands of domains), unless the issuer
    choice depended on time; the time is judged at ``at`` every time.
    """
    if not chain_der:
        return None
    key = tuple(chain_der[:MAX_PRESENTED])
    cache = store._chains
    found = cache.get(key)
    if found is None or (found.result.time_sensitive and found.at != at):
        if len(cache) >= CHAIN_CACHE:
            cache.clear()
        found = _chain_facts(key, store, at)
        if found is None:
            cache.pop(key, None)
            return None
        cache[key] = found
    result, leaf = found.result, found.leaf
    time_state = result.time_state if found.at == at else _time_state_of(result.path, at)
    return ChainJudgement(result.trusted, time_state, leaf.self_signed, leaf.san_dns,
                          leaf.subject_cn, result.reason.value if result.reason else None)


def verdict_for(judgement: ChainJudgement | None, host: str, *,
                profile: str = PROFILE_DEFAULT) -> Verdict:
    """The verdicts for a judged chain reached as ``host``."""
    if judgement is None:
        return UNPARSABLE
    name_match = cert_name_matches(host, list(judgement.san_dns), judgement.subject_cn,
                                   profile=profile)
    if not judgement.trusted:
        status = (CertStatus.SELF_SIGNED if judgement.reason == CertReason.SELF_SIGNED
                  else CertStatus.UNTRUSTED)
    elif judgement.time_state:
        status = judgement.time_state
    elif not name_match:
        status = CertStatus.NAME_MISMATCH
    else:
        status = CertStatus.VALID
    return Verdict(status, judgement.trusted, judgement.time_state is None, name_match,
                   judgement.reason)


def evaluate(chain_der: Sequence[bytes], host: str, at: datetime, store: TrustStore,
             *, profile: str = PROFILE_DEFAULT) -> Verdict:
    """The verdicts for a presented chain (leaf first) reached as ``host`` at time ``at``."""
    if not chain_der:
        return NO_CERT
    return verdict_for(judge_chain(chain_der, at, store), host, profile=profile)
