"""The testbed's MTA-STS policy hosts, against real clients.

Clients: Python ``ssl`` through ``trio.SSLStream`` (a raw HTTP/1.1 request),
``curl`` (``--resolve`` pins every name to a loopback address, so it never
resolves or connects elsewhere) and ``openssl s_client``. A small hand-built
world at fast timings.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.testbed.https_server import (
    MAX_REQUEST,
    POLICY_PATH,
    BadRequest,
    host_name,
    parse_request,
    read_head,
    serve_https,
)
from survey.testbed.listen import ConnectionLog, read_connection_log
from survey.testbed.model import PolicyHostSpec, PolicySpec, World
from survey.testbed.pki import Pki
from tests.requirements import needs

SHARED_IP = "127.30.1.1"      # a provider's policy address: three domains, SNI selects


def policy(mode: str, mx: str = "mx.example.test", max_age: int = 86400) -> str:
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


def host(domain: str, ip: str, behaviour: str = "ok", **kw) -> PolicyHostSpec:
    kw.setdefault("body", policy("enforce"))
    return PolicyHostSpec(domain=domain, ip=ip, behaviour=behaviour, **kw)


HOSTS = [
    host("enforce.test", SHARED_IP, body=policy("enforce"),
         policy=PolicySpec("enforce", 86400, ("mx.example.test",))),
    host("testing.test", SHARED_IP, body=policy("testing")),
    host("none.test", SHARED_IP, body=policy("none")),
    host("own.test", "127.30.0.1"),
    host("notfound.test", "127.30.0.2", "not_found", status=404, body="404 Not Found\n"),
    host("redirect.test", "127.30.0.3", "redirect", status=301, body="",
         location="https://www.redirect.test/.well-known/mta-sts.txt"),
    host("oversize.test", "127.30.0.4", "oversize", pad_to=70000),
    host("slow.test", "127.30.0.5", "slow_body", delay=0.05, duration=0.6),
    host("ctype.test", "127.30.0.6", "wrong_content_type", content_type="text/html; charset=utf-8"),
    host("wrongcert.test", "127.30.0.7", "wrong_cert", cert_kind="wrong_name"),
    host("badmode.test", "127.30.0.8", "invalid_mode", body=policy("require")),
    host("noctype.test", "127.30.0.9", "wrong_content_type", content_type=None),
    host("expired.test", "127.30.0.10", cert_kind="expired"),
    host("selfsigned.test", "127.30.0.11", cert_kind="self_signed"),
    host("nohost.test", None, "no_host"),
    host("ipv6.test", "::1"),
]
WORLD = World(seed=0, profile="test", domains=(), mx_hosts={}, smtp_servers={},
              policy_hosts={h.domain: h for h in HOSTS}, dns={})


@dataclass
class Served:
    port: int
    connlog: ConnectionLog


@pytest.fixture
async def https(nursery, pki, tmp_path):
    connlog = ConnectionLog(tmp_path / "connections.jsonl")
    port = await nursery.start(partial(serve_https, WORLD, port=0, pki=pki, connlog=connlog,
                                       idle_timeout=0.5))
    return Served(port, connlog)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool


def verifying(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_bundle_path))


async def fetch(port: int, ip: str, name: str | None, ctx: ssl.SSLContext, *,
                host_header: str | None = None, request: bytes | None = None,
                timeout: float = 5.0) -> Response:
    """One HTTPS request with Python ssl; reads until the server closes (or ``timeout``)."""
    stream = trio.SSLStream(await trio.open_tcp_stream(ip, port), ctx, server_hostname=name)
    if request is None:
        request = (f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host_header or name}\r\n"
                   "User-Agent: survey-test\r\nConnection: close\r\n\r\n").encode()
    data = b""
    complete = False
    with trio.move_on_after(timeout):
        await stream.send_all(request)
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                complete = True
                break
            data += chunk
    await trio.aclose_forcefully(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
    status = int(lines[0].split(" ")[1]) if lines[0] else 0
    return Response(status, {k.lower(): v for k, v in headers.items()}, body, complete)


@pytest.mark.parametrize("domain", ["enforce.test", "testing.test", "none.test", "own.test",
                                    "ipv6.test"])
async def test_valid_policies_with_sni(https, pki, domain):
    spec = WORLD.policy_hosts[domain]
    r = await fetch(https.port, spec.ip, spec.host, verifying(pki))
    assert r.status == 200 and r.complete
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["connection"] == "close"
    assert r.body == spec.body.encode()
    assert int(r.headers["content-length"]) == len(r.body)


async def test_shared_address_serves_each_domain_its_own_certificate(https, pki):
    seen = set()
    for domain in ("enforce.test", "testing.test", "none.test"):
        name = f"mta-sts.{domain}"
        stream = trio.SSLStream(await trio.open_tcp_stream(SHARED_IP, https.port),
                                verifying(pki), server_hostname=name)
        await stream.do_handshake()  # verifies the chain and the name
        seen.add(stream.getpeercert()["subject"])
        await trio.aclose_forcefully(stream)
    assert len(seen) == 3


async def test_host_not_at_this_address_gets_another_certificate(https, pki):
    # own.test lives at 127.30.0.1: the shared address has no certificate for it.
    with pytest.raises(trio.BrokenResourceError) as err:
        await fetch(https.port, SHARED_IP, "mta-sts.own.test", verifying(pki))
    assert isinstance(err.value.__cause__, ssl.SSLCertVerificationError)
    # Even with verification off, the Host it names is not served there.
    r = await fetch(https.port, SHARED_IP, None, unverifying(), host_header="mta-sts.own.test")
    assert r.status == 404


def unverifying() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def test_not_found_and_other_paths(https, pki):
    r = await fetch(https.port, "127.30.0.2", "mta-sts.notfound.test", verifying(pki))
    assert r.status == 404
    r = await fetch(https.port, "127.30.0.1", "mta-sts.own.test", verifying(pki),
                    request=b"GET /index.html HTTP/1.1\r\nHost: mta-sts.own.test\r\n\r\n")
    assert r.status == 404


async def test_redirect(https, pki):
    r = await fetch(https.port, "127.30.0.3", "mta-sts.redirect.test", verifying(pki))
    assert r.status == 301
    assert r.headers["location"] == "https://www.redirect.test/.well-known/mta-sts.txt"


async def test_oversize_body(https, pki):
    r = await fetch(https.port, "127.30.0.4", "mta-sts.oversize.test", verifying(pki))
    assert r.status == 200 and len(r.body) == 70000 > 65536
    assert r.body.startswith(b"version: STSv1") and r.body.endswith(b"\n\n")


async def test_slow_body_never_completes(https, pki):
    start = trio.current_time()
    r = await fetch(https.port, "127.30.0.5", "mta-sts.slow.test", verifying(pki))
    elapsed = trio.current_time() - start
    assert r.status == 200 and r.complete
    assert 0.6 <= elapsed < 3
    assert 0 < len(r.body) < int(r.headers["content-length"])


@pytest.mark.parametrize(("domain", "ctype"), [
    ("ctype.test", "text/html; charset=utf-8"), ("noctype.test", None)])
async def test_wrong_content_type(https, pki, domain, ctype):
    r = await fetch(https.port, WORLD.policy_hosts[domain].ip, f"mta-sts.{domain}",
                    verifying(pki))
    assert r.status == 200 and r.headers.get("content-type") == ctype


async def test_invalid_policy_body_served_verbatim(https, pki):
    r = await fetch(https.port, "127.30.0.8", "mta-sts.badmode.test", verifying(pki))
    assert r.status == 200 and b"mode: require" in r.body


@pytest.mark.parametrize(("domain", "reason"), [
    ("wrongcert.test", "Hostname mismatch"),
    ("expired.test", "certificate has expired"),
    ("selfsigned.test", "self-signed certificate"),
])
async def test_bad_certificates(https, pki, domain, reason):
    spec = WORLD.policy_hosts[domain]
    with pytest.raises(trio.BrokenResourceError) as err:
        await fetch(https.port, spec.ip, spec.host, verifying(pki))
    assert reason in str(err.value.__cause__)
    r = await fetch(https.port, spec.ip, spec.host, unverifying())
    assert r.status == 200  # the body is fine: only the certificate is wrong


async def test_bad_requests(https, pki):
    ctx = verifying(pki)
    name = "mta-sts.own.test"
    for request, status in [
        (b"GARBAGE\r\n\r\n", 400),
        (f"GET {POLICY_PATH} HTTP/1.1\r\n\r\n".encode(), 400),                  # no Host
        (f"POST {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\n\r\n".encode(), 405),
        (b"GET / HTTP/1.1\r\nHost: " + b"x" * (MAX_REQUEST + 10) + b"\r\n\r\n", 431),
    ]:
        r = await fetch(https.port, "127.30.0.1", name, ctx, request=request)
        assert r.status == status, request[:40]


async def test_head_request(https, pki):
    r = await fetch(https.port, "127.30.0.1", "mta-sts.own.test", verifying(pki),
                    request=f"HEAD {POLICY_PATH} HTTP/1.1\r\nHost: MTA-STS.own.test.:443\r\n\r\n"
                    .encode())
    assert r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 0


async def test_idle_client_is_dropped(https, pki):
    stream = trio.SSLStream(await trio.open_tcp_stream("127.30.0.1", https.port),
                            verifying(pki), server_hostname="mta-sts.own.test")
    await stream.do_handshake()
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b""  # server idle timeout 0.5 s


async def test_address_without_policy_host_resets(https):
    stream = await trio.open_tcp_stream("127.30.9.9", https.port)
    with pytest.raises(trio.BrokenResourceError):
        with trio.fail_after(5):
            await stream.receive_some(100)


async def test_connection_log(https, pki):
    await fetch(https.port, "127.30.0.1", "mta-sts.own.test", verifying(pki))
    await fetch(https.port, SHARED_IP, "mta-sts.none.test", verifying(pki))
    with trio.fail_after(5):
        while len(https.connlog.records) < 2:
            await trio.sleep(0.01)
    records = read_connection_log(https.connlog.path)
    assert sorted((r.service, r.ip, r.port) for r in records) == [
        ("https", "127.30.0.1", https.port), ("https", SHARED_IP, https.port)]


# --- real client programs -----------------------------------------------------------------

async def curl(port: int, pki: Pki, domain: str, ip: str, *args: str) -> tuple[int, str]:
    name = f"mta-sts.{domain}"
    cmd = ["curl", "-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "5",
           "--resolve", f"{name}:{port}:{ip}", "--cacert", str(pki.ca_bundle_path),
           "--output", "-", "--write-out", "\n%{http_code} %{content_type}", *args,
           f"https://{name}:{port}{POLICY_PATH}"]
    with trio.fail_after(10):
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True,
                                      check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@needs("curl")
async def test_curl_fetches_policies_by_sni(https, pki):
    for domain in ("enforce.test", "testing.test", "none.test"):
        rc, out = await curl(https.port, pki, domain, SHARED_IP)
        mode = domain.split(".")[0]
        assert rc == 0 and f"mode: {mode}" in out and out.endswith("\n200 text/plain"), out


@needs("curl")
@pytest.mark.parametrize(("domain", "rc", "expect"), [
    ("wrongcert.test", 60, "no alternative certificate subject name matches"),
    ("expired.test", 60, "certificate has expired"),
    ("notfound.test", 0, "404 text/plain"),
    ("redirect.test", 0, "301"),
])
async def test_curl_sees_each_failure(https, pki, domain, rc, expect):
    code, out = await curl(https.port, pki, domain, WORLD.policy_hosts[domain].ip)
    assert code == rc and expect in out, out


@needs("curl")
async def test_curl_times_out_on_slow_body(https, pki):
    code, out = await curl(https.port, pki, "slow.test", "127.30.0.5", "--max-time", "0.3")
    assert code == 28, out  # operation timed out


@needs("openssl")
async def test_openssl_s_client_sni_selects_certificate(https, pki):
    subjects = []
    for name in ("mta-sts.enforce.test", "mta-sts.none.test"):
        cmd = ["openssl", "s_client", "-connect", f"{SHARED_IP}:{https.port}",
               "-servername", name, "-CAfile", str(pki.ca_bundle_path),
               "-verify_hostname", name]
        with trio.fail_after(10):
            done = await trio.run_process(cmd, stdin=b"", capture_stdout=True,
                                          capture_stderr=True, check=False)
        out = done.stdout.decode()
        assert "Verify return code: 0 (ok)" in out, out
        subjects.append([ln for ln in out.splitlines() if ln.startswith("subject=")][0])
    assert subjects == ["subject=CN = mta-sts.enforce.test", "subject=CN = mta-sts.none.test"]


# --- request parsing ---------------------------------------------------------------------

def test_parse_request_and_host_names():
    r = parse_request(b"GET /x HTTP/1.1\r\nHost: A.test\r\nX-Y:  z ")
    assert (r.method, r.target, r.version) == ("GET", "/x", "HTTP/1.1")
    assert r.header("host") == "A.test" and r.header("x-y") == "z"
    assert host_name("MTA-STS.Example.TEST.:8443") == "mta-sts.example.test"
    assert host_name("[::1]:443") == "[::1]"
    for bad in (b"GET /x\r\n", b"GET /x HTTP/1.1\r\nHost : a", b"\xff / HTTP/1.1",
                b"GET /x HTTP/1.1\r\nno colon"):
        with pytest.raises(BadRequest):
            parse_request(bad)
    with pytest.raises(BadRequest):
        parse_request(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b").header("host")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_parse_request_any_bytes_raises_only_bad_request(data):
    try:
        request = parse_request(data)
    except BadRequest as bad:
        assert bad.status == 400
        return
    for name, _ in request.headers:
        try:
            request.header(name)
        except BadRequest:
            pass


class Chunks(trio.abc.ReceiveStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def receive_some(self, max_bytes=None) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def aclose(self) -> None:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=3000) | st.just(b"\r\n\r\n"), max_size=8))
def test_read_head_any_chunking_is_capped(chunks):
    chunks = [c for c in chunks if c]  # an empty read means end of stream
    data = b"".join(chunks)
    try:
        head = trio.run(read_head, Chunks(chunks))
    except BadRequest as bad:
        assert bad.status == 431
        return
    if head is None:
        assert b"\r\n\r\n" not in data and b"\n\n" not in data
    else:
        assert len(head) <= MAX_REQUEST and data.startswith(head)
