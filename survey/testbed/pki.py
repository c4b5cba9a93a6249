"""The testbed world's PKI: a root CA, an intermediate, and leaves of every kind.

Theory of operation
-------------------
A world needs certificates that a scanner must judge: valid ones chaining to
the world's root, and every way of being wrong (expired, not yet valid,
self-signed, wrong name, issued by a CA nobody trusts, missing intermediate,
a certificate that depends on SNI). The *kind* is part of the world spec; the
bytes are not (determinism means "same spec, same truth", not "same DER"),
so keys are generated fresh per process. Within one process (and the members
of ``survey world --processes``, which share the keys made before they fork)
a certificate is the same DER on every contact, also after the bounded caches
below dropped it and it was signed again: serial numbers come from what the
certificate is, ECDSA signatures use RFC 6979 nonces (chains.serial_for,
chains.sign). Scans of one world compare certificates by hash.

Keys are expensive and certificates are cheap, so a handful of keys is shared:
one per CA, one EC P-256 leaf key and one RSA-2048 leaf key (built lazily;
RSA only when a spec asks for it). Leaves are signed on demand and cached by
``(kind, names, key_type)``; ``ssl.SSLContext`` objects are cached by
``(tls_spec, names)``. Both caches are bounded LRUs (a context costs ~35 KB
and ~1.5 ms to build), so a world of 100,000 domains pays only for what a scan
touches, and its memory stays flat however many servers the scan visits.

Every leaf uses the ordinary Web PKI profile a peer tool accepts: SAN dNSNames
(not critical, unlike trustme's), subject CN = first name, BasicConstraints
CA:FALSE (critical), KeyUsage digitalSignature (+ keyEncipherment for RSA),
ExtendedKeyUsage serverAuth, SKI/AKI. The CA bundle (root only) is written to
``<world_dir>/ca.pem``; the intermediate is only ever sent by the servers, so a
leaf served without it has no path to the root (no AIA fetching).

Kinds (what the server sends; see ``LEAF_KINDS``):
  valid                 leaf (by the intermediate) + intermediate
  expired               same chain, leaf notAfter in the past
  not_yet_valid         same chain, leaf notBefore in the future
  self_signed           a self-issued leaf for the names, alone
  wrong_name            valid chain for names that differ from the requested
                        ones (``wrong_name_for``)
  untrusted             leaf + issuer from a CA outside the bundle
  missing_intermediate  leaf by the intermediate, sent alone
  chain:<kind>          a chain kind of survey/testbed/chains.py (each certificate
                        defect alone, odd orders, cross-signs, wildcard, CN-only...)
                        served for the names, with its own keys; the anchors its
                        kinds trust are in ``ca.pem`` beside the root
  sni_dependent         (contexts only) SNI naming one of the names (or
                        matching a ``*.`` name) gets a valid leaf for
                        exactly that name; no SNI or another
                        name gets the default: a valid leaf for
                        ``sni_default_name(names)``, which matches none of them
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import ssl
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from survey.testbed import chains

CHAIN_PREFIX = chains.CHAIN_PREFIX
# every chain kind of survey/testbed/chains.py (defects alone, odd orders, cross-signs...)
CHAIN_KINDS = tuple(CHAIN_PREFIX + name for name in chains.KIND_NAMES)
LEAF_KINDS = ("valid", "expired", "not_yet_valid", "self_signed", "wrong_name", "untrusted",
              "missing_intermediate") + CHAIN_KINDS
CERT_KINDS = LEAF_KINDS + ("sni_dependent",)
KEY_TYPES = ("ec", "rsa")
TLS_VERSION_NAMES = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

_T = TypeVar("_T")

ROOT_NAME = "Survey Testbed Root CA"
INTERMEDIATE_NAME = "Survey Testbed Intermediate CA"
UNTRUSTED_NAME = "Survey Testbed Untrusted CA"
CA_BUNDLE_FILE = "ca.pem"

_DAY = dt.timedelta(days=1)
_SSL_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_NO_VERSION_OPTION = {
    "TLSv1.0": ssl.OP_NO_TLSv1,
    "TLSv1.1": ssl.OP_NO_TLSv1_1,
    "TLSv1.2": ssl.OP_NO_TLSv1_2,
    "TLSv1.3": ssl.OP_NO_TLSv1_3,
}


class PkiError(ValueError):
    """A certificate or TLS spec the PKI cannot serve."""


def wrong_name_for(names: Sequence[str]) -> str:
    """The name a ``wrong_name`` leaf carries instead of ``names``.

    Under ``.invalid`` (RFC 6761), so it can match no name of any world.
    """
    digest = hashlib.sha256("\0".join(names).encode()).hexdigest()[:12]
    return f"wrong-name-{digest}.invalid"


def sni_default_name(names: Sequence[str]) -> str:
    """The name on the certificate an SNI-dependent server sends by default."""
    digest = hashlib.sha256("\0".join(names).encode()).hexdigest()[:12]
    return f"sni-default-{digest}.invalid"


@dataclass(frozen=True)
class Leaf:
    """One served certificate chain: the leaf first, then what the server sends after it."""

    kind: str
    names: tuple[str, ...]          # SAN dNSNames actually in the leaf
    key_type: str
    chain: tuple[x509.Certificate, ...]
    key_pem: bytes | None = None    # the leaf's own key (chain kinds); else the shared one

    @property
    def cert(self) -> x509.Certificate:
        return self.chain[0]

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


class LruCache(Generic[_T]):
    """A small least-recently-used map: a 100,000-domain world touches more
    certificates and contexts (~30 KB each) than are worth keeping."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[Hashable, _T] = OrderedDict()

    def get(self, key: Hashable) -> _T | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, item: _T) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class _Ca:
    cert: x509.Certificate
    key: Any


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "survey testbed"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca_cert(subject: x509.Name, key: Any, issuer: _Ca | None, now: dt.datetime,
             path_length: int | None) -> x509.Certificate:
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 3650 * _DAY)
        .not_valid_after(now + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
    return _signed(builder, key, issuer)


def _signed(builder: x509.CertificateBuilder, key: Any, issuer: _Ca | None
            ) -> x509.Certificate:
    """``builder`` with the key identifiers (SKI; AKI when issued), signed by the issuer.

    No issuer: self-signed with ``key``.
    """
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                    critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    return chains.sign(builder, issuer.key if issuer else key, hashes.SHA256())


class Pki:
    """The certificates and server TLS contexts of one world.

    ``Pki(world_dir)`` writes the CA bundle to ``world_dir/ca.pem``;
    ``Pki()`` (or ``Pki(seed)``, kept for symmetry with the generator) writes it
    to a private temporary directory. ``now`` fixes the validity reference
    (default: the time of construction).
    """

    def __init__(self, where: str | os.PathLike[str] | int | None = None, *,
                 now: dt.datetime | None = None, max_contexts: int = 4096,
                 max_leaves: int = 16384) -> None:
        self.now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        if isinstance(where, (str, os.PathLike)):
            self.directory = Path(where)
            self.directory.mkdir(parents=True, exist_ok=True)
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="survey-pki-"))
        self._lock = threading.Lock()
        root_key, inter_key, untrusted_key = _ec_key(), _ec_key(), _ec_key()
        root_cert = _ca_cert(_name(ROOT_NAME), root_key, None, self.now, None)
        self.root = _Ca(root_cert, root_key)
        self.intermediate = _Ca(
            _ca_cert(_name(INTERMEDIATE_NAME), inter_key, self.root, self.now, 0), inter_key)
        self.untrusted = _Ca(
            _ca_cert(_name(UNTRUSTED_NAME), untrusted_key, None, self.now, None), untrusted_key)
        self._leaf_keys: dict[str, Any] = {}
        self._key_pems: dict[str, bytes] = {}
        self._leaves: LruCache[Leaf] = LruCache(max_leaves)
        self._contexts: LruCache[ssl.SSLContext] = LruCache(max_contexts)
        # the chain kinds (survey/testbed/chains.py): their own keys, and their anchors in
        # the bundle beside the root (built now, so every chain later shares them)
        self._chain_keys = chains.Keys(max_signed=min(max_leaves, 4096))
        anchors = [chains.build(chains.ChainSpec((spec,), (0,), (0,)), self.now,
                                self._chain_keys).certs[0] for spec in chains.anchor_specs()]
        self.ca_bundle_path = self.directory / CA_BUNDLE_FILE
        self.ca_bundle_path.write_bytes(b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (root_cert, *anchors)))

    # -- keys --------------------------------------------------------------------------

    def leaf_key(self, key_type: str = "ec") -> Any:
        """The shared leaf key of a type (built on first use)."""
        if key_type not in KEY_TYPES:
            raise PkiError(f"unknown key type {key_type!r}")
        with self._lock:
            key = self._leaf_keys.get(key_type)
            if key is None:
                key = (_ec_key() if key_type == "ec"
                       else rsa.generate_private_key(public_exponent=65537, key_size=2048))
                self._leaf_keys[key_type] = key
                self._key_pems[key_type] = _key_pem(key)
            return key

    def leaf_key_pem(self, key_type: str = "ec") -> bytes:
        """The shared leaf key of a type as unencrypted PKCS#8 PEM (for tlslite-ng)."""
        self.leaf_key(key_type)
        return self._key_pems[key_type]

    # -- leaves ------------------------------------------------------------------------

    def leaf(self, kind: str, names: Iterable[str], key_type: str = "ec") -> Leaf:
        """The (cached) chain a server of ``kind`` sends for ``names``."""
        names = tuple(names)
        if kind not in LEAF_KINDS:
            raise PkiError(f"no single leaf for cert kind {kind!r}")
        if not names:
            raise PkiError("a leaf needs at least one name")
        cache_key = (kind, names, key_type)
        leaf = self._leaves.get(cache_key)
        if leaf is None:
            leaf = self._build_leaf(kind, names, key_type)
            self._leaves.put(cache_key, leaf)
        return leaf

    def _build_leaf(self, kind: str, names: tuple[str, ...], key_type: str) -> Leaf:
        if kind.startswith(CHAIN_PREFIX):
            return self._chain_leaf(kind, names)
        key = self.leaf_key(key_type)
        not_before, not_after = self.now - 30 * _DAY, self.now + 365 * _DAY
        san = names
        issuer: _Ca | None = self.intermediate
        if kind == "expired":
            not_before, not_after = self.now - 400 * _DAY, self.now - 35 * _DAY
        elif kind == "not_yet_valid":
            not_before, not_after = self.now + 35 * _DAY, self.now + 400 * _DAY
        elif kind == "wrong_name":
            san = (wrong_name_for(names),)
        elif kind == "untrusted":
            issuer = self.untrusted
        elif kind == "self_signed":
            issuer = None
        cert = self._sign_leaf(san, key, issuer, not_before, not_after, key_type)
        if kind == "self_signed" or kind == "missing_intermediate":
            chain: tuple[x509.Certificate, ...] = (cert,)
        elif kind == "untrusted":
            chain = (cert, self.untrusted.cert)
        else:
            chain = (cert, self.intermediate.cert)
        return Leaf(kind, san, key_type, chain)

    def _chain_leaf(self, kind: str, names: tuple[str, ...]) -> Leaf:
        """A chain kind served for ``names`` (chains.for_names), with its own leaf key."""
        spec = chains.for_names(kind.removeprefix(CHAIN_PREFIX), names)
        built = chains.build(spec.spec, self.now, self._chain_keys)
        return Leaf(kind, tuple(spec.leaf.san or ()), spec.leaf_key_type, tuple(built.sent),
                    _key_pem(built.leaf_key))

    def _sign_leaf(self, names: tuple[str, ...], key: Any, issuer: _Ca | None,
                   not_before: dt.datetime, not_after: dt.datetime,
                   key_type: str) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(chains.serial_for(names, issuer.cert.subject if issuer else None,
                                             not_before, not_after, chains.public_key_der(key)))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=key_type == "rsa", data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
        )
        return _signed(builder, key, issuer)

    # -- TLS contexts --------------------------------------------------------------------

    def server_context(self, tls_spec: Any, names: Iterable[str]) -> ssl.SSLContext:
        """A cached server context for a TLS spec and the names it serves.

        ``tls_spec`` needs ``versions``, ``ciphers``, ``server_preference``,
        ``cert_kind`` and optionally ``key_type`` (default ``"ec"``); it must
        be hashable (a frozen dataclass). ``names`` are the certificate's
        SAN dNSNames (for ``sni_dependent``: the names that get their own leaf).
        """
        names = tuple(names)
        if getattr(tls_spec, "engine", "openssl") != "openssl":
            raise PkiError(f"no OpenSSL context for a {tls_spec.engine} spec "
                           "(tlslite_server.py serves those)")
        cache_key = (tls_spec, names)
        ctx = self._contexts.get(cache_key)
        if ctx is None:
            ctx = self._build_context(tls_spec, names)
            self._contexts.put(cache_key, ctx)
        return ctx

    def _build_context(self, tls_spec: Any, names: tuple[str, ...]) -> ssl.SSLContext:
        kind = tls_spec.cert_kind
        key_type = getattr(tls_spec, "key_type", None) or "ec"
        if kind != "sni_dependent":
            return self._context_for(tls_spec, self.leaf(kind, names, key_type))
        default = self._context_for(
            tls_spec, self.leaf("valid", (sni_default_name(names),), key_type))
        per_name = {n.lower(): self._context_for(tls_spec, self.leaf("valid", (n,), key_type))
                    for n in names}

        def choose(sslobj: ssl.SSLObject, server_name: str | None,
                   _ctx: ssl.SSLContext) -> None:
            name = (server_name or "").lower().rstrip(".")
            chosen = per_name.get(name)
            if chosen is None and "." in name:  # a wildcard name covers one label
                chosen = per_name.get("*." + name.split(".", 1)[1])
            if chosen is not None:
                sslobj.context = chosen

        default.sni_callback = choose
        return default

    def dispatch_context(self, tls_spec: Any, names: Iterable[str],
                         select: Callable[[str], ssl.SSLContext | None]) -> ssl.SSLContext:
        """A new (uncached) context serving ``names`` by default, switching by SNI.

        For one address shared by several virtual hosts: ``select(sni)``
        returns the context of the host the client named (or None to keep
        the default). Protocol versions and ciphers of the handshake come
        from ``tls_spec`` (OpenSSL switches only the certificate).
        """
        names = tuple(names)
        key_type = getattr(tls_spec, "key_type", None) or "ec"
        ctx = self._context_for(tls_spec, self.leaf(tls_spec.cert_kind, names, key_type))

        def choose(sslobj: ssl.SSLObject, server_name: str | None,
                   _ctx: ssl.SSLContext) -> None:
            if server_name:
                chosen = select(server_name.lower().rstrip("."))
                if chosen is not None:
                    sslobj.context = chosen

        ctx.sni_callback = choose
        return ctx

    def _context_for(self, tls_spec: Any, leaf: Leaf) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        configure_versions(ctx, tls_spec.versions)
        ciphers = cipher_string(tls_spec.ciphers, tls_spec.versions)
        if leaf.kind.startswith(CHAIN_PREFIX) and "@SECLEVEL" not in ciphers:
            ciphers += ":@SECLEVEL=0"   # OpenSSL would refuse to load weak keys or SHA-1
        ctx.set_ciphers(ciphers)
        if tls_spec.server_preference:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if leaf.key_pem is None:
            self.leaf_key(leaf.key_type)
        # load_cert_chain only reads files: write key + chain to a private
        # temporary file, load it, delete it (no key material stays on disk).
        fd, path = tempfile.mkstemp(prefix="survey-leaf-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write((leaf.key_pem or self._key_pems[leaf.key_type]) + leaf.chain_pem())
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        return ctx


def configure_versions(ctx: ssl.SSLContext, versions: Iterable[str]) -> None:
    """Enable exactly ``versions`` (TLSv1.0..TLSv1.3; gaps become OP_NO_* options)."""
    wanted = set(versions)
    unknown = wanted - set(TLS_VERSION_NAMES)
    if unknown or not wanted:
        raise PkiError(f"cannot serve TLS versions {sorted(unknown) or 'none'}")
    ordered = [v for v in TLS_VERSION_NAMES if v in wanted]
    with warnings.catch_warnings():  # serving deprecated versions is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        _set_versions(ctx, wanted, ordered)


def _set_versions(ctx: ssl.SSLContext, wanted: set[str], ordered: list[str]) -> None:
    ctx.minimum_version = _SSL_VERSIONS[ordered[0]]
    ctx.maximum_version = _SSL_VERSIONS[ordered[-1]]
    for v in TLS_VERSION_NAMES[TLS_VERSION_NAMES.index(ordered[0]):
                               TLS_VERSION_NAMES.index(ordered[-1])]:
        if v not in wanted:
            ctx.options |= _NO_VERSION_OPTION[v]


def cipher_string(ciphers: str | None, versions: Iterable[str]) -> str:
    """The OpenSSL cipher string to set, with ``@SECLEVEL=0`` when TLS 1.0/1.1 (or an
    anonymous suite, refused from level 1) are on.

    OpenSSL 3 refuses TLS 1.0/1.1 (their MD5/SHA-1 handshake signatures) at
    the default security level, so a server that is meant to offer them must
    lower it, or it would silently serve only TLS 1.2+.
    """
    base = ciphers or "DEFAULT"
    legacy = bool({"TLSv1.0", "TLSv1.1"} & set(versions))
    anonymous = any(part.startswith(("ADH", "AECDH", "aNULL")) for part in base.split(":"))
    if (legacy or anonymous) and "@SECLEVEL" not in base:
        base += ":@SECLEVEL=0"
    return base
