"""Real TLS servers on loopback for the hello cross-checks, and a blocking hello driver.

- ``OpenSSLServer``: Python ``ssl`` (this machine's OpenSSL 3) with chosen
  versions, cipher string and server preference; RSA and ECDSA leaves from
  trustme, DH parameters (RFC 7919 ffdhe2048) for DHE suites.
- ``TlsliteServer``: tlslite-ng, a second, pure-Python TLS stack, for what
  OpenSSL 3 cannot serve (SSLv3, RC4, 3DES, NULL) and for TLS 1.3 suite and
  group restrictions Python 3.11's ``ssl`` cannot set.
- ``send_hello``: connect, send our ClientHello, feed the answer to
  ``ServerHelloParser`` until the answer is decided, close. Every wait is
  bounded by a socket timeout.

Servers accept one connection at a time on 127.0.0.1, port 0, in a daemon
thread, and stop on ``close()`` (context managers).
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from survey.proto import tlshello
from survey.proto.tlshello import (
    CLOSED,
    NEED_DATA,
    Alert,
    HelloRetryRequest,
    ServerHello,
    ServerHelloDone,
    TLSProtocolError,
)

TIMEOUT = 5.0

# RFC 7919 Appendix A.1, ffdhe2048, as `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048` prints it.
FFDHE2048_PEM = b"""\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


@dataclass
class Certs:
    """A trustme CA with one RSA and one ECDSA leaf for 127.0.0.1 / mx.example.test, as files."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.rsa = self.ca.issue_cert("mx.example.test", "127.0.0.1", key_type=trustme.KeyType.RSA)
        self.ecdsa = self.ca.issue_cert(
            "mx.example.test", "127.0.0.1", key_type=trustme.KeyType.ECDSA
        )
        self.rsa_cert = self.directory / "rsa.pem"
        self.rsa_key = self.directory / "rsa.key"
        self.ecdsa_cert = self.directory / "ecdsa.pem"
        self.ecdsa_key = self.directory / "ecdsa.key"
        self.rsa_cert.write_bytes(b"".join(b.bytes() for b in self.rsa.cert_chain_pems))
        self.rsa_key.write_bytes(self.rsa.private_key_pem.bytes())
        self.ecdsa_cert.write_bytes(b"".join(b.bytes() for b in self.ecdsa.cert_chain_pems))
        self.ecdsa_key.write_bytes(self.ecdsa.private_key_pem.bytes())
        self.dhparams = self.directory / "ffdhe2048.pem"
        self.dhparams.write_bytes(FFDHE2048_PEM)


class _Server:
    """Accept loop in a thread; ``handle(conn)`` runs one handshake attempt."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.settimeout(TIMEOUT)
            try:
                self.handle(conn)
            except Exception:  # noqa: BLE001, S110 -- the client hangs up after the ServerHello: expected
                pass
            finally:
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SSL_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,  # the enum members do not warn
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def openssl_context(
    certs: Certs,
    *,
    min_version: str,
    max_version: str,
    cipher_string: str | None = None,
    server_preference: bool = False,
    ecdsa: bool = True,
    rsa: bool = True,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: serving them is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _SSL_VERSIONS[min_version]
        ctx.maximum_version = _SSL_VERSIONS[max_version]
    ctx.set_ciphers(cipher_string or "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    if rsa:
        ctx.load_cert_chain(certs.rsa_cert, certs.rsa_key)
    if ecdsa:
        ctx.load_cert_chain(certs.ecdsa_cert, certs.ecdsa_key)
    ctx.load_dh_params(certs.dhparams)
    if server_preference:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


class OpenSSLServer(_Server):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with self.ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls:
            tls.do_handshake()


class TlsliteServer(_Server):
    """tlslite-ng with a HandshakeSettings built from the keyword arguments.

    Settings and credentials come from ``survey.testbed.tlslite_server``, the
    testbed's tlslite-ng engine, so these tests and the testbed's legacy
    servers load certificates and configure tlslite-ng the same way.
    """

    def __init__(
        self,
        certs: Certs,
        *,
        min_version=(3, 0),
        max_version=(3, 3),
        cipher_names=None,
        key_exchange_names=None,
        mac_names=None,
        groups=None,
        key_shares=None,
        use_ecdsa=False,
    ) -> None:
        from survey.testbed.tlslite_server import load_chain, load_key, make_settings

        cert_file, key_file = (
            (certs.ecdsa_cert, certs.ecdsa_key) if use_ecdsa else (certs.rsa_cert, certs.rsa_key)
        )
        self.chain = load_chain(cert_file.read_text())
        self.key = load_key(key_file.read_text())
        self.settings = make_settings(
            min_version=min_version,
            max_version=max_version,
            cipher_names=cipher_names,
            key_exchange_names=key_exchange_names,
            mac_names=mac_names,
            groups=groups,
            key_shares=key_shares,
        )
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        from tlslite import TLSConnection

        TLSConnection(conn).handshakeServer(
            certChain=self.chain, privateKey=self.key, settings=self.settings
        )


class RawServer(_Server):
    """Answers any hello with fixed bytes and hangs up (a plaintext SMTP reply, garbage, nothing)."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.recv(65536)
        if self.reply:
            conn.sendall(self.reply)


@dataclass
class Answer:
    """What one hello got back: the events, and the parser error or transport failure if any."""

    events: list
    error: TLSProtocolError | None = None
    transport: str | None = None

    @property
    def hello(self) -> ServerHello | HelloRetryRequest | None:
        return next(
            (e for e in self.events if isinstance(e, (ServerHello, HelloRetryRequest))), None
        )

    @property
    def alert(self) -> Alert | None:
        return next((e for e in self.events if isinstance(e, Alert)), None)


def _decided(events: list) -> bool:
    for e in events:
        if isinstance(e, (HelloRetryRequest, ServerHelloDone)):
            return True
        if isinstance(e, ServerHello) and (e.version_code >= 0x0304 or e.version is None):
            return True
        if isinstance(e, Alert) and e.fatal:
            return True
    return False


def send_hello(port: int, hello: bytes, *, timeout: float = TIMEOUT) -> Answer:
    """Send ``hello`` to 127.0.0.1:``port`` and read the answer until it is decided."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return read_answer(sock, hello)


def read_answer(sock: socket.socket, hello: bytes) -> Answer:
    """Send ``hello`` on a connected socket (its timeout bounds each read) and read the
    answer until it is decided."""
    parser = tlshello.ServerHelloParser()
    events: list = []
    sock.sendall(hello)
    while True:
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError) as exc:
            return Answer(events, transport=type(exc).__name__)
        parser.feed(data)
        while True:
            try:
                ev = parser.next_event()
            except TLSProtocolError as exc:
                return Answer(events, error=exc)
            if ev is NEED_DATA or ev is CLOSED:
                break
            events.append(ev)
        if not data or _decided(events):
            return Answer(events)
