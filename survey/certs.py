"""X.509 facts and verdicts: what a certificate says, and whether a sender should trust it.

Theory of operation
-------------------
A scan records the chain a server presented (DER, leaf first) and, per
(domain, MX host, IP), four verdicts defined in docs/design.md "Verdict definitions":

- ``trusted``: a path from the leaf to a trust anchor exists, using the
  presented certificates as intermediates, in any order, and no AIA fetching
  (a server that omits its intermediate is untrusted, as a sender would see it).
  A path is found by walking issuer names and checking each signature with the
  issuer's key; time and names play no part, so the verdicts stay separate.
- ``time_valid``: every certificate on that path (anchor included; the leaf
  alone when there is no path) is within its validity period at ``probed_at``.
- ``name_match``: the MX host matches the leaf's names (survey.proto.names:
  RFC 6125 §6.4 as profiled by RFC 7817).
- ``status``: ``valid`` when all three hold, else the first failing of
  ``no_cert``, ``self_signed``, ``untrusted``, ``expired`` / ``not_yet_valid``,
  ``name_mismatch``.

Certificates are hostile input: malformed DER or extensions give a
``CertError`` from ``facts`` and an ``untrusted`` verdict from ``evaluate``,
never a traceback.
"""

from __future__ import annotations

import functools
import hashlib
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
from cryptography.x509.oid import NameOID

from survey.proto.names import PROFILE_DEFAULT, cert_name_matches

MAX_PATH_LENGTH = 8      # intermediates + anchor; real chains have 2-4
MAX_PRESENTED = 16       # a server sending more is not helped by our reading them all
_DER = Encoding.DER
# Caches (performance; none changes a verdict): a scan judges each chain once, but
# intermediates and anchors recur in most chains, and many domains share a policy host's
# chain. Bounded: parsed certificates and facts by DER (LRU), issuer links between
# non-leaf certificates and whole-chain facts per trust store (cleared when full).
PARSED_CACHE = 2048
LINK_CACHE = 1 << 16
CHAIN_CACHE = 1024


class CertError(ValueError):
    """A certificate we cannot parse (the peer's fault)."""


def load_cert(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError) as exc:
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
    except (ValueError, TypeError) as exc:
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
    except CertError:
        raise
    except (ValueError, TypeError) as exc:
        raise CertError(f"malformed certificate: {exc}") from None


@dataclass
class TrustStore:
    """Trust anchors indexed by subject: Mozilla's roots (certifi) plus the user's CA files."""

    anchors: list[x509.Certificate] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        self._der: set[bytes] = set()
        self._anchor_der: dict[int, bytes] = {}      # id(anchor) -> DER (anchors live on)
        self._links: dict[tuple[bytes, bytes], bool] = {}
        self._chains: dict[tuple[bytes, ...], _ChainFacts | None] = {}
        for cert in self.anchors:
            self._index(cert)

    def _index(self, cert: x509.Certificate) -> None:
        self._by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
        der = cert.public_bytes(_DER)
        self._der.add(der)
        self._anchor_der[id(cert)] = der
        self._chains.clear()

    def linked(self, cert: x509.Certificate, cert_der: bytes, issuer: x509.Certificate,
               issuer_der: bytes) -> bool:
        """``is_directly_issued_by``, remembered: for links that recur (not from a leaf)."""
        key = (cert_der, issuer_der)
        known = self._links.get(key)
        if known is None:
            if len(self._links) >= LINK_CACHE:
                self._links.clear()
            known = self._links[key] = is_directly_issued_by(cert, issuer)
        return known

    def add_pem_file(self, path: Path | str) -> None:
        try:
            with warnings.catch_warnings():
                # a few Mozilla roots have non-positive serial numbers; they are still roots
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise CertError(f"cannot read CA file {path}: {exc}") from None
        for cert in certs:
            self.anchors.append(cert)
            self._index(cert)
        self.sources.append(str(path))

    @classmethod
    def load(cls, ca_files: Iterable[Path | str] = (), *, mozilla: bool = True) -> TrustStore:
        store = cls()
        if mozilla:
            store.add_pem_file(certifi.where())
        for path in ca_files:
            store.add_pem_file(path)
        return store

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return self._by_subject.get(cert.issuer.public_bytes(), [])

    def contains(self, cert: x509.Certificate) -> bool:
        return cert.public_bytes(_DER) in self._der


def find_path(chain: Sequence[x509.Certificate], store: TrustStore,
              ders: Sequence[bytes] | None = None) -> list[x509.Certificate] | None:
    """A path leaf -> ... -> anchor using presented certificates as intermediates, or None.

    ``ders``: the chain's DER (same order), when known: links between non-leaf
    certificates are then remembered by the store (an intermediate's link to
    its anchor is checked once per scan, not once per server).
    """
    leaf, presented = chain[0], list(chain[1:MAX_PRESENTED])
    if store.contains(leaf):
        return [leaf]
    der_of = {id(c): d for c, d in zip(chain, ders)} if ders is not None else {}

    def issued(tip: x509.Certificate, issuer: x509.Certificate, issuer_der: bytes | None
               ) -> bool:
        tip_der = der_of.get(id(tip))
        if tip is leaf or tip_der is None or issuer_der is None:
            return is_directly_issued_by(tip, issuer)
        return store.linked(tip, tip_der, issuer, issuer_der)

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        tip = path[-1]
        for anchor in store.issuers_of(tip):
            if issued(tip, anchor, store._anchor_der.get(id(anchor))):  # noqa: SLF001
                return path + [anchor]
        if len(path) >= MAX_PATH_LENGTH:
            return None
        for candidate in presented:
            if candidate not in path and issued(tip, candidate, der_of.get(id(candidate))):
                if found := extend(path + [candidate]):
                    return found
        return None

    return extend([leaf])


def _time_state(certs: Iterable[x509.Certificate], at: datetime) -> str | None:
    """None when all are valid at ``at``, else ``expired`` or ``not_yet_valid``."""
    states = set()
    for cert in certs:
        if at > cert.not_valid_after_utc:
            states.add("expired")
        elif at < cert.not_valid_before_utc:
            states.add("not_yet_valid")
    return "expired" if "expired" in states else next(iter(states), None)


@dataclass(frozen=True)
class Verdict:
    status: str
    trusted: bool | None
    time_valid: bool | None
    name_match: bool | None


NO_CERT = Verdict("no_cert", None, None, None)
UNPARSABLE = Verdict("untrusted", False, None, None)  # a chain we cannot read earns no trust


@dataclass(frozen=True, slots=True)
class ChainJudgement:
    """What a chain says independently of the name it was reached by (judged once per chain)."""

    trusted: bool
    time_state: str | None          # None (valid), "expired" or "not_yet_valid"
    self_signed: bool
    san_dns: tuple[str, ...]
    subject_cn: str | None


@dataclass(frozen=True)
class _ChainFacts:
    """What a chain's judgement needs, free of the time it is judged at."""

    trusted: bool
    not_before: datetime            # the latest start on the path (the leaf alone: no path)
    not_after: datetime             # the earliest end
    leaf: CertFacts


def _chain_facts(chain_der: tuple[bytes, ...], store: TrustStore) -> _ChainFacts | None:
    try:
        chain = [_load_cached(der) for der in chain_der]
        leaf = facts(chain_der[0])
    except CertError:
        return None
    path = find_path(chain, store, chain_der)
    timed = path or chain[:1]
    return _ChainFacts(path is not None, max(c.not_valid_before_utc for c in timed),
                       min(c.not_valid_after_utc for c in timed), leaf)


def judge_chain(chain_der: Sequence[bytes], at: datetime, store: TrustStore
                ) -> ChainJudgement | None:
    """Path and time facts of a chain (leaf first); None when there is no readable leaf.

    The path is found once per distinct chain and trust store (a provider's
    policy host shows one chain to thousands of domains); the time is judged
    at ``at`` every time.
    """
    if not chain_der:
        return None
    key = tuple(chain_der[:MAX_PRESENTED])
    cache = store._chains  # noqa: SLF001
    if key in cache:
        found = cache[key]
    else:
        if len(cache) >= CHAIN_CACHE:
            cache.clear()
        found = cache[key] = _chain_facts(key, store)
    if found is None:
        return None
    # every certificate valid at ``at``; any expired wins over any not yet valid
    time_state = ("expired" if at > found.not_after else
                  "not_yet_valid" if at < found.not_before else None)
    leaf = found.leaf
    return ChainJudgement(found.trusted, time_state, leaf.self_signed, leaf.san_dns,
                          leaf.subject_cn)


def verdict_for(judgement: ChainJudgement | None, host: str, *,
                profile: str = PROFILE_DEFAULT) -> Verdict:
    """The verdicts for a judged chain reached as ``host``."""
    if judgement is None:
        return UNPARSABLE
    name_match = cert_name_matches(host, list(judgement.san_dns), judgement.subject_cn,
                                   profile=profile)
    if not judgement.trusted:
        status = "self_signed" if judgement.self_signed else "untrusted"
    elif judgement.time_state:
        status = judgement.time_state
    elif not name_match:
        status = "name_mismatch"
    else:
        status = "valid"
    return Verdict(status, judgement.trusted, judgement.time_state is None, name_match)


def evaluate(chain_der: Sequence[bytes], host: str, at: datetime, store: TrustStore,
             *, profile: str = PROFILE_DEFAULT) -> Verdict:
    """The verdicts for a presented chain (leaf first) reached as ``host`` at time ``at``."""
    if not chain_der:
        return NO_CERT
    return verdict_for(judge_chain(chain_der, at, store), host, profile=profile)
