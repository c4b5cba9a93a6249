"""TCP and TLS pieces shared by the SMTP and HTTPS clients.

A numeric connect (no getaddrinfo: every address was resolved before it gets
here) behind the destination policy check, the scanner's TLS client context,
what a finished handshake tells: version, suite (IANA name) and chain, and
the bounded drain that waits for a peer to hang up.
"""

from __future__ import annotations

import errno
import functools
import os
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


class Connection(trio.abc.HalfCloseableStream):
    """A TCP connection the scanner drives itself: a non-blocking stdlib socket, waited on
    with trio's readiness waits, and after ``start_tls`` the ``ssl.SSLSocket`` over it.

    Errors are trio's (``trio.SocketStream`` and ``trio.SSLStream`` with their
    defaults), so callers and recorded details are unchanged: a socket error is
    ``BrokenResourceError("socket connection broken: ...")`` from it, a TLS error
    ``BrokenResourceError`` from the ``ssl.SSLError`` (a ragged EOF included). What
    changes is the cost (benchmarks/handshake.py, benchmarks/profile.py): OpenSSL
    reads and writes the socket itself, with no memory BIOs to copy through, and a call
    that does not have to wait does not yield to the scheduler (trio's wrappers do, twice
    per call). Every read and write is bounded by its caller (byte caps), so a peer that
    floods cannot hold the event loop for long.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock          # the ssl.SSLSocket once TLS started
        self.tls: ssl.SSLSocket | None = None

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """The TLS handshake as a client; the caller bounds the time. Raises
        ``BrokenResourceError`` (from the ``SSLError`` or the socket's error) on failure."""
        tls = context.wrap_socket(self.sock, server_hostname=server_hostname,
                                  do_handshake_on_connect=False, suppress_ragged_eofs=False)
        self.sock = self.tls = tls
        await self._io(tls.do_handshake)

    async def _io(self, fn, *args, writing: bool = False):
        """``fn(*args)`` on the non-blocking socket, waiting for readiness as it asks."""
        sock = self.sock
        while True:
            try:
                return fn(*args)
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(sock)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(sock)
            except BlockingIOError:
                if writing:
                    await trio.lowlevel.wait_writable(sock)
                else:
                    await trio.lowlevel.wait_readable(sock)
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError from exc
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise trio.ClosedResourceError("this socket was already closed") from None
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view:
            while view:
                sent = await self._io(self.sock.send, view, writing=True)
                view = view[sent:]

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._io(self.sock.recv, max_bytes or 65536)

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.sock)

    def close(self) -> None:
        """Close at once (no TLS close_notify: as trio's forceful close)."""
        if self.sock.fileno() != -1:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


async def open_tcp(ip: str, port: int, policy: DestinationPolicy) -> Connection:
    """Connect to a literal address the policy allows; the caller bounds the time.

    Every outgoing connection of the scanner goes through here, so the
    destination policy (survey.net.guard) cannot be bypassed by a new caller.
    """
    if reason := policy.check(ip):
        raise Blocked(reason)
    if reach := policy.out_of_reach(ip):
        raise OutOfReach(*reach)
    v6 = ":" in ip
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    # trio's connect error names the address as getaddrinfo gives it (flow and scope for v6)
    address = (ip, port, 0, 0) if v6 and "%" not in ip else (ip, port)
    try:
        sock.setblocking(False)
        try:
            sock.connect(address)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"Error connecting to {address!r}: {os.strerror(err)}"
                              ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as trio's SocketStream
    except BaseException:
        sock.close()
        raise
    return Connection(sock)


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


def ssl_object(stream: Connection) -> ssl.SSLSocket:
    if stream.tls is None:
        raise RuntimeError("no TLS on this connection")
    return stream.tls


def peer_chain(obj: ssl.SSLSocket | ssl.SSLObject) -> list[bytes]:
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


def negotiated(obj: ssl.SSLSocket | ssl.SSLObject) -> tuple[str | None, str | None]:
    """(TLS version in the dataset's spelling, cipher suite by IANA name)."""
    version = obj.version()
    cipher = obj.cipher()
    suite = (openssl_to_iana(cipher[0]) or cipher[0]) if cipher else None
    return SSL_VERSION_NAMES.get(version or "", version), suite
