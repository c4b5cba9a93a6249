"""The tlslite-ng engine: serve a ``TlsSpec(engine="tlslite")`` on a trio connection.

Theory of operation
-------------------
tlslite-ng is a blocking, pure-Python TLS stack. A testbed SMTP session is a
trio task. The two meet like this:

* **Handshake in a worker thread.** After the 220 to STARTTLS, the session
  hands its TCP socket over: ``server_handshake`` duplicates the descriptor
  (``os.dup``: same connection, own socket object), wraps it in ``_RawSocket``
  and runs ``TLSConnection.handshakeServer`` in ``trio.to_thread.run_sync``
  under a ``trio.CapacityLimiter`` (at most ``limiter.total_tokens`` threads;
  further handshakes queue, cancellably). Each socket wait in the thread is
  bounded by one deadline for the whole handshake, so a silent or dribbling
  client costs a thread for at most ``timeout`` seconds. A cancelled
  handshake (the world stopping) is abandoned: the socket is shut down, which
  wakes the thread, and the thread closes its descriptor itself.
* **Application data from trio.** Once the handshake is done the socket goes
  non-blocking and ``TlsliteStream`` (a ``trio.abc.Stream``) drives
  tlslite-ng's own asynchronous generators (``readAsync``/``writeAsync``/
  ``closeAsync`` yield 0 for "wants to read" and 1 for "wants to write"),
  waiting with ``trio.lowlevel.wait_readable``/``wait_writable``: an idle
  SMTP client holds no thread. Records are small (an EHLO), so the pure-Python
  decryption is cheap enough to run on the event loop.

**Exactly the listed suites.** tlslite-ng picks suites from broad name
settings (ciphers x MACs x key exchanges) and always in its own order.
``ExactSuitesConnection`` narrows the candidates tlslite-ng computed for the
negotiated version to the spec's list for that version, in the spec's order
(server preference) or the client's order (client preference), just before
tlslite-ng picks the first one the client offered. Nothing else changes:
version negotiation (``settings.versions`` = the spec's versions), groups,
signatures and alerts are tlslite-ng's own. ``ExactSuitesConnection`` hooks
``TLSConnection._server_select_certificate``, a private method of
tlslite-ng 0.8 (pinned ``<0.9``); tests/test_testbed_legacy.py checks that the
served suites are exactly the listed ones.

**Keys.** tlslite-ng's pure-Python RSA key keeps blinding state that is
updated on every signature, so one key object must not sign in two threads at
once: private keys are parsed per worker thread (``threading.local``);
certificate chains are read-only and shared (an LRU).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import trio
from tlslite import X509, HandshakeSettings, TLSConnection, X509CertChain
from tlslite.errors import TLSError
from tlslite.handshakesettings import (
    ALL_CIPHER_NAMES,
    ALL_MAC_NAMES,
    TLS13_PERMITTED_GROUPS,
)
from tlslite.utils.keyfactory import parsePEMKey

from survey.proto import ciphers as registry
from survey.testbed.legacy_tls import check_spec
from survey.testbed.model import TlsSpec
from survey.testbed.pki import LruCache, Pki

WIRE_VERSIONS = {"SSLv3": (3, 0), "TLSv1.0": (3, 1), "TLSv1.1": (3, 2), "TLSv1.2": (3, 3),
                 "TLSv1.3": (3, 4)}
VERSION_NAMES = {v: k for k, v in WIRE_VERSIONS.items()}
DEFAULT_THREADS = 8
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
CLOSE_TIMEOUT = 1.0
READ_SIZE = 4096
# Every key exchange a certificate server can do; the suite lists narrow it down.
_KEY_EXCHANGES = ["rsa", "dhe_rsa", "ecdhe_rsa", "ecdhe_ecdsa"]


# -- settings and credentials (shared with tests/tlsservers.py) -------------------------------

def make_settings(*, min_version: tuple[int, int] = (3, 0), max_version: tuple[int, int] = (3, 3),
                  versions: Iterable[tuple[int, int]] | None = None,
                  cipher_names: Iterable[str] | None = None,
                  key_exchange_names: Iterable[str] | None = None,
                  mac_names: Iterable[str] | None = None, groups: Iterable[str] | None = None,
                  key_shares: Iterable[str] | None = None) -> HandshakeSettings:
    """tlslite-ng server settings; ``None`` leaves tlslite-ng's default."""
    s = HandshakeSettings()
    s.minVersion, s.maxVersion = min_version, max_version
    if versions is not None:
        s.versions = sorted(versions, reverse=True)
    if cipher_names is not None:
        s.cipherNames = list(cipher_names)
    if key_exchange_names is not None:
        s.keyExchangeNames = list(key_exchange_names)
    if mac_names is not None:
        s.macNames = list(mac_names)
    if groups is not None:
        groups = list(groups)
        s.eccCurves = [g for g in groups if not g.startswith("ffdhe")]
        s.dhGroups = [g for g in groups if g.startswith("ffdhe")]
    if key_shares is not None:
        s.keyShares = list(key_shares)
    return s


def settings_for(tls: TlsSpec) -> HandshakeSettings:
    """Settings broad enough for every suite of the spec (``ExactSuitesConnection`` narrows)."""
    wire = sorted(WIRE_VERSIONS[v] for v in tls.versions)
    settings = make_settings(min_version=wire[0], max_version=wire[-1], versions=wire,
                             cipher_names=ALL_CIPHER_NAMES, mac_names=ALL_MAC_NAMES,
                             key_exchange_names=_KEY_EXCHANGES)
    if wire == [(3, 4)]:  # RFC 8446 §4.2.7: a TLS 1.3-only server offers only its groups
        settings.eccCurves = [c for c in settings.eccCurves if c in TLS13_PERMITTED_GROUPS]
    return settings


def load_chain(pem: str | bytes) -> X509CertChain:
    """A PEM chain (leaf first) as tlslite-ng's certificate chain."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    chain = []
    for block in text.split("-----END CERTIFICATE-----"):
        if "-----BEGIN CERTIFICATE-----" in block:
            cert = X509()
            cert.parse(block + "-----END CERTIFICATE-----\n")
            chain.append(cert)
    return X509CertChain(chain)


def load_key(pem: str | bytes) -> Any:
    """A PEM private key (PKCS#8 or traditional) as a tlslite-ng key."""
    return parsePEMKey(pem.decode() if isinstance(pem, bytes) else pem, private=True)


class Credentials:
    """Certificate chains and keys of a world's PKI in tlslite-ng's form."""

    def __init__(self, pki: Pki, *, max_chains: int = 1024) -> None:
        self.pki = pki
        self._chains: LruCache[X509CertChain] = LruCache(max_chains)
        self._lock = threading.Lock()
        self._local = threading.local()

    def chain(self, tls: TlsSpec, names: tuple[str, ...]) -> X509CertChain:
        key = (tls.cert_kind, names, tls.key_type)
        with self._lock:
            chain = self._chains.get(key)
        if chain is None:
            leaf = self.pki.leaf(tls.cert_kind, names, tls.key_type)
            chain = load_chain(leaf.chain_pem())
            with self._lock:
                self._chains.put(key, chain)
        return chain

    def private_key(self, key_type: str) -> Any:
        """This thread's copy of the shared leaf key (see the module docstring)."""
        keys = getattr(self._local, "keys", None)
        if keys is None:
            keys = self._local.keys = {}
        key = keys.get(key_type)
        if key is None:
            key = keys[key_type] = load_key(self.pki.leaf_key_pem(key_type))
        return key


# -- exactly the listed suites ------------------------------------------------------------

@dataclass(frozen=True)
class SuitePlan:
    """Per wire version the suite codes served, in the server's order."""

    suites: dict[tuple[int, int], tuple[int, ...]]
    server_preference: bool

    @classmethod
    def of(cls, tls: TlsSpec) -> SuitePlan:
        plan = {}
        for entry in tls.suites:
            codes = []
            for name in entry.suites:
                suite = registry.by_iana_name(name)
                assert suite is not None, name  # check_spec vouched for it
                codes.append(suite.code)
            plan[WIRE_VERSIONS[entry.version]] = tuple(codes)
        return cls(plan, tls.server_preference)

    def candidates(self, version: tuple[int, int], computed: Iterable[int],
                   client_order: Iterable[int]) -> list[int]:
        allowed = self.suites.get((version[0], version[1]), ())
        usable = set(computed) & set(allowed)
        order = allowed if self.server_preference else client_order
        return [s for s in dict.fromkeys(order) if s in usable]


class ExactSuitesConnection(TLSConnection):
    """A tlslite-ng connection that serves exactly ``plan``'s suites (module docstring)."""

    def __init__(self, sock: Any, plan: SuitePlan) -> None:
        super().__init__(sock)
        self.suite_plan = plan

    def _server_select_certificate(self, settings: Any, client_hello: Any, cipher_suites: Any,
                                   cert_chain: Any, private_key: Any, version: Any) -> Any:
        narrowed = self.suite_plan.candidates(version, cipher_suites, client_hello.cipher_suites)
        return super()._server_select_certificate(settings, client_hello, narrowed, cert_chain,
                                                  private_key, version)


# -- trio glue ------------------------------------------------------------------------------

class _RawSocket:
    """The TCP socket as tlslite-ng sees it.

    While ``deadline`` is set (the handshake, in a worker thread) every call
    blocks at most until then; afterwards the socket is non-blocking and
    tlslite-ng's generators yield instead of waiting.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline: float | None = None

    def _arm(self) -> None:
        if self.deadline is None:
            self.sock.settimeout(0.0)
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TLS handshake deadline")
        self.sock.settimeout(left)

    def recv(self, size: int) -> bytes:
        self._arm()
        return self.sock.recv(size)

    def send(self, data: bytes) -> int:
        self._arm()
        return self.sock.send(data)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class TlsliteStream(trio.abc.Stream):
    """Application data over a finished tlslite-ng handshake, driven from trio."""

    def __init__(self, conn: TLSConnection, raw: _RawSocket) -> None:
        self.conn = conn
        self._raw = raw
        self._closed = False

    @property
    def version(self) -> str:
        return VERSION_NAMES.get(tuple(self.conn.version), str(self.conn.version))

    @property
    def cipher_suite(self) -> str:
        return registry.name_for_code(self.conn.session.cipherSuite)

    async def _drive(self, steps: Iterator[Any]) -> Any:
        if self._closed:
            raise trio.ClosedResourceError
        try:
            for step in steps:
                if isinstance(step, int) and step in (0, 1):
                    if step == 0:
                        await trio.lowlevel.wait_readable(self._raw.sock)
                    else:
                        await trio.lowlevel.wait_writable(self._raw.sock)
                    continue
                return step
        except (TLSError, OSError, ValueError) as exc:
            # ValueError: tlslite-ng's "closed connection" on a write after an alert
            raise trio.BrokenResourceError(f"{type(exc).__name__}: {exc}") from exc
        return None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self._drive(self.conn.readAsync(max_bytes or READ_SIZE))
        return bytes(data or b"")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self._drive(self.conn.writeAsync(bytes(data)))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._raw.sock)

    async def aclose(self) -> None:
        """close_notify (briefly), then the descriptor."""
        if self._closed:
            return
        try:
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._drive(self.conn.closeAsync())
        except trio.BrokenResourceError:
            pass
        finally:
            self.close_now()

    def close_now(self) -> None:
        """Drop the connection's duplicate descriptor without a goodbye (idempotent)."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._raw.sock)
            self._raw.sock.close()


async def server_handshake(stream: trio.SocketStream, tls: TlsSpec, names: tuple[str, ...],
                           credentials: Credentials, *, limiter: trio.CapacityLimiter,
                           timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> TlsliteStream:
    """Run the server side of a tlslite-ng handshake on ``stream``'s connection.

    Raises ``trio.BrokenResourceError`` when the handshake fails (an alert, a
    close, the deadline); the duplicate descriptor is closed by then.
    """
    check_spec(tls)
    chain = credentials.chain(tls, names)
    settings = settings_for(tls)
    sock = socket.socket(fileno=os.dup(stream.socket.fileno()))
    raw = _RawSocket(sock)
    conn = ExactSuitesConnection(raw, SuitePlan.of(tls))

    started = False

    def handshake() -> None:
        nonlocal started
        started = True
        try:
            raw.deadline = time.monotonic() + timeout
            conn.handshakeServer(certChain=chain,
                                 privateKey=credentials.private_key(tls.key_type),
                                 settings=settings)
        except BaseException:
            sock.close()
            raise

    try:
        await trio.to_thread.run_sync(handshake, limiter=limiter, abandon_on_cancel=True)
    except trio.Cancelled:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes an abandoned thread; it closes sock
        except OSError:
            pass
        if not started:  # cancelled while queueing for a thread
            sock.close()
        raise
    except Exception as exc:  # whatever the peer made tlslite-ng raise
        sock.close()
        raise trio.BrokenResourceError(f"{type(exc).__name__}: {exc}") from exc
    raw.deadline = None
    return TlsliteStream(conn, raw)
