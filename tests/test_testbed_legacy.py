"""Legacy TLS servers of the testbed (tlslite-ng) against real clients.

Each catalogue entry (survey.testbed.legacy_tls.CATALOGUE) is served behind
STARTTLS by the testbed's SMTP server and checked with independent clients:

- the scanner's own dialogue (``survey.net.smtp.probe_starttls``, Python ssl)
  and a minimal blocking Python ssl client: what the starttls profile gets
  must be the truth (``host_truth``), handshake failures included;
- tlslite-ng as a client, restricted to one (version, suite) at a time: every
  listed pair completes a full handshake and carries SMTP, every unlisted
  version fails;
- hand-built hellos (survey.proto) enumerating every registry suite at every
  version: the server answers exactly the listed suites, in the listed order
  when it enforces its preference;
- ``openssl s_client -starttls smtp`` where this OpenSSL can speak the suites.

The truth is the catalogue (how the servers were built); no client's answer
is used to compute it. Also here: the handshake worker threads are bounded,
a silent client costs at most the handshake timeout, and a world stops
promptly in the middle of a handshake.
"""

from __future__ import annotations

import socket
import ssl
import time
import warnings
from dataclasses import replace
from functools import partial

import pytest
import trio

from survey.certs import TrustStore, evaluate
from survey.net.guard import DestinationPolicy
from survey.net.smtp import Timeouts, probe_starttls
from survey.net.transport import client_context
from survey.proto import ciphers as registry
from survey.proto.enumerate import ServerEnumeration, outcome_from_events, run
from survey.proto.tlshello import HelloSpec, build_client_hello
from survey.testbed import legacy_tls
from survey.testbed.generator import behaviour_shares, generate
from survey.testbed.legacy_tls import CATALOGUE, LegacyTlsError, check_spec, starttls_outcome
from survey.testbed.listen import ConnectionLog, serve_tcp
from survey.testbed.model import (
    ALL_TLS_VERSIONS,
    Reply,
    SmtpServerSpec,
    TlsSpec,
    VersionSuites,
    World,
)
from survey.testbed.pki import PkiError
from survey.testbed.smtp_server import SmtpWorld, serve_smtp
from survey.testbed.truth import build_truth, host_truth
from tests.requirements import needs
from tests.tlsservers import Answer, read_answer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TESTBED = DestinationPolicy("testbed")
TIMEOUT = 5.0
NAMES = sorted(CATALOGUE)


def legacy_server(ip: str, name: str, tls: TlsSpec) -> SmtpServerSpec:
    host = f"{name.replace('_', '-')}.legacy.test"
    return SmtpServerSpec(
        ip=ip, behaviour="normal", hostname=host, greeting=Reply(220, (f"{host} ESMTP",)),
        ehlo=("PIPELINING", "8BITMIME", "STARTTLS"), ehlo_tls=("PIPELINING", "8BITMIME"),
        starttls_reply=Reply(220, ("2.0.0 Ready to start TLS",)),
        tls=replace(tls, names=(host,)))


IPS = {name: f"127.31.0.{i + 1}" for i, name in enumerate(NAMES)}
CERT_IPS = {kind: f"127.31.1.{i + 1}" for i, kind in enumerate(
    ("expired", "self_signed", "missing_intermediate", "untrusted", "wrong_name"))}
SERVERS = {IPS[n]: legacy_server(IPS[n], n, CATALOGUE[n].spec()) for n in NAMES}
SERVERS.update({ip: legacy_server(ip, f"cert-{kind}",
                                  CATALOGUE["null_ecdsa"].spec(cert_kind=kind))
                for kind, ip in CERT_IPS.items()})
WORLD = World(seed=0, profile="legacy-test", domains=(), mx_hosts={}, smtp_servers=SERVERS,
              policy_hosts={}, dns={})


@pytest.fixture
async def port(nursery, pki):
    return await nursery.start(partial(serve_smtp, WORLD, port=0, pki=pki,
                                       connlog=ConnectionLog(None), idle_timeout=TIMEOUT))


# --- blocking clients (run in worker threads while the world serves on the trio loop) ----

def _reply(sock, buffer: bytearray) -> bytes:
    """One complete (multi-line) SMTP reply from a blocking socket."""
    raw = b""
    while True:
        while b"\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise EOFError(bytes(buffer))
            buffer += chunk
        end = buffer.index(b"\r\n") + 2
        line = bytes(buffer[:end])
        del buffer[:end]
        raw += line
        if line[3:4] != b"-":
            return raw


def starttls_socket(ip: str, port: int) -> socket.socket:
    """A blocking socket right after the 220 to STARTTLS."""
    sock = socket.create_connection((ip, port), timeout=TIMEOUT)
    buffer = bytearray()
    assert _reply(sock, buffer).startswith(b"220")
    sock.sendall(b"EHLO client.test\r\n")
    assert b"STARTTLS" in _reply(sock, buffer)
    sock.sendall(b"STARTTLS\r\n")
    assert _reply(sock, buffer).startswith(b"220 ")
    assert not buffer
    return sock


def python_ssl_client(ip: str, port: int) -> tuple[str, str] | None:
    """Python ssl with the scanner's stated client settings; None when the handshake fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.set_ciphers(legacy_tls.STARTTLS_CLIENT_CIPHERS)
    sock = starttls_socket(ip, port)
    try:
        tls = ctx.wrap_socket(sock, server_hostname="client-sni.test")
    except (ssl.SSLError, OSError):
        sock.close()
        return None
    with tls:
        version = {"TLSv1": "TLSv1.0"}.get(tls.version(), tls.version())
        name = registry.openssl_to_iana(tls.cipher()[0])
        tls.sendall(b"EHLO client.test\r\n")
        assert _reply(tls, bytearray()).startswith(b"250-")
    return version, name


WIRE = {"SSLv3": (3, 0), "TLSv1.0": (3, 1), "TLSv1.1": (3, 2), "TLSv1.2": (3, 3),
        "TLSv1.3": (3, 4)}


def tlslite_client(ip: str, port: int, version: str, suite: str | None) -> str:
    """A tlslite-ng client offering only ``suite`` (None: its defaults) at ``version``.

    Returns the negotiated IANA name after an EHLO/QUIT over TLS; raises when
    the handshake fails.
    """
    from tlslite import HandshakeSettings, TLSConnection
    from tlslite.handshakesettings import ALL_CIPHER_NAMES, ALL_MAC_NAMES

    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = WIRE[version]
    settings.versions = [WIRE[version]]
    settings.cipherNames, settings.macNames = list(ALL_CIPHER_NAMES), list(ALL_MAC_NAMES)
    if suite is not None:
        cipher, mac, kx = legacy_tls.tlslite_names(registry.by_iana_name(suite))
        settings.cipherNames, settings.macNames = [cipher], [mac]
        if kx != "tls13":
            settings.keyExchangeNames = [kx]
    if version == "TLSv1.3":
        from tlslite.handshakesettings import TLS13_PERMITTED_GROUPS
        settings.eccCurves = [c for c in settings.eccCurves if c in TLS13_PERMITTED_GROUPS]
    sock = starttls_socket(ip, port)
    conn = TLSConnection(sock)
    try:
        conn.handshakeClientCert(settings=settings, serverName="client-sni.test")
        got = registry.name_for_code(conn.session.cipherSuite)
        conn.write(b"EHLO client.test\r\n")
        assert _tls_reply(conn).startswith(b"250-")
        conn.write(b"QUIT\r\n")
        assert _tls_reply(conn).startswith(b"221 ")
        return got
    finally:
        conn.close()
        sock.close()


def _tls_reply(conn) -> bytes:
    """One complete SMTP reply over a tlslite-ng connection (records may split lines)."""
    reply = b""
    while not reply.endswith(b"\r\n") or reply.split(b"\r\n")[-2][3:4] != b" ":
        chunk = bytes(conn.read())
        if not chunk:
            raise EOFError(reply)
        reply += chunk
    return reply


def hello_over_starttls(ip: str, port: int, hello: bytes) -> Answer:
    """Send a hand-built ClientHello after STARTTLS and read until the answer is decided."""
    with starttls_socket(ip, port) as sock:
        return read_answer(sock, hello)


def enumerate_server(ip: str, port: int) -> ServerEnumeration:
    def ask(offer):
        hello = build_client_hello(HelloSpec(offer.version, offer.suites,
                                             server_name="client-sni.test"))
        answer = hello_over_starttls(ip, port, hello)
        transport = {None: None, "ConnectionResetError": "reset",
                     "TimeoutError": "timeout"}[answer.transport]
        return outcome_from_events(offer, answer.events, answer.error, transport)

    e = ServerEnumeration()
    run(e, ask)
    return e


# --- the catalogue and the client model ----------------------------------------------------

def test_every_catalogue_entry_is_servable():
    for name, config in CATALOGUE.items():
        spec = config.spec()
        check_spec(spec)
        assert legacy_tls.config_name(spec) == name
    assert {v for c in CATALOGUE.values() for v in c.spec().versions} == set(ALL_TLS_VERSIONS)
    kinds = {registry.by_iana_name(s).cipher for c in CATALOGUE.values()
             for e in c.suites for s in e.suites}
    assert {"RC4", "3DES_EDE_CBC", "NULL"} <= kinds
    assert any(not c.server_preference for c in CATALOGUE.values())


@pytest.mark.parametrize(("suites", "key", "kind", "error"), [
    ((VersionSuites("TLSv1.0", ("TLS_RSA_WITH_AES_128_CBC_SHA",)),
      VersionSuites("TLSv1.2", ("TLS_RSA_WITH_AES_128_CBC_SHA",))), "rsa", "valid", "contiguous"),
    ((VersionSuites("TLSv1.2", ("TLS_NO_SUCH_SUITE",)),), "rsa", "valid", "unknown suite"),
    ((VersionSuites("TLSv1.1", ("TLS_RSA_WITH_AES_128_GCM_SHA256",)),), "rsa", "valid",
     "not defined"),
    ((VersionSuites("TLSv1.2", ("TLS_RSA_WITH_AES_128_CBC_SHA",)),), "ec", "valid", "key"),
    ((VersionSuites("SSLv3", ("TLS_ECDHE_RSA_WITH_RC4_128_SHA",)),), "rsa", "valid",
     "not defined"),  # RFC 4492: ECC suites start at TLS 1.0
    ((VersionSuites("TLSv1.2", ("TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",)),), "rsa", "valid",
     "cannot serve"),
    ((VersionSuites("TLSv1.2", ("TLS_RSA_WITH_AES_128_CBC_SHA",)),), "rsa", "sni_dependent",
     "one certificate"),
    ((VersionSuites("TLSv1.2", ()),), "rsa", "valid", "empty"),
])
def test_specs_tlslite_cannot_serve_exactly_are_refused(suites, key, kind, error):
    spec = TlsSpec(versions=tuple(v.version for v in suites), ciphers="", key_type=key,
                   cert_kind=kind, engine="tlslite", suites=suites)
    with pytest.raises(LegacyTlsError, match=error):
        check_spec(spec)


def test_the_client_model_is_the_scanners_client():
    model = legacy_tls.starttls_client()
    scanner = {registry.openssl_to_iana(c["name"]) for c in client_context().get_ciphers()}
    assert model.suites == scanner - {None}
    assert model.versions == ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    assert not {s for s in model.suites
                if registry.by_iana_name(s).cipher in ("RC4", "3DES_EDE_CBC")}
    assert "TLS_AES_128_CCM_SHA256" not in model.suites


def test_openssl_pki_refuses_tlslite_specs(pki):
    with pytest.raises(PkiError, match="tlslite"):
        pki.server_context(CATALOGUE["null_rsa"].spec(), ("x.test",))


# --- what the starttls profile gets ---------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
async def test_the_scanners_dialogue_gets_the_truth(port, pki, name):
    ip = IPS[name]
    server = SERVERS[ip]
    truth = host_truth(server, WORLD)
    started = time.monotonic()
    probe = await probe_starttls(ip, port, policy=TESTBED, ehlo_name="scanner.test",
                                 sni=server.hostname, timeouts=Timeouts(tls=TIMEOUT))
    assert time.monotonic() - started < 3
    assert probe.status == truth.status, probe.detail
    assert (probe.tls_version, probe.ehlo_tls) == (truth.tls_version, truth.ehlo_tls)
    if truth.cipher_known:
        assert probe.cipher_suite == truth.cipher_suite
    outcome = starttls_outcome(server.tls)
    if outcome is None:
        assert truth.status == "tls_handshake_failed" and probe.ehlo == truth.ehlo
    else:
        assert probe.chain and len(probe.chain) == 2
        store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
        assert evaluate(probe.chain, server.hostname, pki.now, store).status == "valid"
    # the versions/ciphers columns come from the spec whether or not this client could talk
    assert truth.versions == list(server.tls.versions)
    assert {(s["version"], s["name"]) for s in truth.cipher_suites} == {
        (e.version, s) for e in server.tls.suites for s in e.suites}


@pytest.mark.parametrize("name", NAMES)
async def test_an_independent_python_ssl_client_agrees(port, name):
    ip = IPS[name]
    got = await trio.to_thread.run_sync(python_ssl_client, ip, port)
    outcome = starttls_outcome(SERVERS[ip].tls)
    if outcome is None:
        assert got is None
    else:
        assert got is not None and got[0] == outcome.version
        if outcome.cipher_suite is not None:
            assert got[1] == outcome.cipher_suite


@pytest.mark.parametrize("kind", sorted(CERT_IPS))
async def test_certificate_kinds_through_tlslite(port, pki, kind):
    ip = CERT_IPS[kind]
    server = SERVERS[ip]
    probe = await probe_starttls(ip, port, policy=TESTBED, ehlo_name="scanner.test",
                                 sni=server.hostname, timeouts=Timeouts(tls=TIMEOUT))
    assert probe.status == "ok"
    store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
    verdict = evaluate(probe.chain, server.hostname, pki.now, store)
    expected = {"missing_intermediate": "untrusted", "wrong_name": "name_mismatch"}.get(kind, kind)
    assert verdict.status == expected
    assert len(probe.chain) == (1 if kind in ("self_signed", "missing_intermediate") else 2)


# --- exactly the configured versions and suites ------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
async def test_tlslite_client_gets_each_listed_pair_and_no_other_version(port, name):
    ip = IPS[name]
    tls = SERVERS[ip].tls
    for entry in tls.suites:
        for suite in entry.suites:
            got = await trio.to_thread.run_sync(tlslite_client, ip, port, entry.version, suite)
            assert got == suite, (entry.version, suite)
    for version in ALL_TLS_VERSIONS:
        if version not in tls.versions:
            with pytest.raises(Exception):  # noqa: B017 - any failure of the handshake
                await trio.to_thread.run_sync(tlslite_client, ip, port, version, None)


@pytest.mark.parametrize("name", NAMES)
async def test_hand_built_hellos_find_exactly_the_listed_suites(port, name):
    ip = IPS[name]
    tls = SERVERS[ip].tls
    e = await trio.to_thread.run_sync(enumerate_server, ip, port)
    assert e.versions_supported() == tls.versions
    listed = {entry.version: entry.suites for entry in tls.suites}
    for result in e.results():
        names = [registry.name_for_code(c) for c in result.suites]
        assert set(names) == set(listed.get(result.version, ())), result
        if len(names) > 1:
            assert result.preference == ("server" if tls.server_preference else "client")
            if tls.server_preference:
                assert names == list(listed[result.version])


S_CLIENT_CASES = [
    ("null_rsa", ["-tls1_2", "-cipher", "NULL-SHA256:NULL-SHA:@SECLEVEL=0"], "NULL-SHA256"),
    ("null_rsa", ["-tls1_2", "-cipher", "NULL-MD5:@SECLEVEL=0"], "NULL-MD5"),
    ("null_rsa", ["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"], None),
    ("null_ecdsa", ["-tls1", "-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
     "ECDHE-ECDSA-NULL-SHA"),
    ("sslv3_tls10", ["-tls1", "-cipher", "ALL:@SECLEVEL=0"], "AES256-SHA"),
    ("sslv3_tls10", ["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"], None),
    ("tls13_chacha_only", ["-tls1_3"], "TLS_CHACHA20_POLY1305_SHA256"),
    ("tls13_chacha_only", ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"], None),
    ("tls13_aes128_first", ["-tls1_3"], "TLS_AES_128_GCM_SHA256"),
    ("tls13_aes128_first", ["-tls1_2"], None),
    ("tls13_ccm_only", ["-tls1_3"], None),
    ("tls13_ccm_only", ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"],
     "TLS_AES_128_CCM_SHA256"),
]


@needs("openssl")
@pytest.mark.parametrize(("name", "args", "cipher"), S_CLIENT_CASES)
async def test_openssl_s_client_where_it_can(port, name, args, cipher):
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{IPS[name]}:{port}",
           "-name", "client.test", "-brief", *args]
    with trio.fail_after(10):
        done = await trio.run_process(cmd, stdin=b"QUIT\r\n", capture_stdout=True,
                                      capture_stderr=True, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    if cipher is None:
        assert "Ciphersuite:" not in out, out
    else:
        assert f"Ciphersuite: {cipher}\n" in out, out


# --- bounded cost -------------------------------------------------------------------------------

async def _serve_with(nursery, pki, **kw) -> tuple[int, SmtpWorld]:
    handler = SmtpWorld(WORLD, pki, **kw)
    port = await nursery.start(partial(serve_tcp, handler.handle, port=0,
                                       connlog=ConnectionLog(None), service="smtp"))
    return port, handler


async def test_handshake_threads_are_bounded(nursery, pki):
    port, handler = await _serve_with(nursery, pki, idle_timeout=TIMEOUT, tls_threads=2)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, handler.tls_threads.statistics().borrowed_tokens)
            await trio.sleep(0.001)

    nursery.start_soon(watch)
    results = []

    async def one() -> None:
        results.append(await trio.to_thread.run_sync(
            python_ssl_client, IPS["tls13_aes128_first"], port, limiter=trio.CapacityLimiter(8)))

    async with trio.open_nursery() as clients:
        for _ in range(8):
            clients.start_soon(one)
    assert results == [("TLSv1.3", "TLS_AES_128_GCM_SHA256")] * 8
    assert 1 <= peak <= 2


async def test_a_silent_client_costs_at_most_the_handshake_timeout(nursery, pki):
    port, handler = await _serve_with(nursery, pki, idle_timeout=0.5, tls_threads=2)
    sock = await trio.to_thread.run_sync(starttls_socket, IPS["null_rsa"], port)
    started = time.monotonic()
    # say nothing: the server's handshake thread waits, then gives up and hangs up
    assert await trio.to_thread.run_sync(sock.recv, 100) == b""
    elapsed = time.monotonic() - started
    sock.close()
    assert 0.4 < elapsed < 3.0
    with trio.fail_after(2):
        while handler.tls_threads.statistics().borrowed_tokens:
            await trio.sleep(0.01)


async def test_a_world_stops_promptly_in_the_middle_of_a_handshake(pki):
    handler = SmtpWorld(WORLD, pki, idle_timeout=30.0, tls_threads=2)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_tcp, handler.handle, port=0,
                                           connlog=ConnectionLog(None), service="smtp"))
        sock = await trio.to_thread.run_sync(starttls_socket, IPS["rc4_only"], port)
        sock.sendall(b"\x16\x03\x01\x00\x50")   # half a record: the thread waits for the rest
        while not handler.tls_threads.statistics().borrowed_tokens:
            await trio.sleep(0.01)
        started = time.monotonic()
        nursery.cancel_scope.cancel()
    assert time.monotonic() - started < 2.0   # not the 30 s handshake timeout
    sock.settimeout(2)
    assert sock.recv(100) == b""    # the connection is closed, not leaked
    sock.close()
    with trio.fail_after(2):
        while handler.tls_threads.statistics().borrowed_tokens:
            await trio.sleep(0.01)


# --- the default profile ------------------------------------------------------------------------

def test_the_default_profile_has_every_legacy_entry_with_truth():
    world = generate(1000, seed=3, scale="fast")
    shares = behaviour_shares(world)
    assert all(shares[f"legacy:{name}"] > 0 for name in CATALOGUE)
    assert shares["tls:SSLv3"] > 0
    rows = {r["ip"]: r for r in build_truth(world).rows["hosts"]}
    legacy = [s for s in world.smtp_servers.values() if s.tls and s.tls.engine == "tlslite"]
    assert legacy
    for server in legacy:
        row = rows[server.ip]
        if row["status"] in ("ok", "tls_handshake_failed") and server.behaviour in (
                "normal", "multiline_banner", "slow_banner", "hostile_text"):
            assert row["versions_supported"] == list(server.tls.versions)
            outcome = starttls_outcome(server.tls)
            assert (row["status"] == "ok") == (outcome is not None)
