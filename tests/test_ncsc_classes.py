"""The NCSC-NL classes in ``cipher_suites.csv`` recomputed from each suite's parts.

Two independent statements of each edition's appendix are checked against each
other and against the CSV:

- a rule over the suite's (kx, auth, cipher, key_bits, mac) columns
  (``rule_2025``, ``rule_2021``), which is what classes the 349 rows;
- the appendix itself, transcribed as IANA names (``APPENDIX_*``): every listed
  suite must get its listed class from the rule, and every suite the registry
  has that no list names must come out *insufficient* (both appendices say
  anything not listed is insufficient).

Sources (no primary PDF text was reachable; these are faithful reproductions):

- 2021, version 2.1, "Appendix C - List of cipher suites" (p. 25): quoted in
  internetstandards/Internet.nl issue #1266 (Good and the start of Sufficient,
  https://github.com/internetstandards/Internet.nl/issues/1266) and transcribed
  in full in internetstandards/Internet.nl ``checks/tasks/tls_constants.py``
  (release 1.10, whose documentation/tls.md says its criteria follow v2.1).
- 2025 edition ("ICT-beveiligingsrichtlijnen voor TLS 2025-05", Appendix B,
  derived from its §3.3.3 and §3.3.4): internetstandards/Internet.nl
  ``checks/tasks/tls/tls_constants.py`` after PR #1800 "Update sslyze branch to
  NCSC 2025" (https://github.com/internetstandards/Internet.nl/pull/1800).

Per-suite classes ignore what the appendices also leave out of a suite: the
protocol version, the (EC)DHE group, certificate key and signature hash.
"""

from __future__ import annotations

import pytest

from survey.proto import ciphers

GOOD, SUFFICIENT, PHASE_OUT, INSUFFICIENT = ciphers.SECURITY_CLASSES

_CERT_AUTH = frozenset({"ECDSA", "RSA"})  # DSS, anon, PSK, ... are in no list
_SHA2 = frozenset({"SHA256", "SHA384"})


def rule_2025(kx: str, auth: str, cipher: str, key_bits: int, mac: str) -> str:
    """NCSC-NL 2025 Appendix B as a rule (see module docstring for the source)."""
    if kx == "ANY":  # TLS 1.3: the suite names only the AEAD and the hash
        if (cipher == "AES_GCM" and key_bits == 256) or cipher == "CHACHA20_POLY1305":
            return GOOD
        if cipher in ("AES_GCM", "AES_CCM"):  # AES-128-GCM, AES-128-CCM
            return SUFFICIENT
        return INSUFFICIENT  # CCM_8, AEGIS, SM4, integrity-only NULL
    strong_aead = cipher in ("AES_GCM", "CHACHA20_POLY1305", "AES_CCM")
    weaker_aead = cipher in ("CAMELLIA_GCM", "ARIA_GCM")
    cbc_sha2 = cipher in ("AES_CBC", "CAMELLIA_CBC", "ARIA_CBC") and mac in _SHA2
    if kx == "ECDHE" and auth in _CERT_AUTH:
        if strong_aead:
            return SUFFICIENT
        if weaker_aead or cbc_sha2:
            return PHASE_OUT
    if kx == "DHE" and auth == "RSA" and (strong_aead or weaker_aead or cbc_sha2):
        return PHASE_OUT
    # RSA key exchange, SHA-1 CBC, 3DES, CCM_8, static DH/ECDH, DSS, anon, PSK...
    return INSUFFICIENT


def rule_2021(kx: str, auth: str, cipher: str, key_bits: int, mac: str) -> str:
    """NCSC-NL v2.1 Appendix C as a rule (see module docstring for the source)."""
    if kx == "ANY":
        # TLS 1.3 AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM; CCM is not listed.
        return GOOD if cipher in ("AES_GCM", "CHACHA20_POLY1305") else INSUFFICIENT
    aes = cipher in ("AES_GCM", "CHACHA20_POLY1305") or (
        cipher == "AES_CBC" and mac in ("SHA", "SHA256", "SHA384")
    )
    if (kx == "ECDHE" and auth in _CERT_AUTH) or (kx == "DHE" and auth == "RSA"):
        if aes:
            return SUFFICIENT  # TLS 1.2 suites top out at sufficient in v2.1
        if cipher == "3DES_EDE_CBC":
            return PHASE_OUT
    if kx == "RSA" and auth == "RSA" and cipher in ("AES_GCM", "AES_CBC", "3DES_EDE_CBC"):
        return PHASE_OUT  # no forward secrecy
    return INSUFFICIENT


def _rule_for(rule, s: ciphers.CipherSuite) -> str:
    return rule(s.kx, s.auth, s.cipher, s.key_bits, s.mac)


# Appendix B of the 2025 edition, as transcribed by Internet.nl (IANA names).
APPENDIX_2025 = {
    GOOD: ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
    SUFFICIENT: [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ],
    PHASE_OUT: [
        *(
            f"TLS_ECDHE_{a}_WITH_{c}"
            for a in ("ECDSA", "RSA")
            for c in (
                "CAMELLIA_256_GCM_SHA384",
                "CAMELLIA_256_CBC_SHA384",
                "CAMELLIA_128_GCM_SHA256",
                "CAMELLIA_128_CBC_SHA256",
                "ARIA_256_GCM_SHA384",
                "ARIA_256_CBC_SHA384",
                "ARIA_128_GCM_SHA256",
                "ARIA_128_CBC_SHA256",
                "AES_256_CBC_SHA384",
                "AES_128_CBC_SHA256",
            )
        ),
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
        "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
        "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384",
        "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_AES_256_CCM",
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_CCM",
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    ],
}

# Appendix C of version 2.1 (2021), as transcribed by Internet.nl 1.10 (IANA names).
APPENDIX_2021 = {
    GOOD: ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"],
    SUFFICIENT: [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    ],
    PHASE_OUT: [
        "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_CBC_SHA256",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    ],
}

EDITIONS = {
    "2025": (rule_2025, APPENDIX_2025, "ncsc_class"),
    "2021": (rule_2021, APPENDIX_2021, "ncsc_class_v2_1"),
}


def _appendix_class(appendix: dict[str, list[str]], name: str) -> str:
    for cls, names in appendix.items():
        if name in names:
            return cls
    return INSUFFICIENT


@pytest.mark.parametrize("edition", sorted(EDITIONS))
def test_appendix_lists_are_registry_suites_listed_once(edition):
    _, appendix, _ = EDITIONS[edition]
    names = [n for ns in appendix.values() for n in ns]
    assert len(names) == len(set(names))
    for n in names:
        assert ciphers.by_iana_name(n) is not None, n


@pytest.mark.parametrize("edition", sorted(EDITIONS))
def test_rule_reproduces_the_appendix_for_every_registry_suite(edition):
    rule, appendix, _ = EDITIONS[edition]
    wrong = {
        s.iana_name: (_rule_for(rule, s), _appendix_class(appendix, s.iana_name))
        for s in ciphers.all_suites()
        if _rule_for(rule, s) != _appendix_class(appendix, s.iana_name)
    }
    assert not wrong  # name -> (rule, appendix)


@pytest.mark.parametrize("edition", sorted(EDITIONS))
def test_csv_agrees_with_the_rule(edition):
    rule, _, attr = EDITIONS[edition]
    wrong = {
        s.iana_name: (getattr(s, attr), _rule_for(rule, s))
        for s in ciphers.all_suites()
        if getattr(s, attr) != _rule_for(rule, s)
    }
    assert not wrong  # name -> (csv, rule)


@pytest.mark.parametrize(
    "name,cls_2025,cls_2021",
    [
        ("TLS_AES_256_GCM_SHA384", GOOD, GOOD),
        ("TLS_AES_128_GCM_SHA256", SUFFICIENT, GOOD),
        ("TLS_AES_128_CCM_SHA256", SUFFICIENT, INSUFFICIENT),
        ("TLS_AES_128_CCM_8_SHA256", INSUFFICIENT, INSUFFICIENT),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", SUFFICIENT, SUFFICIENT),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", SUFFICIENT, INSUFFICIENT),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", INSUFFICIENT, INSUFFICIENT),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", INSUFFICIENT, SUFFICIENT),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", PHASE_OUT, SUFFICIENT),
        ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", PHASE_OUT, SUFFICIENT),
        ("TLS_DHE_RSA_WITH_AES_128_CCM", PHASE_OUT, INSUFFICIENT),
        ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", INSUFFICIENT, SUFFICIENT),
        ("TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256", PHASE_OUT, INSUFFICIENT),
        ("TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256", PHASE_OUT, INSUFFICIENT),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", INSUFFICIENT, PHASE_OUT),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", INSUFFICIENT, PHASE_OUT),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", INSUFFICIENT, PHASE_OUT),
        ("TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", INSUFFICIENT, INSUFFICIENT),
        ("TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256", INSUFFICIENT, INSUFFICIENT),
    ],
)
def test_spot_checks_against_the_appendices(name, cls_2025, cls_2021):
    s = ciphers.by_iana_name(name)
    assert (s.ncsc_class, s.ncsc_class_v2_1) == (cls_2025, cls_2021)
