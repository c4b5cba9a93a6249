"""The lab itself, checked without our scanner: Unbound, Postfix and nginx answer as configured.

If one of these fails, the scanner tests after it are measuring a broken lab;
these say which daemon is wrong. Plain stdlib and dnspython clients only.
"""

from __future__ import annotations

import socket
import ssl
import warnings

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.interop.conftest import ScanResult, survey_scan
from tests.interop.lab import (
    BY_LABEL,
    DNS_IP,
    HTTPS_IP,
    LAB_CHECK_AGENT,
    LISTENERS,
    NEEDS_LAB,
    ZONE,
    smtp_greeting,
)

pytestmark = [pytest.mark.interop, NEEDS_LAB]


def query(lab, name: str, rtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rtype), DNS_IP, port=lab.dns_port,
                         timeout=2)


def test_unbound_serves_the_zone(lab):
    mx = query(lab, f"modern.{ZONE}", "MX").answer[0]
    assert [r.to_text() for r in mx] == [f"10 modern.mx.{ZONE}."]
    null = query(lab, f"nullmx.{ZONE}", "MX").answer[0]
    assert [r.to_text() for r in null] == ["0 ."]                  # RFC 7505
    implicit = query(lab, f"implicit.{ZONE}", "MX")
    assert implicit.rcode() == dns.rcode.NOERROR and not implicit.answer
    split = query(lab, f"_mta-sts.split.{ZONE}", "TXT").answer[0]
    assert [r.strings for r in split] == [(b"v=STSv1; ", b"id=split2026;")]
    assert len(query(lab, f"_smtp._tls.testing.{ZONE}", "TXT").answer[0]) == 2


def test_unbound_never_recurses(lab):
    for name in (f"missing.{ZONE}", "example.com", "localhost.example"):
        assert query(lab, name, "A").rcode() == dns.rcode.NXDOMAIN


def ehlo(sock: socket.socket) -> list[str]:
    sock.sendall(b"EHLO scanner.interop.test\r\n")
    data = b""
    while not any(line[3:4] == b" " for line in data.split(b"\r\n")):
        data += sock.recv(4096)
    return [line[4:].decode() for line in data.split(b"\r\n") if line]


@pytest.mark.parametrize("listener", LISTENERS, ids=lambda listener: listener.label)
def test_postfix_listener_greets_as_configured(lab, listener):
    if listener.tls == "reject":
        assert smtp_greeting(listener.ip, lab.smtp_port).startswith(b"554 ")
        return
    with socket.create_connection((listener.ip, lab.smtp_port), timeout=5) as sock:
        assert sock.recv(4096).startswith(b"220 ")
        offered = "STARTTLS" in ehlo(sock)
        assert offered == (listener.tls != "none")
        sock.sendall(b"QUIT\r\n")


def test_postfix_restricted_listener_prefers_its_own_order(lab):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
    listener = BY_LABEL["restricted"]
    with socket.create_connection((listener.ip, lab.smtp_port), timeout=5) as sock:
        sock.recv(4096)
        ehlo(sock)
        sock.sendall(b"STARTTLS\r\n")
        assert sock.recv(4096).startswith(b"220")
        with context.wrap_socket(sock) as tls:
            assert tls.cipher()[0] == "ECDHE-RSA-CHACHA20-POLY1305"


def test_postfix_anon_listener_prefers_an_anonymous_suite(lab):
    """What a client offering aNULL gets (the certificate probe offers none)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    listener = BY_LABEL["anon"]
    with socket.create_connection((listener.ip, lab.smtp_port), timeout=5) as sock:
        sock.recv(4096)
        ehlo(sock)
        sock.sendall(b"STARTTLS\r\n")
        assert sock.recv(4096).startswith(b"220")
        with context.wrap_socket(sock) as tls:
            assert tls.version() == "TLSv1.2"
            assert tls.cipher()[0].startswith(("AECDH", "ADH")), tls.cipher()
            assert tls.getpeercert(binary_form=True) is None


def fetch_policy(lab, host: str) -> bytes:
    context = ssl.create_default_context(cafile=str(lab.pki.ca_file))
    with (socket.create_connection((HTTPS_IP, lab.https_port), timeout=5) as raw,
          context.wrap_socket(raw, server_hostname=host) as tls):
        tls.sendall(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                    f"User-Agent: {LAB_CHECK_AGENT}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        return data


def test_nginx_serves_the_policies(lab):
    body = fetch_policy(lab, f"mta-sts.modern.{ZONE}")
    assert body.startswith(b"HTTP/1.1 200") and b"Content-Type: text/plain" in body
    assert body.endswith(b"version: STSv1\r\nmode: enforce\r\nmx: modern.mx.interop.test\r\n"
                         b"max_age: 86400\r\n")
    assert fetch_policy(lab, f"mta-sts.notfound.{ZONE}").startswith(b"HTTP/1.1 404")
    redirect = fetch_policy(lab, f"mta-sts.redirect.{ZONE}")
    assert redirect.startswith(b"HTTP/1.1 301") and b"Location: https://mta-sts.modern" in redirect
    assert b"Content-Type: text/html" in fetch_policy(lab, f"mta-sts.html.{ZONE}")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        fetch_policy(lab, f"mta-sts.wrongcert.{ZONE}")


def test_internet_mode_refuses_the_lab(lab, scan_list, tmp_path):
    """Without --testbed the destination policy blocks loopback: rows, not traffic."""
    # the Internet mode wants a per-IP spacing above 0 (FAST's 0 is for a loopback lab)
    done = survey_scan(lab, scan_list, tmp_path / "internet", "--limit", "3",
                       "--per-ip-spacing", "0.1", testbed=False)
    assert done.returncode == 0, done.stderr
    result = ScanResult.read(tmp_path / "internet")
    assert result.hosts and {h["status"] for h in result.hosts.values()} == {"blocked_by_policy"}


def test_testbed_mode_refuses_an_off_loopback_resolver(lab, scan_list, tmp_path):
    done = survey_scan(lab, scan_list, tmp_path / "x", "--resolver", "192.0.2.53")
    assert done.returncode == 2 and "loopback resolvers only" in done.stderr
