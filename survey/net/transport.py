"""TCP and TLS pieces shared by the SMTP and HTTPS clients.

A numeric connect (no getaddrinfo: every address was resolved before it gets
here) behind the destination policy check, the scanner's TLS client context,
what a finished handshake tells: version, suite (IANA name) and chain, and
the bounded drain that waits for a peer to hang up.
"""

from __future__ import annotations

import functools
import socket
import ssl

import trio

from survey.net.guard import DestinationPolicy
from survey.proto.ciphers import openssl_to_iana
from survey.vocabulary import HostStatus

SSL_VERSION_NAMES = {"SSLv3": "SSLv3", "TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1",
                     "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}


DRAIN_READ_SIZE = 4096


async def drain(stream: trio.abc.ReceiveStream, limit: int,
                read_size: int = DRAIN_READ_SIZE) -> bool:
    """Read and drop what the peer sends until it hangs up; the caller bounds the time.

    True once the peer has closed (or reset, or the stream broke): the
    connection is over for it too. False when ``limit`` bytes came first (a
    peer that floods is not read any further).
    """
    dropped = 0
    try:
        while dropped < limit:
            data = await stream.receive_some(read_size)
            if not data:
                return True
            dropped += len(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return True
    return False


class Blocked(Exception):
    """The destination policy refused the address; no packet was sent."""


class OutOfReach(Blocked):
    """The address's family is left out or not routable from here; no packet was sent."""

    def __init__(self, status: HostStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def open_tcp(ip: str, port: int, policy: DestinationPolicy) -> trio.SocketStream:
    """Connect to a literal address the policy allows; the caller bounds the time.

    Every outgoing connection of the scanner goes through here, so the
    destination policy (survey.net.guard) cannot be bypassed by a new caller.
    """
    if reason := policy.check(ip):
        raise Blocked(reason)
    if reach := policy.out_of_reach(ip):
        raise OutOfReach(*reach)
    sock = trio.socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              socket.SOCK_STREAM)
    try:
        await sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


# What the certificate probe offers: every suite this OpenSSL has, except those that
# carry no certificate (anonymous aNULL) or need a shared secret (PSK, SRP) -- what a
# sender that verifies certificates offers (Postfix at its verify/secure/dane levels and
# under MTA-STS excludes aNULL), so a server that prefers an anonymous suite still shows
# the chain it would show such a sender. Anonymous suites are measured by the versions
# and ciphers enumeration (hand-built hellos), not here.
CERTIFICATE_PROBE_CIPHERS = "ALL:COMPLEMENTOFALL:!aNULL:!PSK:!SRP:@SECLEVEL=0"


# What the certificate probe's OpenSSL can speak (legacy suites such as RC4 and 3DES, and
# SSLv3, are not in OpenSSL 3 here).
PROBE_VERSIONS = frozenset({"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"})


@functools.cache
def certificate_probe_suites() -> frozenset[str]:
    """IANA names of the suites the certificate probe can negotiate: a server that chose
    none of them failed its handshake with this machine's OpenSSL, not with every sender."""
    return frozenset(openssl_to_iana(c["name"]) or c["name"]
                     for c in client_context().get_ciphers())


@functools.cache
def client_context() -> ssl.SSLContext:
    """Speak whatever the server speaks with a certificate; judge it later (survey.certs).

    One context serves every connection of a scan (building one costs more
    than a handshake's worth of CPU). ``@SECLEVEL=0``: OpenSSL 3 otherwise
    refuses TLS 1.0/1.1 and would report them as unsupported. No anonymous,
    PSK or SRP suites (``CERTIFICATE_PROBE_CIPHERS``).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(CERTIFICATE_PROBE_CIPHERS)
    return context


def ssl_object(stream: trio.SSLStream) -> ssl.SSLObject:
    return stream._ssl_object  # noqa: SLF001 (trio has no public accessor)


def peer_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The chain as the server sent it, DER, leaf first.

    Python 3.11 exposes it only privately (public from 3.13); without it the
    leaf alone is better than nothing.
    """
    getter = getattr(obj, "get_unverified_chain", None) or getattr(
        getattr(obj, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        return [cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for cert in getter() or []]
    leaf = obj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def negotiated(obj: ssl.SSLObject) -> tuple[str | None, str | None]:
    """(TLS version in the dataset's spelling, cipher suite by IANA name)."""
    version = obj.version()
    cipher = obj.cipher()
    suite = (openssl_to_iana(cipher[0]) or cipher[0]) if cipher else None
    return SSL_VERSION_NAMES.get(version or "", version), suite
