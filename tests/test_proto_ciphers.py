"""The cipher suite registry: contents, invariants, and agreement with this machine's OpenSSL."""

from __future__ import annotations

import re
import subprocess

import pytest

from survey.proto import ciphers
from survey.proto.ciphers import SECURITY_CLASSES, TLS10, TLS12, TLS13, VERSIONS
from tests.requirements import needs


def test_registry_is_large_and_unique():
    suites = ciphers.all_suites()
    assert len(suites) > 330
    assert len({s.code for s in suites}) == len(suites)
    assert len({s.iana_name for s in suites}) == len(suites)
    names = [s.openssl_name for s in suites if s.openssl_name]
    assert len(set(names)) == len(names)
    assert list(suites) == sorted(suites, key=lambda s: s.code)
    # Signalling values are not cipher suites (RFC 5746 §3.3, RFC 7507).
    assert (
        ciphers.by_code(0x00FF) is None
        and ciphers.by_code(0x5600) is None
        and ciphers.by_code(0) is None
    )


def test_lookup_by_code_iana_and_openssl_names():
    s = ciphers.by_code(0xC02F)
    assert s.iana_name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert s.openssl_name == "ECDHE-RSA-AES128-GCM-SHA256"
    assert (s.kx, s.auth, s.cipher, s.key_bits, s.mac, s.aead, s.forward_secrecy) == (
        "ECDHE",
        "RSA",
        "AES_GCM",
        128,
        "AEAD",
        True,
        True,
    )
    assert ciphers.by_iana_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") is s
    assert ciphers.by_openssl_name("ECDHE-RSA-AES128-GCM-SHA256") is s
    assert ciphers.openssl_to_iana("ECDHE-RSA-AES128-GCM-SHA256") == s.iana_name
    # OpenSSL spells TLS 1.3 suites by their IANA names.
    assert ciphers.openssl_to_iana("TLS_AES_256_GCM_SHA384") == "TLS_AES_256_GCM_SHA384"
    # Pre-1.1.0 OpenSSL logged EDH- where newer versions say DHE-.
    assert ciphers.openssl_to_iana("EDH-RSA-DES-CBC3-SHA") == "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"
    assert (
        ciphers.openssl_to_iana("EXP-EDH-RSA-DES-CBC-SHA")
        == "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"
    )
    assert ciphers.openssl_to_iana("NO-SUCH-CIPHER") is None
    assert ciphers.name_for_code(0x0A0A) == "0x0A0A"  # a GREASE value (RFC 8701): stored as seen
    assert ciphers.by_code(0x0A0A) is None


@pytest.mark.parametrize(
    "code,name,openssl",
    [
        (0x0004, "TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5"),
        (0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA"),
        (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"),
        (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXP-RC4-MD5"),
        (0x0001, "TLS_RSA_WITH_NULL_MD5", "NULL-MD5"),
        (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", "ADH-RC4-MD5"),
        (0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA", "IDEA-CBC-SHA"),
        (0x0096, "TLS_RSA_WITH_SEED_CBC_SHA", "SEED-SHA"),
        (0xC017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", "AECDH-DES-CBC3-SHA"),
        (0x0046, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA", "ADH-CAMELLIA128-SHA"),
        (0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384", "ECDHE-ARIA256-GCM-SHA384"),
        (0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        (0x1304, "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256"),
        (0x1305, "TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_8_SHA256"),
    ],
)
def test_legacy_and_modern_families_present(code, name, openssl):
    s = ciphers.by_code(code)
    assert (s.iana_name, s.openssl_name) == (name, openssl)


def test_every_tls13_suite_is_tls13_only_and_aead_or_integrity_only():
    tls13 = [s for s in ciphers.all_suites() if s.tls13]
    assert {0x1301, 0x1302, 0x1303, 0x1304, 0x1305} <= {s.code for s in tls13}
    for s in tls13:
        assert (s.min_version, s.max_version) == (TLS13, TLS13)
        assert s.valid_for(TLS13) and not s.valid_for(TLS12)
        assert s.aead or s.cipher == "NULL"  # RFC 9150 integrity-only suites


def test_structural_invariants():
    for s in ciphers.all_suites():
        assert s.ncsc_class in SECURITY_CLASSES and s.ncsc_class_v2_1 in SECURITY_CLASSES
        assert s.min_version in VERSIONS and s.max_version in VERSIONS
        assert ciphers.version_index(s.min_version) <= ciphers.version_index(s.max_version)
        assert s.aead == (s.mac == "AEAD"), s
        if s.aead and not s.tls13:
            assert s.min_version == TLS12, s  # RFC 5246 §6.2.3.3: AEAD needs TLS 1.2
        if s.export:
            assert s.key_bits <= 56 and s.max_version == TLS10, s  # RFC 4346 A.5
        if s.cipher == "NULL":
            assert s.key_bits == 0
        if s.kx.startswith("ECDH") and not s.tls13:
            assert s.min_version in (TLS10, TLS12), s  # RFC 4492: TLS only, not SSLv3
        if s.kx in ("RSA", "DH", "ECDH", "PSK", "RSA_PSK", "KRB5", "SRP"):
            assert not s.forward_secrecy, s
        if (
            s.auth in ("anon",)
            or s.cipher in ("NULL", "RC4", "DES_CBC", "DES40_CBC", "RC2_CBC")
            or s.mac == "MD5"
        ):
            assert s.ncsc_class == "insufficient" and s.ncsc_class_v2_1 == "insufficient", s


@pytest.mark.parametrize(
    "name,cls_2025,cls_21",
    [
        ("TLS_AES_256_GCM_SHA384", "good", "good"),
        ("TLS_CHACHA20_POLY1305_SHA256", "good", "good"),
        ("TLS_AES_128_GCM_SHA256", "sufficient", "good"),
        ("TLS_AES_128_CCM_SHA256", "sufficient", "insufficient"),
        ("TLS_AES_128_CCM_8_SHA256", "insufficient", "insufficient"),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "sufficient", "sufficient"),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "sufficient", "insufficient"),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "insufficient", "sufficient"),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "phase-out", "sufficient"),
        ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "phase-out", "sufficient"),
        ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "insufficient", "sufficient"),
        ("TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", "phase-out", "insufficient"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "insufficient", "phase-out"),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "insufficient", "phase-out"),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "insufficient", "phase-out"),
        ("TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", "insufficient", "insufficient"),
        ("TLS_ECDH_anon_WITH_AES_256_CBC_SHA", "insufficient", "insufficient"),
        ("TLS_RSA_WITH_RC4_128_SHA", "insufficient", "insufficient"),
    ],
)
def test_ncsc_classes(name, cls_2025, cls_21):
    s = ciphers.by_iana_name(name)
    assert (s.ncsc_class, s.ncsc_class_v2_1) == (cls_2025, cls_21)


def test_versions_helpers():
    assert ciphers.version_name(0x0303) == TLS12 and ciphers.version_name(0x0300) == "SSLv3"
    assert ciphers.version_name(0x0305) is None and ciphers.version_name(0x0200) is None
    assert ciphers.by_code(0x000A).valid_for("SSLv3") and ciphers.by_code(0x000A).valid_for(TLS12)
    assert not ciphers.by_code(0xC013).valid_for("SSLv3")  # ECC suites are TLS-only


def test_scan_candidates_per_version():
    ssl3 = ciphers.scan_candidates("SSLv3")
    tls10 = ciphers.scan_candidates(TLS10)
    tls12 = ciphers.scan_candidates(TLS12)
    tls13 = ciphers.scan_candidates(TLS13)
    assert set(ssl3) < set(tls10) < set(tls12)
    assert 0x000A in ssl3 and 0xC013 not in ssl3 and 0xC02F not in tls10 and 0xC02F in tls12
    assert set(tls13) == {s.code for s in ciphers.all_suites() if s.tls13}
    assert not any(ciphers.by_code(c).family in ("psk", "srp", "eccpwd") for c in tls12)
    # Mainstream suites first (strongest first), then export/NULL, then the rest.
    assert tls12[0] in (0xC02C, 0xC030, 0xCCA8, 0xCCA9)
    first_chunk = {ciphers.by_code(c).openssl_name for c in tls12[:128]}
    assert {
        "RC4-SHA",
        "RC4-MD5",
        "DES-CBC3-SHA",
        "EXP-RC4-MD5",
        "NULL-SHA",
        "ADH-CAMELLIA256-SHA",
        "AECDH-AES256-SHA",
        "SEED-SHA",
        "IDEA-CBC-SHA",
        "ECDHE-RSA-AES128-GCM-SHA256",
    } <= first_chunk
    assert ciphers.by_code(tls12[-1]).kx not in ("ECDHE", "DHE", "RSA")
    # Anonymous suites are offered: Postfix offers (and may pick) them.
    assert 0x0089 in tls12 and 0xC019 in tls12


def _openssl_listing() -> list[tuple[int, str, str, str]]:
    out = subprocess.run(
        ["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)\s+- (\S+)\s+(\S+)", line)
        assert m, line
        rows.append((int(m[1] + m[2], 16), m[3], m[4], m[5]))
    return rows


@needs("openssl")
def test_every_suite_openssl_lists_is_in_the_registry_with_the_same_code_and_names():
    rows = _openssl_listing()
    assert len(rows) > 100
    first_version = {"SSLv3": "SSLv3", "TLSv1": TLS10, "TLSv1.2": TLS12, "TLSv1.3": TLS13}
    for code, iana, openssl, version in rows:
        s = ciphers.by_code(code)
        assert s is not None, (hex(code), iana)
        assert (s.iana_name, s.openssl_name) == (iana, openssl)
        assert ciphers.by_openssl_name(openssl) is s
        assert s.min_version == first_version[version], (s, version)


def test_tlslite_names_agree_where_tlslite_knows_the_suite():
    import tlslite.constants as constants
    checked = 0
    for code, name in constants.CipherSuite.ietfNames.items():
        s = ciphers.by_code(code)
        if s is None:
            # SCSVs, SSLv2 three-byte kinds, pre-RFC draft ChaCha codes
            assert (
                code in (0x00FF, 0x5600) or code > 0xFFFF or code >> 8 == 0xCC and code < 0xCCA8
            ), hex(code)
            continue
        assert s.iana_name.upper() == name.upper()  # tlslite spells "anon" in capitals
        checked += 1
    assert checked > 80
