"""The TLS cipher suite registry: data (``data/cipher_suites.csv``) and its reader.

One row per IANA cipher suite a scanner may offer or meet (IANA "TLS Cipher
Suites" registry, every assigned suite except TLS_NULL_WITH_NULL_NULL and the
two signalling values), with the OpenSSL name where OpenSSL has or had one,
the suite's parts and two security classes:

- ``ncsc_class``: NCSC-NL "IT Security Guidelines for Transport Layer Security
  (TLS)", 2025 edition (2025-05), Appendix B. TLS 1.3 AES-256-GCM and
  ChaCha20-Poly1305 are *good*; TLS 1.3 AES-128-GCM/CCM and ECDHE-(ECDSA|RSA)
  with AES-GCM, AES-CCM or ChaCha20-Poly1305 are *sufficient*; DHE-RSA with
  those, and ECDHE-(ECDSA|RSA)/DHE-RSA with Camellia/ARIA (GCM, or CBC with a
  SHA-2 MAC) or AES-CBC with a SHA-2 MAC are *phase-out*; anything not listed
  (RSA key exchange, SHA-1 CBC, 3DES, static DH/ECDH, DSS, anon, PSK, CCM_8...)
  is *insufficient*.
- ``ncsc_class_v2_1``: version 2.1 of the same guidelines (January 2021),
  Appendix C. TLS 1.3 AES-GCM and ChaCha20-Poly1305 are *good*;
  ECDHE-(ECDSA|RSA) and DHE-RSA with AES-GCM, ChaCha20-Poly1305 or AES-CBC
  (SHA-1 or SHA-2 MAC) are *sufficient* (no TLS 1.2 suite is good there);
  those with 3DES, and RSA key exchange with AES-GCM, AES-CBC or 3DES, are
  *phase-out*; anything not listed (any AES-CCM, Camellia, ARIA, ...) is
  *insufficient*.

Sources (the guideline PDFs themselves were not reachable; these reproduce
their appendices): 2025: internetstandards/Internet.nl
``checks/tasks/tls/tls_constants.py`` after PR #1800 "Update sslyze branch to
NCSC 2025"; 2.1: internetstandards/Internet.nl ``checks/tasks/tls_constants.py``
(release 1.10, criteria per v2.1) and the Appendix C quote in
https://github.com/internetstandards/Internet.nl/issues/1266.
``tests/test_ncsc_classes.py`` restates both appendices as rules over the
suite's parts and checks every row against them.

DHE suites are classed assuming an adequate group; the group the server uses is
a separate measurement (ServerKeyExchange, see ``tlshello``).

The CSV is the source of truth; tests cross-check it against this machine's
``openssl ciphers -V -stdname`` and against structural invariants.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# Protocol versions: canonical dataset names and wire codes.
SSL3 = "SSLv3"
TLS10 = "TLSv1.0"
TLS11 = "TLSv1.1"
TLS12 = "TLSv1.2"
TLS13 = "TLSv1.3"
VERSIONS: tuple[str, ...] = (SSL3, TLS10, TLS11, TLS12, TLS13)
VERSION_CODES: dict[str, int] = {
    SSL3: 0x0300,
    TLS10: 0x0301,
    TLS11: 0x0302,
    TLS12: 0x0303,
    TLS13: 0x0304,
}
_CODE_VERSIONS = {v: k for k, v in VERSION_CODES.items()}

SECURITY_CLASSES: tuple[str, ...] = ("good", "sufficient", "phase-out", "insufficient")

# Signalling values (RFC 5746 §3.3, RFC 7507 §2): never "chosen", never in the registry rows.
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
TLS_FALLBACK_SCSV = 0x5600

# Families a scan offers by default; PSK, SRP and ECCPWD need a shared secret
# the scanner does not have, so a server cannot complete them with us.
DEFAULT_FAMILIES = frozenset({"standard", "tls13", "krb5", "gost"})


def version_name(code: int) -> str | None:
    """``0x0303`` -> ``"TLSv1.2"``; None for codes that are no SSLv3..TLS 1.3 version."""
    return _CODE_VERSIONS.get(code)


def version_index(name: str) -> int:
    return VERSIONS.index(name)


@dataclass(frozen=True)
class CipherSuite:
    code: int
    iana_name: str
    openssl_name: str | None
    # kx: RSA, DH, DHE, ECDH, ECDHE, DH_anon, ECDH_anon, PSK, DHE_PSK, RSA_PSK, ECDHE_PSK,
    # SRP, KRB5, ...; ANY for TLS 1.3 (negotiated apart from the suite)
    kx: str
    auth: str  # RSA, DSS, ECDSA, anon, PSK, SRP, KRB5, ...; ANY for TLS 1.3
    cipher: str  # AES_GCM, AES_CBC, CHACHA20_POLY1305, 3DES_EDE_CBC, RC4, NULL, ...
    key_bits: int
    mac: str  # AEAD, SHA (SHA-1), SHA256, SHA384, MD5, ...
    aead: bool
    forward_secrecy: bool  # ephemeral key exchange (anonymous DH/ECDH included)
    export: bool
    min_version: str
    max_version: str
    family: str  # standard, tls13, psk, srp, krb5, gost, eccpwd
    ncsc_class: str  # NCSC-NL 2025 edition
    ncsc_class_v2_1: str  # NCSC-NL version 2.1 (2021)

    @property
    def hex(self) -> str:
        return f"0x{self.code:04X}"

    @property
    def tls13(self) -> bool:
        return self.min_version == TLS13

    def valid_for(self, version: str) -> bool:
        """Whether the suite is defined for ``version`` (RFC-wise, not policy-wise)."""
        i = version_index(version)
        return version_index(self.min_version) <= i <= version_index(self.max_version)

    def offerable_in(self, version: str) -> bool:
        """Whether a scan offers it in a hello of ``version``.

        Looser than ``valid_for`` upwards: export suites stay offered up to TLS
        1.2 (a server that still picks one there is worth knowing), but never
        below the suite's first version, and TLS 1.3 suites only in TLS 1.3.
        """
        if self.tls13 or version == TLS13:
            return self.tls13 and version == TLS13
        return version_index(self.min_version) <= version_index(version)


def _parse(text: str) -> tuple[CipherSuite, ...]:
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        out.append(
            CipherSuite(
                code=int(row["code"], 16),
                iana_name=row["iana_name"],
                openssl_name=row["openssl_name"] or None,
                kx=row["kx"],
                auth=row["auth"],
                cipher=row["cipher"],
                key_bits=int(row["key_bits"]),
                mac=row["mac"],
                aead=row["aead"] == "1",
                forward_secrecy=row["pfs"] == "1",
                export=row["export"] == "1",
                min_version=row["min_version"],
                max_version=row["max_version"],
                family=row["family"],
                ncsc_class=row["ncsc_2025"],
                ncsc_class_v2_1=row["ncsc_2021"],
            )
        )
    return tuple(out)


@lru_cache(maxsize=1)
def all_suites() -> tuple[CipherSuite, ...]:
    """Every registry row, by code."""
    text = (
        resources.files("survey.proto")
        .joinpath("data/cipher_suites.csv")
        .read_text(encoding="utf-8")
    )
    return _parse(text)


@lru_cache(maxsize=1)
def _indexes() -> tuple[dict[int, CipherSuite], dict[str, CipherSuite], dict[str, CipherSuite]]:
    suites = all_suites()
    return (
        {s.code: s for s in suites},
        {s.iana_name: s for s in suites},
        {s.openssl_name: s for s in suites if s.openssl_name},
    )


def by_code(code: int) -> CipherSuite | None:
    return _indexes()[0].get(code)


def by_iana_name(name: str) -> CipherSuite | None:
    return _indexes()[1].get(name)


def by_openssl_name(name: str) -> CipherSuite | None:
    """OpenSSL name -> suite; also accepts the pre-1.1.0 ``EDH-`` spelling of ``DHE-``.

    OpenSSL spells TLS 1.3 suites by their IANA names, so those resolve too.
    """
    openssl = _indexes()[2]
    found = openssl.get(name)
    if found is None and "EDH-" in name:
        found = openssl.get(name.replace("EDH-", "DHE-"))
    return found


def openssl_to_iana(name: str) -> str | None:
    """Map a name as OpenSSL (or Python's ``ssl``) reports it to the IANA name."""
    suite = by_openssl_name(name)
    return suite.iana_name if suite else None


def name_for_code(code: int) -> str:
    """The IANA name, or ``0xHHHH`` for a code the registry lacks (stored as seen)."""
    suite = by_code(code)
    return suite.iana_name if suite else f"0x{code:04X}"


_CLASS_RANK = {c: i for i, c in enumerate(SECURITY_CLASSES)}


def _strength_key(s: CipherSuite) -> tuple:
    # Strongest first, the way a real client orders its list; ties by code for stability.
    return (
        _CLASS_RANK[s.ncsc_class_v2_1],
        _CLASS_RANK[s.ncsc_class],
        not s.forward_secrecy,
        not s.aead,
        -s.key_bits,
        s.code,
    )


_MAINSTREAM_KX = frozenset({"ECDHE", "DHE", "RSA", "DH_anon", "ECDH_anon"})


def _deployment_tier(s: CipherSuite) -> int:
    """0: what real stacks (OpenSSL, SChannel, GnuTLS, Java) serve; 1: their export and
    NULL suites; 2: the rest (static DH/ECDH, KRB5, GOST, suites OpenSSL never had)."""
    if s.tls13:
        return 0 if s.openssl_name else 2
    if s.openssl_name is None or s.kx not in _MAINSTREAM_KX:
        return 2
    return 1 if s.export or s.cipher == "NULL" else 0


def scan_candidates(version: str, families: frozenset[str] = DEFAULT_FAMILIES) -> tuple[int, ...]:
    """The suites a scan offers in ``version`` hellos, most likely to be deployed first.

    Tier 0 (mainstream key exchanges with a cipher OpenSSL knows or knew:
    about 110 suites at TLS 1.2, so they fit the first 128-suite chunk), then
    export and NULL, then the rest; strongest first within a tier. The order
    matters for servers without their own preference and for how the list
    splits into chunks (``enumerate.DEFAULT_CHUNK``): suites in one chunk need
    no merge hellos.
    """
    chosen = [s for s in all_suites() if s.family in families and s.offerable_in(version)]
    chosen.sort(key=lambda s: (_deployment_tier(s), _strength_key(s)))
    return tuple(s.code for s in chosen)
