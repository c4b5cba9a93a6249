"""Our hellos, parser and enumeration against real TLS stacks on loopback.

OpenSSL 3 (Python ``ssl`` servers) for TLS 1.0..1.3 with chosen cipher strings
and with/without server preference; tlslite-ng for SSLv3, RC4, 3DES, NULL and
restricted TLS 1.3 suites/groups. The truth is what each server was configured
with (as the server library itself resolves the configuration), never our own
parser. Every socket wait is bounded (tests/tlsservers.py TIMEOUT).
"""

from __future__ import annotations

import json
import os

import pytest
import tlslite  # noqa: E402,F401  (a test dependency: the independent legacy TLS server)

from survey.proto import ciphers, tlshello
from survey.proto.enumerate import (
    Failed,
    Refused,
    ServerEnumeration,
    SuiteEnumeration,
    outcome_from_events,
    run,
)
from survey.proto.tlshello import Certificate, HelloSpec, ServerKeyExchange, build_client_hello
from tests import tlsservers
from tests.tlsservers import (
    Certs,
    OpenSSLServer,
    RawServer,
    TlsliteServer,
    openssl_context,
    send_hello,
)

ALL_VERSIONS = ciphers.VERSIONS


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


def ask_server(port):
    """The network half, blocking: offer -> hello bytes -> answer -> outcome."""

    def ask(offer):
        hello = build_client_hello(
            HelloSpec(offer.version, offer.suites, server_name="mx.example.test")
        )
        answer = send_hello(port, hello)
        transport = {None: None, "ConnectionResetError": "reset", "TimeoutError": "timeout"}[
            answer.transport
        ]
        return outcome_from_events(offer, answer.events, answer.error, transport)

    return ask


def versions_detected(port) -> tuple[str, ...]:
    """One hello per version (the `versions` profile): the first offer of each enumeration."""
    found = []
    for version in ALL_VERSIONS:
        e = SuiteEnumeration(version)
        e.record(ask_server(port)(e.next_offer()))
        if e.result().supported or not e.done and e.result().suites:
            found.append(version)
    return tuple(found)


def openssl_suites(ctx, version: str) -> list[int]:
    """What OpenSSL says the context will negotiate at ``version``, in its order (IANA codes)."""
    out = []
    for c in ctx.get_ciphers():
        s = ciphers.by_openssl_name(c["name"])
        assert s is not None, c["name"]
        if s.offerable_in(version) and s.family in ciphers.DEFAULT_FAMILIES:
            out.append(s.code)
    return out


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
def test_openssl_single_version_servers_are_detected_exactly(certs, version):
    ctx = openssl_context(certs, min_version=version, max_version=version)
    with OpenSSLServer(ctx) as server:
        assert versions_detected(server.port) == (version,)


def test_openssl_range_server(certs):
    ctx = openssl_context(certs, min_version="TLSv1.1", max_version="TLSv1.3")
    with OpenSSLServer(ctx) as server:
        assert versions_detected(server.port) == ("TLSv1.1", "TLSv1.2", "TLSv1.3")


def test_tlslite_sslv3_only_server_is_detected(certs):
    with TlsliteServer(certs, min_version=(3, 0), max_version=(3, 0)) as server:
        assert versions_detected(server.port) == ("SSLv3",)


def test_tlslite_tls13_hello_retry_request_counts_as_supported(certs):
    # The server's only group is P-384; our hello shares X25519 and P-256 -> HRR (RFC 8446 §4.1.4).
    with TlsliteServer(
        certs,
        min_version=(3, 4),
        max_version=(3, 4),
        groups=["secp384r1"],
        key_shares=["secp384r1"],
    ) as server:
        answer = send_hello(server.port, build_client_hello(HelloSpec("TLSv1.3", (0x1301, 0x1303))))
        assert (
            isinstance(answer.hello, tlshello.HelloRetryRequest)
            and answer.hello.group == tlshello.SECP384R1
        )
        assert versions_detected(server.port) == ("TLSv1.3",)


# --- what the parser reads from real answers ----------------------------------------------------


def test_tls12_flight_from_openssl(certs):
    ctx = openssl_context(
        certs,
        min_version="TLSv1.2",
        max_version="TLSv1.2",
        cipher_string="ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA:@SECLEVEL=0",
    )
    with OpenSSLServer(ctx) as server:
        answer = send_hello(
            server.port,
            build_client_hello(HelloSpec("TLSv1.2", (0xC02F,), server_name="mx.example.test")),
        )
        assert (
            answer.hello.cipher_name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            and answer.hello.version == "TLSv1.2"
        )
        chain = next(e for e in answer.events if isinstance(e, Certificate)).chain
        assert (
            chain[0] == certs.rsa.cert_chain_pems[0].bytes()
            or _der(certs.rsa.cert_chain_pems[0].bytes()) == chain[0]
        )
        assert next(e for e in answer.events if isinstance(e, ServerKeyExchange)).kind == "ecdhe"
        answer = send_hello(server.port, build_client_hello(HelloSpec("TLSv1.2", (0x0039,))))
        ske = next(e for e in answer.events if isinstance(e, ServerKeyExchange))
        assert (ske.kind, ske.bits) == ("dhe", 2048)  # the ffdhe2048 parameters we loaded
        answer = send_hello(server.port, build_client_hello(HelloSpec("TLSv1.2", (0x009C,))))
        assert answer.alert is not None and answer.alert.name == "handshake_failure"


def _der(pem: bytes) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(pem.decode())


def test_tls13_server_hello_from_openssl(certs):
    ctx = openssl_context(certs, min_version="TLSv1.3", max_version="TLSv1.3")
    with OpenSSLServer(ctx) as server:
        answer = send_hello(server.port, build_client_hello(HelloSpec("TLSv1.3", (0x1301, 0x1302))))
        sh = answer.hello
        assert (sh.version, sh.legacy_version, sh.group) == ("TLSv1.3", 0x0303, tlshello.X25519)
        answer = send_hello(
            server.port,
            build_client_hello(
                HelloSpec("TLSv1.3", (0x1301,), key_share_groups=(tlshello.SECP256R1,))
            ),
        )
        assert answer.hello.group == tlshello.SECP256R1


# --- enumeration ------------------------------------------------------------------------------

# 30 TLS 1.2 suites this OpenSSL serves with an RSA + ECDSA certificate and DH parameters.
THIRTY = [
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-CCM",
    "DHE-RSA-AES128-CCM8",
    "ECDHE-ARIA256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-SHA256",
    "ECDHE-RSA-CAMELLIA256-SHA384",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "DHE-RSA-CAMELLIA128-SHA",
    "AES256-GCM-SHA384",
    "AES128-SHA256",
    "AES256-SHA",
    "CAMELLIA128-SHA",
    "ARIA128-GCM-SHA256",
    "ADH-AES256-GCM-SHA384",
    "ADH-CAMELLIA128-SHA",
    "AECDH-AES128-SHA",
    "ECDHE-RSA-NULL-SHA",
    "NULL-SHA256",
    "AES128-CCM",
]


def enumerate_server(port, version, **kw):
    e = SuiteEnumeration(version, **kw)
    run(e, ask_server(port))
    return e.result()


@pytest.mark.parametrize("server_preference", [True, False])
def test_openssl_30_suites_tls12(certs, server_preference):
    # Interleave the list so OpenSSL's order differs from ours (a server-order server then
    # shows itself during discovery).
    order = THIRTY[1::2] + THIRTY[0::2]
    ctx = openssl_context(
        certs,
        min_version="TLSv1.2",
        max_version="TLSv1.2",
        cipher_string=":".join(order) + ":@SECLEVEL=0",
        server_preference=server_preference,
    )
    expected = openssl_suites(ctx, "TLSv1.2")
    assert len(expected) == 30
    with OpenSSLServer(ctx) as server:
        result = enumerate_server(server.port, "TLSv1.2")
    assert result.complete and result.supported
    assert set(result.suites) == set(expected)
    if server_preference:
        assert result.preference == "server" and list(result.suites) == expected
    else:
        assert result.preference == "client"
    _report(
        f"openssl_tls12_30_suites_{'server' if server_preference else 'client'}_pref", result.hellos
    )
    # Measured: discovery 30 + one refusal per chunk (2 chunks at 128), + 1 test hello without preference.
    assert result.hellos == 30 + 2 + (0 if server_preference else 1)


@pytest.mark.parametrize("version", ["TLSv1.0", "TLSv1.1"])
@pytest.mark.parametrize("server_preference", [True, False])
def test_openssl_legacy_versions_need_seclevel0(certs, version, server_preference):
    names = "ECDHE-RSA-AES256-SHA:DHE-RSA-CAMELLIA256-SHA:AES128-SHA:ADH-AES256-SHA:AECDH-AES128-SHA:ECDHE-ECDSA-AES128-SHA"
    ctx = openssl_context(
        certs,
        min_version=version,
        max_version=version,
        cipher_string=names + ":@SECLEVEL=0",
        server_preference=server_preference,
    )
    expected = openssl_suites(ctx, version)
    with OpenSSLServer(ctx) as server:
        result = enumerate_server(server.port, version)
    assert set(result.suites) == set(expected) and len(expected) == 6
    assert result.preference == ("server" if server_preference else "client")
    if server_preference:
        assert list(result.suites) == expected


@pytest.mark.parametrize("server_preference", [True, False])
def test_openssl_tls13_default_suites(certs, server_preference):
    ctx = openssl_context(
        certs, min_version="TLSv1.3", max_version="TLSv1.3", server_preference=server_preference
    )
    expected = [c for c in openssl_suites(ctx, "TLSv1.3")]
    with OpenSSLServer(ctx) as server:
        result = enumerate_server(server.port, "TLSv1.3")
    assert set(result.suites) == set(expected) == {0x1301, 0x1302, 0x1303}
    if server_preference:
        assert result.preference == "server" and list(result.suites) == expected
    else:
        assert result.preference == "client"
    _report(f"openssl_tls13_{'server' if server_preference else 'client'}_pref", result.hellos)


def tlslite_expected(
    server: TlsliteServer, version: tuple[int, int], *, ecdsa: bool = False
) -> set[int]:
    """The suites tlslite-ng's own helpers say this configuration serves at ``version``."""
    from tlslite.constants import CipherSuite as C

    s = server.settings
    suites = (
        C.getCertSuites(s, version)
        + C.getDheCertSuites(s, version)
        + C.getEcdheCertSuites(s, version)
    )
    if ecdsa:
        suites = C.getEcdsaSuites(s, version)
    if version >= (3, 4):
        suites = C.getTLS13Suites(s, version)
    return set(C.filterForVersion(suites, version, version))


def test_tlslite_sslv3_rc4_3des(certs):
    with TlsliteServer(
        certs,
        min_version=(3, 0),
        max_version=(3, 0),
        cipher_names=["rc4", "3des", "aes128"],
        key_exchange_names=["rsa", "dhe_rsa"],
        mac_names=["sha", "md5"],
    ) as server:
        expected = tlslite_expected(server, (3, 0))
        result = enumerate_server(server.port, "SSLv3")
    assert {
        0x0004,
        0x0005,
        0x000A,
        0x0016,
    } <= expected  # RC4-MD5, RC4-SHA, DES-CBC3-SHA, DHE-RSA-DES-CBC3-SHA
    assert set(result.suites) == expected and result.complete
    assert result.preference == "server"


def test_tlslite_tls12_null_and_3des(certs):
    with TlsliteServer(
        certs,
        min_version=(3, 3),
        max_version=(3, 3),
        cipher_names=["null", "3des", "rc4"],
        key_exchange_names=["rsa", "ecdhe_rsa"],
        mac_names=["sha", "sha256", "md5"],
    ) as server:
        expected = tlslite_expected(server, (3, 3))
        result = enumerate_server(server.port, "TLSv1.2")
    assert {
        0x0001,
        0x0002,
        0x003B,
        0xC010,
        0xC012,
    } <= expected  # NULL-MD5/SHA/SHA256, ECDHE-RSA-NULL/3DES
    assert set(result.suites) == expected and result.complete


def test_tlslite_tls13_restricted_suites_through_hello_retry(certs):
    with TlsliteServer(
        certs,
        min_version=(3, 4),
        max_version=(3, 4),
        cipher_names=["chacha20-poly1305", "aes128gcm"],
        groups=["secp384r1"],
        key_shares=["secp384r1"],
    ) as server:
        expected = tlslite_expected(server, (3, 4))
        result = enumerate_server(server.port, "TLSv1.3")
    assert expected == {0x1303, 0x1301}
    assert set(result.suites) == expected and result.preference == "server"


def test_full_server_enumeration_across_versions(certs):
    ctx = openssl_context(
        certs,
        min_version="TLSv1.0",
        max_version="TLSv1.3",
        cipher_string="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA:AES128-SHA:@SECLEVEL=0",
        server_preference=True,
    )
    with OpenSSLServer(ctx) as server:
        e = ServerEnumeration()
        run(e, ask_server(server.port))
    got = {r.version: set(r.suites) for r in e.results()}
    assert e.versions_supported() == ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    assert got["SSLv3"] == set()
    assert got["TLSv1.0"] == got["TLSv1.1"] == {0xC014, 0x002F}
    assert got["TLSv1.2"] == {0xC02F, 0xC014, 0x002F}
    assert got["TLSv1.3"] == {0x1301, 0x1302, 0x1303}
    _report("openssl_all_versions_total", e.hellos)


@pytest.mark.parametrize(
    "reply,outcome",
    [
        (b"500 5.5.1 Command unrecognized\r\n", Failed("plaintext")),
        (b"", Refused("closed")),
        (b"\x80\x2e\x04\x00\x01\x00\x02" + bytes(40), Failed("sslv2")),
    ],
)
def test_non_tls_answers_from_a_real_socket(reply, outcome):
    with RawServer(reply) as server:
        e = SuiteEnumeration("TLSv1.2")
        run(e, ask_server(server.port))
    r = e.result()
    assert r.hellos == (1 if isinstance(outcome, Failed) else 2)
    if isinstance(outcome, Failed):
        assert r.supported is None and r.error == outcome.reason and not r.complete
    else:
        assert r.supported is False and r.complete


def _report(name: str, hellos: int) -> None:
    """Hello counts go to stdout (pytest -s) and to $SURVEY_HELLO_REPORT if set, for the issue note."""
    line = json.dumps({"case": name, "hellos": hellos})
    print(line)
    path = os.environ.get("SURVEY_HELLO_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def test_every_wait_is_bounded():
    assert 0 < tlsservers.TIMEOUT <= 10
