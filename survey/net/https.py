"""The MTA-STS policy fetch (RFC 8461 §3.3): one HTTPS GET, by the RFC's rules.

Theory of operation
-------------------
``fetch_policy`` connects to one address of ``mta-sts.<domain>`` (the caller
resolved it and passed the destination policy), handshakes with SNI
``mta-sts.<domain>``, judges the certificate with survey.certs under the
RFC 8461 §4.2 profile (PKIX to the trust store, a SAN DNS-ID required), and
sends ``GET /.well-known/mta-sts.txt``. HTTP/1.1 framing (Content-Length,
chunked, close-delimited) is h11's, a sans-IO parser with its own size caps.

The RFC's rules are applied by survey.proto.mtasts.evaluate_fetch, so a
fetch and a conformance vector are judged by the same code. This module only
supplies the facts: the status, the Content-Type, the body (read up to the
size cap plus one octet, never more), and the elapsed time. Redirects are
never followed (§3.3: "MUST NOT follow redirects"). The whole fetch, connect
included, runs under one deadline (the RFC's suggested 60 s): a slowloris
body ends as ``timeout``, not as a hang.

Failures before an HTTP response exists get categories of their own:
``dns`` (no address), ``blocked`` (the destination policy refused every
address), ``connect``, ``tls`` and ``certificate`` (the policy host's
certificate is invalid: TLSRPT ``sts-webpki-invalid``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime

import h11
import trio

from survey.certs import TrustStore, evaluate
from survey.net.guard import DestinationPolicy
from survey.net.transport import Blocked, client_context, open_tcp, peer_chain, ssl_object
from survey.proto.mtasts import (
    FETCH_TIMEOUT_S,
    MAX_POLICY_BYTES,
    STATUS_FETCH_ERROR,
    FetchResult,
    evaluate_fetch,
)
from survey.proto.names import PROFILE_MTA_STS
from survey.vocabulary import STS_TRANSPORT_ERRORS, CertStatus, PolicyStatus, StsPolicyError

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_HEAD_BYTES = 16 * 1024
READ_SIZE = 16 * 1024
DEFAULT_USER_AGENT = "survey (email transport security research scanner)"
# Failures before an HTTP response exists, beside mtasts.FETCH_ERRORS.
TRANSPORT_ERRORS = STS_TRANSPORT_ERRORS


@dataclass(frozen=True)
class PolicyFetch:
    """One fetch: the RFC verdict (``result``) and the facts behind it."""

    result: FetchResult
    ip: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    cert_status: str | None = None
    elapsed_s: float | None = None

    @property
    def status(self) -> PolicyStatus:
        """``mta_sts_policy_status``: ok, fetch_error (no usable response) or invalid."""
        if self.result.error in TRANSPORT_ERRORS:
            return STATUS_FETCH_ERROR
        return self.result.status

    @property
    def error(self) -> StsPolicyError | None:
        return self.result.error


def failed(category: StsPolicyError, detail: str, **facts) -> PolicyFetch:
    return PolicyFetch(FetchResult(valid=False, error=category, detail=detail[:300]), **facts)


async def _exchange(stream: trio.abc.Stream, host: str, user_agent: str):
    """Send the GET; return (response, body) with the body capped at the limit + 1."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    request = h11.Request(method="GET", target=POLICY_PATH, headers=[
        ("Host", host), ("User-Agent", user_agent), ("Accept", "text/plain"),
        ("Connection", "close")])
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    response, body = None, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(READ_SIZE)
            conn.receive_data(bytes(data))  # b"" is end of stream; h11 decides what it means
            continue
        if isinstance(event, h11.Response):
            response = event
            if response.status_code != 200:
                return response, bytes(body)   # the body cannot change the verdict
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_POLICY_BYTES:
                return response, bytes(body[:MAX_POLICY_BYTES + 1])
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return response, bytes(body)


def _header(response: h11.Response, name: bytes) -> str | None:
    values = [v for k, v in response.headers if k == name]
    return values[0].decode("latin-1") if values else None


async def fetch_policy(domain: str, ip: str, port: int = 443, *, policy: DestinationPolicy,
                       store: TrustStore,
                       probed_at: datetime, timeout: float = FETCH_TIMEOUT_S,
                       user_agent: str = DEFAULT_USER_AGENT,
                       context_factory=client_context) -> PolicyFetch:
    """GET the policy of ``domain`` from ``ip``; never raises for what the server did."""
    host = f"mta-sts.{domain}"
    start = trio.current_time()
    stream: trio.abc.Stream | None = None
    facts: dict = {"ip": ip}
    try:
        with trio.move_on_after(timeout) as deadline:
            try:
                stream = await open_tcp(ip, port, policy)
            except Blocked as blocked:
                return failed(StsPolicyError.BLOCKED, str(blocked), **facts)
            except OSError as exc:
                return failed(StsPolicyError.CONNECT, f"{type(exc).__name__}: {exc}", **facts)
            tls = stream
            try:
                await tls.start_tls(context_factory(), server_hostname=host)
            except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                cause = exc.__cause__ or exc
                return failed(StsPolicyError.TLS, f"{type(cause).__name__}: {cause}", **facts)
            chain = peer_chain(ssl_object(tls))
            verdict = evaluate(chain, host, probed_at, store, profile=PROFILE_MTA_STS)
            facts["cert_status"] = verdict.status
            if verdict.status != CertStatus.VALID:
                return failed(StsPolicyError.CERTIFICATE, f"{host}: {verdict.status}", **facts)
            try:
                response, body = await _exchange(tls, host, user_agent)
            except h11.RemoteProtocolError as exc:
                return failed(StsPolicyError.HTTP, f"malformed HTTP response: {exc}", **facts)
            except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                return failed(StsPolicyError.HTTP, f"connection lost: {exc or type(exc).__name__}",
                              **facts)
        elapsed = trio.current_time() - start
        if deadline.cancelled_caught:
            return failed(StsPolicyError.TIMEOUT, f"no complete policy within {timeout:g} s",
                          elapsed_s=elapsed, **facts)
        if response is None:
            return failed(StsPolicyError.HTTP, "the connection closed before a response", **facts)
        content_type = _header(response, b"content-type")
        result = evaluate_fetch(response.status_code, content_type, False, body, elapsed)
        return PolicyFetch(result, http_status=response.status_code,
                           content_type=content_type, body=body, elapsed_s=elapsed, **facts)
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
