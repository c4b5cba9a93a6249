"""Legacy TLS servers of the testbed: the catalogue, and what a STARTTLS client gets from them.

Theory of operation
-------------------
This machine's OpenSSL 3 cannot serve SSLv3, RC4 or 3DES, and Python 3.11's
``ssl`` cannot restrict the TLS 1.3 suites of a server. Servers that need any
of that are ``TlsSpec(engine="tlslite")`` and are served by tlslite-ng
(``tlslite_server.py``), a second, independent TLS implementation that does
full handshakes. Their spec lists the suites *explicitly*, per version, in the
server's order (``TlsSpec.suites``); the server serves exactly those and
nothing else, so the truth of the ``versions`` and ``ciphers`` profiles is
read off the spec.

``CATALOGUE`` names the configurations a world uses (the generator deals them
from the profile's ``own.legacy`` shares). Every entry is checked by
``check_spec``: known suites (the cipher registry), valid at their version,
authenticated by the key type, servable by tlslite-ng; versions contiguous.
tlslite-ng has no export suites (only SSLv2 ones, which it cannot serve), so
no entry has any.

The ``starttls`` profile's handshake is the scanner's *stated* client: Python's
``ssl`` over this machine's OpenSSL with ``STARTTLS_CLIENT_CIPHERS`` and TLS
1.0 to 1.3 (docs/design.md "The SMTP dialogue"). ``starttls_outcome`` says what
that client negotiates with a tlslite server, from the spec alone: the highest
version both speak (a tlslite server answers that version or none), then the
server's first suite the client offers (server preference), or the client's
choice (client preference: known only when exactly one suite is common), or
no handshake when nothing is common. The client's suite list is the OpenSSL
library's answer for that cipher string (``ssl.SSLContext.get_ciphers``), an
assumption about the client, not scanner code: tests compare it with the
scanner's own context.
"""

from __future__ import annotations

import functools
import ssl
import warnings
from dataclasses import dataclass

from survey.proto import ciphers as registry
from survey.testbed.model import ALL_TLS_VERSIONS, TlsSpec, VersionSuites

STARTTLS_CLIENT_CIPHERS = "ALL:COMPLEMENTOFALL:!aNULL:!PSK:!SRP:@SECLEVEL=0"

# registry cipher (and key bits) -> tlslite-ng cipher name; registry mac -> tlslite mac name;
# (kx, auth) -> tlslite key exchange name. What tlslite-ng 0.8 can serve with a certificate.
_TLSLITE_CIPHERS = {
    ("AES_CBC", 128): "aes128", ("AES_CBC", 256): "aes256",
    ("AES_GCM", 128): "aes128gcm", ("AES_GCM", 256): "aes256gcm",
    ("AES_CCM", 128): "aes128ccm", ("AES_CCM", 256): "aes256ccm",
    ("CHACHA20_POLY1305", 256): "chacha20-poly1305", ("3DES_EDE_CBC", 168): "3des",
    ("RC4", 128): "rc4", ("NULL", 0): "null",
}
_TLSLITE_KX = {("RSA", "RSA"): "rsa", ("DHE", "RSA"): "dhe_rsa", ("ECDHE", "RSA"): "ecdhe_rsa",
               ("ECDHE", "ECDSA"): "ecdhe_ecdsa", ("ANY", "ANY"): "tls13"}


class LegacyTlsError(ValueError):
    """A tlslite TLS spec this testbed cannot serve as written."""


@dataclass(frozen=True)
class LegacyConfig:
    """One catalogue entry: what the server speaks (the certificate kind comes apart)."""

    name: str
    suites: tuple[VersionSuites, ...]
    server_preference: bool
    key_type: str
    why: str

    def spec(self, *, cert_kind: str = "valid", names: tuple[str, ...] = ()) -> TlsSpec:
        versions = tuple(v.version for v in self.suites)
        spec = TlsSpec(versions=versions, ciphers="", server_preference=self.server_preference,
                       cert_kind=cert_kind, names=names, key_type=self.key_type,
                       engine="tlslite", suites=self.suites)
        check_spec(spec)
        return spec


def _same(versions: tuple[str, ...], suites: tuple[str, ...]) -> tuple[VersionSuites, ...]:
    return tuple(VersionSuites(v, suites) for v in versions)


_RSA_LEGACY = ("TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
               "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_RC4_128_MD5")

CATALOGUE: dict[str, LegacyConfig] = {c.name: c for c in (
    LegacyConfig("sslv3_only", _same(("SSLv3",), _RSA_LEGACY), True, "rsa",
                 "SSLv3 alone: no handshake for a client without SSLv3"),
    LegacyConfig("sslv3_tls10", _same(("SSLv3", "TLSv1.0"), (
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_RC4_128_SHA")), True, "rsa",
                 "SSLv3 and TLS 1.0, 3DES preferred: an OpenSSL 3 client gets AES at TLS 1.0"),
    LegacyConfig("rc4_only", _same(("TLSv1.0", "TLSv1.1", "TLSv1.2"), (
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_RC4_128_MD5")), True, "rsa",
                 "RC4 only: no handshake for an OpenSSL 3 client"),
    LegacyConfig("3des_only", _same(("TLSv1.0", "TLSv1.1", "TLSv1.2"), (
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA")), False, "rsa",
                 "3DES only, client preference: no handshake for an OpenSSL 3 client"),
    LegacyConfig("legacy_client_order", _same(("TLSv1.0", "TLSv1.1", "TLSv1.2"), (
        "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA")), False, "rsa",
                 "RC4, 3DES and one AES suite, client preference: the one suite in common"),
    LegacyConfig("null_rsa", (VersionSuites("TLSv1.2", (
        "TLS_RSA_WITH_NULL_SHA256", "TLS_RSA_WITH_NULL_SHA", "TLS_ECDHE_RSA_WITH_NULL_SHA",
        "TLS_RSA_WITH_NULL_MD5")),), True, "rsa",
                 "NULL encryption only, TLS 1.2"),
    LegacyConfig("null_ecdsa", _same(("TLSv1.0", "TLSv1.1", "TLSv1.2"), (
        "TLS_ECDHE_ECDSA_WITH_NULL_SHA", "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA")), True, "ec",
                 "ECDSA with NULL, 3DES and RC4: an OpenSSL 3 client gets NULL"),
    LegacyConfig("tls13_chacha_only", (
        VersionSuites("TLSv1.2", ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",)),
        VersionSuites("TLSv1.3", ("TLS_CHACHA20_POLY1305_SHA256",))), True, "ec",
                 "TLS 1.3 restricted to ChaCha20-Poly1305"),
    LegacyConfig("tls13_aes128_first", (VersionSuites("TLSv1.3", (
        "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256")),), True, "rsa",
                 "TLS 1.3 only, AES-128-GCM preferred, no AES-256-GCM"),
    LegacyConfig("tls13_ccm_only", (VersionSuites("TLSv1.3", (
        "TLS_AES_128_CCM_SHA256",)),), True, "ec",
                 "TLS 1.3 with only AES-128-CCM, which OpenSSL clients do not offer by "
                 "default: no handshake for the scanner's client, one suite enumerated"),
)}


def config_name(tls: TlsSpec) -> str | None:
    """The catalogue entry a tlslite spec was built from (None for another spec)."""
    for config in CATALOGUE.values():
        if (config.suites == tls.suites and config.server_preference == tls.server_preference
                and config.key_type == tls.key_type):
            return config.name
    return None


def tlslite_names(suite: registry.CipherSuite) -> tuple[str, str, str] | None:
    """(cipher, mac, key exchange) in tlslite-ng's settings vocabulary; None if it cannot."""
    cipher = _TLSLITE_CIPHERS.get((suite.cipher, suite.key_bits))
    kx = _TLSLITE_KX.get((suite.kx, suite.auth))
    if cipher is None or kx is None:
        return None
    return cipher, suite.mac.lower(), kx


def check_spec(tls: TlsSpec) -> None:
    """Raise ``LegacyTlsError`` unless a tlslite server can serve ``tls`` exactly."""
    if tls.engine != "tlslite":
        raise LegacyTlsError(f"not a tlslite spec: engine {tls.engine!r}")
    listed = tuple(v.version for v in tls.suites)
    if listed != tls.versions or not listed:
        raise LegacyTlsError(f"versions {tls.versions} and suites {listed} differ")
    try:
        indexes = [ALL_TLS_VERSIONS.index(v) for v in listed]
    except ValueError:
        raise LegacyTlsError(f"unknown version in {listed}") from None
    if indexes != list(range(indexes[0], indexes[0] + len(indexes))):
        raise LegacyTlsError(f"versions must be contiguous and ascending: {listed}")
    if tls.cert_kind == "sni_dependent":
        raise LegacyTlsError("a tlslite server has one certificate (no sni_dependent)")
    for entry in tls.suites:
        if not entry.suites or len(set(entry.suites)) != len(entry.suites):
            raise LegacyTlsError(f"{entry.version}: empty or repeated suites")
        for name in entry.suites:
            suite = registry.by_iana_name(name)
            if suite is None:
                raise LegacyTlsError(f"unknown suite {name}")
            if not suite.valid_for(entry.version):
                raise LegacyTlsError(f"{name} is not defined for {entry.version}")
            if tlslite_names(suite) is None:
                raise LegacyTlsError(f"tlslite-ng cannot serve {name}")
            auth = {"rsa": "RSA", "ec": "ECDSA"}[tls.key_type]
            if suite.auth not in (auth, "ANY"):
                raise LegacyTlsError(f"{name} needs an {suite.auth} key, not {tls.key_type}")


def served_suites(tls: TlsSpec) -> dict[str, list[str]]:
    """Version -> the IANA names a tlslite server serves there, in its order."""
    return {v.version: list(v.suites) for v in tls.suites}


# -- the starttls profile's client ---------------------------------------------------------

@dataclass(frozen=True)
class ClientModel:
    """What the scanner's stated STARTTLS client offers."""

    versions: tuple[str, ...]
    suites: frozenset[str]          # IANA names


@functools.cache
def starttls_client() -> ClientModel:
    """Python's ssl with ``STARTTLS_CLIENT_CIPHERS`` and every version this OpenSSL has."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(STARTTLS_CLIENT_CIPHERS)
    suites = set()
    for c in ctx.get_ciphers():
        suite = registry.by_openssl_name(c["name"])
        if suite is not None:
            suites.add(suite.iana_name)
    versions = (("SSLv3",) if ssl.HAS_SSLv3 else ()) + ("TLSv1.0", "TLSv1.1", "TLSv1.2",
                                                        "TLSv1.3")
    return ClientModel(versions, frozenset(suites))


@dataclass(frozen=True)
class Negotiated:
    version: str
    cipher_suite: str | None        # None: the client's choice among several (unknown)


def starttls_outcome(tls: TlsSpec, client: ClientModel | None = None) -> Negotiated | None:
    """What the STARTTLS client negotiates with a tlslite server; None: no handshake."""
    client = client or starttls_client()
    served = served_suites(tls)
    common = [v for v in ALL_TLS_VERSIONS if v in served and v in client.versions]
    if not common:
        return None
    version = common[-1]
    shared = [s for s in served[version] if s in client.suites]
    if not shared:
        return None
    if tls.server_preference or len(shared) == 1:
        return Negotiated(version, shared[0])
    return Negotiated(version, None)
