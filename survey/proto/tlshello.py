"""Hand-built ClientHellos (SSLv3..TLS 1.3) and a parser for what the server answers.

Theory of operation
-------------------
Probing versions and cipher suites means sending hellos that OpenSSL here
cannot send (SSLv3, RC4, 3DES, export, NULL...) and reading only the start of
the server's answer: ServerHello (or HelloRetryRequest), for TLS <= 1.2 the
clear Certificate, ServerKeyExchange and ServerHelloDone, or an alert. No key
exchange is ever finished, so nothing here needs keys or a crypto library
beyond the two fixed key shares a TLS 1.3 hello must carry.

Why hand-rolled and not tlslite-ng: the encoder is a page of struct packing
that we control to the byte (record version, extension order, which
extensions an SSLv3 or TLS 1.0 hello leaves out, padding, suites no library
knows), and the parser must be an incremental, capped, sans-IO object whose
only failure is ``TLSProtocolError(kind)``. tlslite-ng's message classes are
built for its own blocking connection object and raise several exception
types on bad input; it stays a test dependency, as an independent server for
the cross-checks.

The builder (``build_client_hello``) takes a ``HelloSpec``: version, suites in
order, SNI, groups, signature algorithms. What each version's hello carries,
to look like a real client (docs/design.md "Known platform pitfalls"):

- SSLv3: record and client version 3.0, the suites and the
  renegotiation SCSV (RFC 5746 §3.3), no extensions at all (RFC 6101 has
  none; some SSLv3 stacks choke on them).
- TLS 1.0/1.1: record version 3.1, SNI (RFC 6066 §3), ec_point_formats and
  supported_groups (RFC 8422 §5.1), session_ticket, encrypt_then_mac,
  extended_master_secret; no signature_algorithms (RFC 5246 §7.4.1.4.1:
  not for clients offering only earlier versions).
- TLS 1.2: the same plus signature_algorithms, SHA-1 and DSA schemes
  included (RFC 5246 §7.4.1.4.1; old servers hold only SHA-1 chains).
- TLS 1.3: legacy_version 3.3, a 32-byte legacy_session_id (RFC 8446 D.4
  middlebox compatibility), supported_versions = [TLS 1.3] only (so a 1.2
  answer means "no 1.3"), key_share with X25519 and P-256 (valid points),
  psk_key_exchange_modes, signature_algorithms, supported_groups.
- A hello whose handshake message would be 256..511 bytes long gets the
  RFC 7685 padding extension up to 512 (the F5 bug OpenSSL and browsers work
  around). No TLS_FALLBACK_SCSV: it would make a server refuse the lower
  version we are probing (RFC 7507).

The parser (``ServerHelloParser``) is an h11-style object, like
``survey.proto.smtp.ReplyParser``: ``feed(bytes)`` parses everything complete
and queues events; ``next_event()`` hands out ``ServerHello``,
``HelloRetryRequest``, ``Certificate``, ``ServerKeyExchange``,
``HandshakeMessage`` (others, by type), ``ServerHelloDone``, ``Alert``, then
``NEED_DATA``, or ``CLOSED`` after a clean end of stream. ``feed(b"")`` is end
of stream. Records may be cut anywhere across reads and handshake messages may
span records (RFC 5246 §6.2.1, RFC 8446 §5.1); the result does not depend on
the chunking.

Peer faults are ``TLSProtocolError(kind)``, raised by ``next_event`` after
the events completed before it; sticky. Kinds:

- ``plaintext``: the stream starts with printable text (an SMTP "500 ..."
  where a handshake was expected); ``error.text`` holds up to 200 bytes.
- ``sslv2``: an SSLv2 record (RFC 6101 E.1 framing, SERVER-HELLO).
- ``not_tls``: other bytes that are no TLS record (content type outside
  20..23, record major version not 3).
- ``record_overflow``: a record longer than 2^14 (+2048 for protected
  records), RFC 5246 §6.2.1/§6.2.3, RFC 8446 §5.1/§5.2.
- ``message_too_large``: a handshake message longer than ``max_message``
  (64 KiB: room for any sane certificate chain), refused from its header.
- ``unexpected_message``: a message out of order or repeated, application
  data in the clear, records interleaved inside a handshake message,
  handshake bytes after a TLS 1.3 ServerHello in the same flight.
- ``decode_error``: a message whose lengths do not add up.
- ``illegal_parameter``: duplicated extensions (RFC 8446 §4.2).
- ``truncated``: end of stream inside a record or message.

Caps: the parser keeps at most one unfinished record (<= 5 + 2^14 + 2048
bytes) and one unfinished handshake message (<= 4 + ``max_message``); each
server-flight message may come once, so a flight is bounded too. After a
fatal alert, a TLS 1.3 ServerHello, a HelloRetryRequest or a ChangeCipherSpec,
the rest of the stream is protected (or irrelevant): headers are still
checked, bodies dropped, alerts in the clear still reported.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from . import ciphers
from .ciphers import SSL3, TLS10, TLS11, TLS12, TLS13, VERSION_CODES
from .sentinels import CLOSED, NEED_DATA, Sentinel

__all__ = [
    "CLOSED",
    "ERROR_KINDS",
    "NEED_DATA",
    "Alert",
    "Certificate",
    "HandshakeMessage",
    "HelloRetryRequest",
    "HelloSpec",
    "ServerHello",
    "ServerHelloDone",
    "ServerHelloParser",
    "ServerKeyExchange",
    "TLSProtocolError",
    "build_client_hello",
    "parse_server_response",
]

# --- constants ---------------------------------------------------------------

# Named groups (RFC 8446 §4.2.7, RFC 8422 §5.1.1, RFC 7919, RFC 7027).
X25519: Final = 0x001D
X448: Final = 0x001E
SECP256R1: Final = 0x0017
SECP384R1: Final = 0x0018
SECP521R1: Final = 0x0019
GROUP_NAMES: Final = {
    0x0001: "sect163k1",
    0x0002: "sect163r1",
    0x0003: "sect163r2",
    0x0004: "sect193r1",
    0x0005: "sect193r2",
    0x0006: "sect233k1",
    0x0007: "sect233r1",
    0x0008: "sect239k1",
    0x0009: "sect283k1",
    0x000A: "sect283r1",
    0x000B: "sect409k1",
    0x000C: "sect409r1",
    0x000D: "sect571k1",
    0x000E: "sect571r1",
    0x000F: "secp160k1",
    0x0010: "secp160r1",
    0x0011: "secp160r2",
    0x0012: "secp192k1",
    0x0013: "secp192r1",
    0x0014: "secp224k1",
    0x0015: "secp224r1",
    0x0016: "secp256k1",
    0x0017: "secp256r1",
    0x0018: "secp384r1",
    0x0019: "secp521r1",
    0x001A: "brainpoolP256r1",
    0x001B: "brainpoolP384r1",
    0x001C: "brainpoolP512r1",
    0x001D: "x25519",
    0x001E: "x448",
    0x001F: "brainpoolP256r1tls13",
    0x0020: "brainpoolP384r1tls13",
    0x0021: "brainpoolP512r1tls13",
    0x0100: "ffdhe2048",
    0x0101: "ffdhe3072",
    0x0102: "ffdhe4096",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x11EC: "X25519MLKEM768",
    0x11EB: "SecP256r1MLKEM768",
}
# Modern first (as OpenSSL orders them), then every legacy curve a server might
# insist on, then the FFDHE groups (RFC 7919).
DEFAULT_GROUPS: Final = (
    X25519,
    SECP256R1,
    X448,
    SECP521R1,
    SECP384R1,
    0x001C,
    0x001B,
    0x001A,
    0x0016,
    0x0015,
    0x0014,
    0x0013,
    0x0012,
    0x000E,
    0x000D,
    0x000C,
    0x000B,
    0x000A,
    0x0009,
    0x0008,
    0x0007,
    0x0006,
    0x0005,
    0x0004,
    0x0003,
    0x0002,
    0x0001,
    0x000F,
    0x0010,
    0x0011,
    0x0100,
    0x0101,
    0x0102,
    0x0103,
    0x0104,
)
# Signature schemes (RFC 8446 §4.2.3; the TLS 1.2 hash/signature pairs of
# RFC 5246 §7.4.1.4.1 share the code space): SHA-2, PSS and EdDSA first, then
# SHA-224 and the SHA-1 and DSA pairs old servers still need.
DEFAULT_SIGNATURE_ALGORITHMS: Final = (
    0x0403,
    0x0503,
    0x0603,
    0x0807,
    0x0808,
    0x0809,
    0x080A,
    0x080B,
    0x0804,
    0x0805,
    0x0806,
    0x0401,
    0x0501,
    0x0601,
    0x0303,
    0x0301,
    0x0302,
    0x0402,
    0x0502,
    0x0602,
    0x0203,
    0x0201,
    0x0202,
)
DEFAULT_KEY_SHARES: Final = (X25519, SECP256R1)
# RFC 8446 §4.2.7: the other curves are "obsolete_RESERVED" and MUST NOT be
# offered by TLS 1.3 (tlslite-ng refuses such a hello with illegal_parameter),
# so a TLS 1.3 hello keeps only these from ``HelloSpec.groups``.
TLS13_GROUPS: Final = frozenset(
    {
        X25519,
        X448,
        SECP256R1,
        SECP384R1,
        SECP521R1,
        0x001F,
        0x0020,
        0x0021,
        0x0100,
        0x0101,
        0x0102,
        0x0103,
        0x0104,
        0x11EB,
        0x11EC,
    }
)

# Extension types.
EXT_SERVER_NAME: Final = 0
EXT_SUPPORTED_GROUPS: Final = 10
EXT_EC_POINT_FORMATS: Final = 11
EXT_SIGNATURE_ALGORITHMS: Final = 13
EXT_PADDING: Final = 21
EXT_ENCRYPT_THEN_MAC: Final = 22
EXT_EXTENDED_MASTER_SECRET: Final = 23
EXT_SESSION_TICKET: Final = 35
EXT_SUPPORTED_VERSIONS: Final = 43
EXT_PSK_KEY_EXCHANGE_MODES: Final = 45
EXT_KEY_SHARE: Final = 51
EXT_RENEGOTIATION_INFO: Final = 0xFF01

# Content types (RFC 8446 §5.1) and handshake types (§4).
CT_CHANGE_CIPHER_SPEC: Final = 20
CT_ALERT: Final = 21
CT_HANDSHAKE: Final = 22
CT_APPLICATION_DATA: Final = 23
HT_HELLO_REQUEST: Final = 0
HT_CLIENT_HELLO: Final = 1
HT_SERVER_HELLO: Final = 2
HT_CERTIFICATE: Final = 11
HT_SERVER_KEY_EXCHANGE: Final = 12
HT_CERTIFICATE_REQUEST: Final = 13
HT_SERVER_HELLO_DONE: Final = 14
HT_CERTIFICATE_STATUS: Final = 22

# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM: Final = hashlib.sha256(b"HelloRetryRequest").digest()
# RFC 8446 §4.1.3: downgrade sentinels in the last 8 bytes of ServerHello.random.
_DOWNGRADE_TLS12: Final = bytes.fromhex("444f574e47524401")
_DOWNGRADE_TLS11: Final = bytes.fromhex("444f574e47524400")

MAX_PLAINTEXT: Final = 2**14  # RFC 5246 §6.2.1, RFC 8446 §5.1
MAX_CIPHERTEXT: Final = 2**14 + 2048  # RFC 5246 §6.2.3 (RFC 8446 §5.2 allows only +256)
MAX_MESSAGE: Final = 64 * 1024  # one handshake message, a Certificate chain included
MAX_TEXT: Final = 200  # bytes of plaintext kept in a `plaintext` error

ALERT_NAMES: Final = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
    121: "ech_required",
}

ERROR_KINDS: Final = frozenset(
    {
        "plaintext",
        "sslv2",
        "not_tls",
        "record_overflow",
        "message_too_large",
        "unexpected_message",
        "decode_error",
        "illegal_parameter",
        "truncated",
    }
)


class TLSProtocolError(Exception):
    """The server's bytes are not a TLS answer we can read: its fault, not ours.

    ``kind`` is one of ``ERROR_KINDS``; ``text`` keeps the start of a
    plaintext answer (``plaintext`` kind only), as bytes, for the record.
    """

    def __init__(self, kind: str, message: str, text: bytes = b"") -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown TLSProtocolError kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.text = text




# --- the builder -----------------------------------------------------------------


@dataclass(frozen=True)
class HelloSpec:
    """What one ClientHello offers. ``version`` is the only version offered."""

    version: str
    cipher_suites: tuple[int, ...]
    server_name: str | None = None
    groups: tuple[int, ...] = DEFAULT_GROUPS
    signature_algorithms: tuple[int, ...] = DEFAULT_SIGNATURE_ALGORITHMS
    key_share_groups: tuple[int, ...] = DEFAULT_KEY_SHARES
    renegotiation_scsv: bool = True

    def __post_init__(self) -> None:
        if self.version not in VERSION_CODES:
            raise ValueError(f"unknown version {self.version!r}")
        suites = tuple(self.cipher_suites)
        if (
            not suites
            or len(suites) > 32000
            or not all(isinstance(c, int) and 0 <= c <= 0xFFFF for c in suites)
        ):
            raise ValueError("cipher_suites must be 1..32000 codes in 0..0xFFFF")
        object.__setattr__(self, "cipher_suites", suites)


def _u8(data: bytes) -> bytes:
    if len(data) > 0xFF:
        raise ValueError("vector too long for a 1-byte length")
    return bytes([len(data)]) + data


def _u16(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("vector too long for a 2-byte length")
    return struct.pack("!H", len(data)) + data


def _u24(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:] + data


def _codes(codes: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("!H", c) for c in codes)


def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!H", ext_type) + _u16(body)


def _sni_host(name: str | None) -> bytes | None:
    """RFC 6066 §3: a DNS host name in ASCII, no trailing dot, never an IP literal."""
    if not name:
        return None
    name = name.rstrip(".")
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("server_name must be an A-label (ASCII) host name") from None
    if not raw or name.replace(".", "").isdigit() or ":" in name:
        return None
    return raw


# Private keys for the fixed key shares: we never finish a handshake, so the
# shares only need to be valid points (a server that checks them before its
# ServerHello must not fail on them).
_X25519_PRIVATE = bytes(range(1, 33))
_P256_PRIVATE = 0x5EC0_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0001


@cache
def key_share_public(group: int) -> bytes:
    """A valid public value for ``group`` (X25519, X448, P-256/384/521)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    if group == X25519:
        return (
            x25519.X25519PrivateKey.from_private_bytes(_X25519_PRIVATE)
            .public_key()
            .public_bytes(*raw)
        )
    if group == X448:
        return (
            x448.X448PrivateKey.from_private_bytes(bytes(range(1, 57)))
            .public_key()
            .public_bytes(*raw)
        )
    curves = {SECP256R1: ec.SECP256R1(), SECP384R1: ec.SECP384R1(), SECP521R1: ec.SECP521R1()}
    if group not in curves:
        raise ValueError(f"no key share for group 0x{group:04x}")
    key = ec.derive_private_key(_P256_PRIVATE, curves[group])
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def build_client_hello(
    spec: HelloSpec, *, random: bytes | None = None, session_id: bytes | None = None
) -> bytes:
    """The bytes to send: one or more handshake records carrying the ClientHello.

    ``random`` (32 bytes) and ``session_id`` default to fresh random values
    (TLS 1.3 hellos get a 32-byte session id, others an empty one); pass them
    for reproducible bytes in tests.
    """
    version = spec.version
    if random is None:
        random = os.urandom(32)
    if len(random) != 32:
        raise ValueError("random must be 32 bytes")
    if session_id is None:
        session_id = os.urandom(32) if version == TLS13 else b""
    if len(session_id) > 32:
        raise ValueError("session_id is at most 32 bytes")

    suites = list(spec.cipher_suites)
    if spec.renegotiation_scsv and ciphers.TLS_EMPTY_RENEGOTIATION_INFO_SCSV not in suites:
        suites.append(ciphers.TLS_EMPTY_RENEGOTIATION_INFO_SCSV)  # RFC 5746 §3.3
    client_version = (
        VERSION_CODES[SSL3] if version == SSL3 else VERSION_CODES[min(version, TLS12, key=_vkey)]
    )
    head = (
        struct.pack("!H", client_version)
        + random
        + _u8(session_id)
        + _u16(_codes(tuple(suites)))
        + b"\x01\x00"
    )

    if version == SSL3:
        body = head  # RFC 6101: no extensions
    else:
        exts = _extensions(spec)
        body = head + _u16(exts)
        total = 4 + len(body)
        if 256 <= total < 512:  # RFC 7685 §4 / the F5 workaround: pad to 512
            pad = max(0, 512 - total - 4)
            exts += _ext(EXT_PADDING, bytes(pad))
            body = head + _u16(exts)
    message = bytes([HT_CLIENT_HELLO]) + _u24(body)

    record_version = (
        VERSION_CODES[SSL3] if version == SSL3 else VERSION_CODES[TLS10]
    )  # RFC 8446 §5.1
    out = bytearray()
    for i in range(0, len(message), MAX_PLAINTEXT):
        chunk = message[i : i + MAX_PLAINTEXT]
        out += struct.pack("!BHH", CT_HANDSHAKE, record_version, len(chunk)) + chunk
    return bytes(out)


def _vkey(v: str) -> int:
    return ciphers.version_index(v)


def _extensions(spec: HelloSpec) -> bytes:
    version = spec.version
    exts = bytearray()
    host = _sni_host(spec.server_name)
    if host is not None:
        exts += _ext(EXT_SERVER_NAME, _u16(b"\x00" + _u16(host)))
    exts += _ext(EXT_EC_POINT_FORMATS, _u8(b"\x00\x01\x02"))
    groups = tuple(g for g in spec.groups if g in TLS13_GROUPS) if version == TLS13 else spec.groups
    exts += _ext(EXT_SUPPORTED_GROUPS, _u16(_codes(groups)))
    if version != TLS13:
        exts += _ext(EXT_SESSION_TICKET, b"")
        exts += _ext(EXT_ENCRYPT_THEN_MAC, b"")
        exts += _ext(EXT_EXTENDED_MASTER_SECRET, b"")
    if version in (TLS12, TLS13):
        exts += _ext(EXT_SIGNATURE_ALGORITHMS, _u16(_codes(spec.signature_algorithms)))
    if version == TLS13:
        exts += _ext(EXT_SUPPORTED_VERSIONS, _u8(struct.pack("!H", VERSION_CODES[TLS13])))
        exts += _ext(EXT_PSK_KEY_EXCHANGE_MODES, _u8(b"\x01"))  # psk_dhe_ke
        shares = b"".join(
            struct.pack("!H", g) + _u16(key_share_public(g)) for g in spec.key_share_groups
        )
        exts += _ext(EXT_KEY_SHARE, _u16(shares))
    return bytes(exts)


# --- events ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServerHello:
    """RFC 5246 §7.4.1.3 / RFC 8446 §4.1.3.

    ``version`` is the negotiated version by name (``supported_versions``
    when present, else ``legacy_version``), None when it is no SSLv3..TLS 1.3
    code; ``version_code`` is the raw number. ``group`` is the key_share group
    (TLS 1.3). ``downgrade`` names the RFC 8446 sentinel in the random, if any.
    """

    version: str | None
    version_code: int
    cipher_suite: int
    legacy_version: int = 0x0303
    group: int | None = None
    compression: int = 0
    session_id: bytes = b""
    extensions: tuple[int, ...] = ()
    downgrade: str | None = None
    random: bytes = field(default=b"", compare=False, repr=False)

    @property
    def cipher_name(self) -> str:
        return ciphers.name_for_code(self.cipher_suite)


@dataclass(frozen=True)
class HelloRetryRequest:
    """RFC 8446 §4.1.4: the server speaks TLS 1.3 and wants another key share."""

    version: str | None
    version_code: int
    cipher_suite: int
    group: int | None = None  # selected_group
    extensions: tuple[int, ...] = ()

    @property
    def cipher_name(self) -> str:
        return ciphers.name_for_code(self.cipher_suite)


@dataclass(frozen=True)
class Certificate:
    """RFC 5246 §7.4.2 (clear in TLS <= 1.2): the chain as sent, leaf first, DER."""

    chain: tuple[bytes, ...]


@dataclass(frozen=True)
class ServerKeyExchange:
    """RFC 8422 §5.4 / RFC 5246 §7.4.3: what the ephemeral key exchange uses.

    ``kind``: ``ecdhe`` (``group`` = named curve), ``ecdhe_explicit``
    (explicit curve parameters), ``dhe`` (``bits`` = size of p),
    ``rsa_export`` (``bits`` = temporary RSA modulus), ``other``.
    """

    kind: str
    group: int | None = None
    bits: int | None = None


@dataclass(frozen=True)
class HandshakeMessage:
    """Another server-flight message (CertificateRequest, CertificateStatus), by type."""

    msg_type: int
    length: int


@dataclass(frozen=True)
class ServerHelloDone:
    """RFC 5246 §7.4.5: the server's first flight is complete."""


@dataclass(frozen=True)
class Alert:
    """RFC 5246 §7.2 / RFC 8446 §6."""

    level: int
    description: int

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.description, f"alert_{self.description}")

    @property
    def fatal(self) -> bool:
        return self.level != 1


Event = (
    ServerHello
    | HelloRetryRequest
    | Certificate
    | ServerKeyExchange
    | HandshakeMessage
    | ServerHelloDone
    | Alert
)


# --- the parser -------------------------------------------------------------------

_START, _SH_SEEN, _DONE_FLIGHT, _PROTECTED, _STOPPED = range(5)
_FLIGHT_TYPES = {
    HT_CERTIFICATE,
    HT_SERVER_KEY_EXCHANGE,
    HT_CERTIFICATE_REQUEST,
    HT_SERVER_HELLO_DONE,
    HT_CERTIFICATE_STATUS,
}


class ServerHelloParser:
    """Incremental parser of a server's answer to one ClientHello (see module doc)."""

    def __init__(self, *, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()  # at most one unfinished record
        self._hs = bytearray()  # at most one unfinished handshake message
        self._alert = bytearray()  # an alert split across records (TLS <= 1.2)
        self._events: deque[Event] = deque()
        self._error: TLSProtocolError | None = None
        self._state = _START
        self._started = False
        self._eof = False
        self._seen: set[int] = set()
        self._suite: int | None = None

    # public interface

    def feed(self, data: bytes) -> None:
        """Hand over what a read returned; ``b""`` means end of stream."""
        if self._eof:
            raise RuntimeError("feed() after end of stream")
        if self._error is not None:
            return
        if self._state == _STOPPED:
            self._eof = self._eof or not data
            return
        try:
            if not data:
                self._eof = True
                self._finish()
                return
            self._buf += data
            self._parse_records()
        except TLSProtocolError as exc:
            self._error = exc
            self._buf.clear()
            self._hs.clear()

    def next_event(self) -> Event | Sentinel:
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return CLOSED if self._eof else NEED_DATA

    @property
    def negotiated_suite(self) -> int | None:
        return self._suite

    # records

    def _parse_records(self) -> None:
        buf = self._buf
        pos = 0
        while self._state != _STOPPED:
            if not self._started and not self._sniff(bytes(buf[:MAX_TEXT])):
                break
            if len(buf) - pos < 5:
                break
            ctype, major, length = buf[pos], buf[pos + 1], struct.unpack_from("!H", buf, pos + 3)[0]
            if (
                ctype not in (CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA)
                or major != 3
            ):
                raise TLSProtocolError(
                    "not_tls", f"record header {bytes(buf[pos : pos + 5]).hex()}"
                )
            limit = (
                MAX_CIPHERTEXT
                if (ctype == CT_APPLICATION_DATA or self._state == _PROTECTED)
                else MAX_PLAINTEXT
            )
            if length > limit:
                raise TLSProtocolError(
                    "record_overflow", f"record of {length} bytes (limit {limit})"
                )
            if len(buf) - pos < 5 + length:
                break
            body = bytes(buf[pos + 5 : pos + 5 + length])
            pos += 5 + length
            self._record(ctype, body)
        if self._state == _STOPPED:
            buf.clear()  # after a fatal alert or close_notify nothing else counts
        else:
            del buf[:pos]

    def _sniff(self, head: bytes) -> bool:
        """Decide from the first bytes whether this is TLS at all; True once it is."""
        first = head[0]
        if first in (CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA):
            self._started = True
            return True
        if first & 0x80:  # RFC 6101 E.1: SSLv2 two-byte header, then the message type
            if len(head) < 3:
                return False
            if head[2] == 4:
                raise TLSProtocolError("sslv2", "an SSLv2 SERVER-HELLO")
            raise TLSProtocolError("not_tls", f"starts with {head[:3].hex()}")
        if 0x20 <= first < 0x7F or first in (0x09, 0x0A, 0x0D):
            raise TLSProtocolError(
                "plaintext", "plaintext where a TLS record was expected", text=head[:MAX_TEXT]
            )
        raise TLSProtocolError("not_tls", f"starts with {head[:1].hex()}")

    def _record(self, ctype: int, body: bytes) -> None:
        if ctype != CT_HANDSHAKE and self._hs:
            # RFC 8446 §5.1: handshake messages must not be interleaved with other records.
            raise TLSProtocolError(
                "unexpected_message", "record inside an unfinished handshake message"
            )
        if ctype != CT_ALERT and self._alert:
            raise TLSProtocolError("unexpected_message", "record inside an unfinished alert")
        if ctype == CT_ALERT:
            self._alert_bytes(body)
        elif self._state in (_PROTECTED, _STOPPED):
            return  # protected records (or after a fatal alert): nothing for us
        elif ctype == CT_CHANGE_CIPHER_SPEC:
            if self._state == _START or body != b"\x01":
                raise TLSProtocolError(
                    "unexpected_message", "ChangeCipherSpec before ServerHello or malformed"
                )
            self._state = _PROTECTED  # what follows is encrypted
        elif ctype == CT_APPLICATION_DATA:
            raise TLSProtocolError("unexpected_message", "application data in the clear")
        else:
            self._handshake_bytes(body)

    def _alert_bytes(self, body: bytes) -> None:
        if self._state == _STOPPED:
            return
        if self._state == _PROTECTED and len(body) != 2 and not self._alert:
            return  # an encrypted alert record is opaque to us; drop it
        self._alert += body
        while len(self._alert) >= 2 and self._state != _STOPPED:
            level, desc = self._alert[0], self._alert[1]
            del self._alert[:2]
            alert = Alert(level, desc)
            self._events.append(alert)
            if alert.fatal or desc == 0:
                self._state = _STOPPED
                self._alert.clear()

    # handshake messages

    def _handshake_bytes(self, body: bytes) -> None:
        self._hs += body
        while len(self._hs) >= 4:
            msg_type = self._hs[0]
            length = int.from_bytes(self._hs[1:4], "big")
            if length > self.max_message:
                raise TLSProtocolError(
                    "message_too_large", f"handshake message type {msg_type} of {length} bytes"
                )
            if len(self._hs) < 4 + length:
                return
            msg = bytes(self._hs[4 : 4 + length])
            del self._hs[: 4 + length]
            self._message(msg_type, msg)
            if self._state in (_PROTECTED, _STOPPED) and self._hs:
                raise TLSProtocolError(
                    "unexpected_message", "clear handshake data after the last clear message"
                )

    def _message(self, msg_type: int, msg: bytes) -> None:
        if msg_type == HT_HELLO_REQUEST and not msg:
            return  # RFC 5246 §7.4.1.1: ignored during a handshake
        if self._state == _START:
            if msg_type != HT_SERVER_HELLO:
                raise TLSProtocolError(
                    "unexpected_message", f"handshake type {msg_type} before ServerHello"
                )
            self._server_hello(msg)
            return
        if self._state != _SH_SEEN or msg_type not in _FLIGHT_TYPES or msg_type in self._seen:
            raise TLSProtocolError("unexpected_message", f"handshake type {msg_type} here")
        self._seen.add(msg_type)
        if msg_type == HT_CERTIFICATE:
            self._events.append(Certificate(_parse_certificate(msg)))
        elif msg_type == HT_SERVER_KEY_EXCHANGE:
            self._events.append(_parse_server_key_exchange(msg, self._suite))
        elif msg_type == HT_SERVER_HELLO_DONE:
            if msg:
                raise TLSProtocolError("decode_error", "ServerHelloDone with a body")
            self._events.append(ServerHelloDone())
            self._state = _DONE_FLIGHT
        else:
            self._events.append(HandshakeMessage(msg_type, len(msg)))

    def _server_hello(self, msg: bytes) -> None:
        r = _Reader(msg)
        legacy_version = r.u16()
        random = r.take(32)
        session_id = r.vec8()
        if len(session_id) > 32:
            raise TLSProtocolError("decode_error", "session_id longer than 32 bytes")
        suite = r.u16()
        compression = r.u8()
        exts: dict[int, bytes] = {}
        order: list[int] = []
        if r.left:
            block = _Reader(r.vec16())
            r.end()
            while block.left:
                ext_type = block.u16()
                data = block.vec16()
                if ext_type in exts:
                    raise TLSProtocolError("illegal_parameter", f"extension {ext_type} twice")
                exts[ext_type] = data
                order.append(ext_type)
        version_code = legacy_version
        if EXT_SUPPORTED_VERSIONS in exts:
            sv = _Reader(exts[EXT_SUPPORTED_VERSIONS])
            version_code = sv.u16()
            sv.end()
        version = ciphers.version_name(version_code)
        self._suite = suite
        if random == HRR_RANDOM:
            group = None
            if EXT_KEY_SHARE in exts:
                ks = _Reader(exts[EXT_KEY_SHARE])
                group = ks.u16()
                ks.end()
            self._events.append(
                HelloRetryRequest(version, version_code, suite, group, tuple(order))
            )
            self._state = _PROTECTED  # the server now waits for our second hello
            return
        group = None
        if EXT_KEY_SHARE in exts:
            ks = _Reader(exts[EXT_KEY_SHARE])
            group = ks.u16()
            if not ks.vec16():
                raise TLSProtocolError("decode_error", "empty key_exchange")
            ks.end()
        tail = random[-8:]
        downgrade = (
            TLS12 if tail == _DOWNGRADE_TLS12 else TLS11 if tail == _DOWNGRADE_TLS11 else None
        )
        self._events.append(
            ServerHello(
                version=version,
                version_code=version_code,
                cipher_suite=suite,
                legacy_version=legacy_version,
                group=group,
                compression=compression,
                session_id=session_id,
                extensions=tuple(order),
                downgrade=downgrade,
                random=random,
            )
        )
        self._state = _PROTECTED if version_code >= VERSION_CODES[TLS13] else _SH_SEEN

    def _finish(self) -> None:
        if self._state in (_PROTECTED, _STOPPED):
            return  # the part we read is complete; a cut protected record is not our business
        if self._buf or self._hs or self._alert:
            raise TLSProtocolError("truncated", "end of stream inside a record or message")


class _Reader:
    """Bounds-checked reads; any shortfall is the peer's ``decode_error``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left:
            raise TLSProtocolError("decode_error", "length runs past the end of the message")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())

    def vec24(self) -> bytes:
        return self.take(self.u24())

    def end(self) -> None:
        if self.left:
            raise TLSProtocolError("decode_error", f"{self.left} trailing bytes")


def _parse_certificate(msg: bytes) -> tuple[bytes, ...]:
    r = _Reader(msg)
    certs = _Reader(r.vec24())
    r.end()
    chain = []
    while certs.left:
        der = certs.vec24()
        if not der:
            raise TLSProtocolError("decode_error", "empty certificate")
        chain.append(der)
    return tuple(chain)


def _parse_server_key_exchange(msg: bytes, suite_code: int | None) -> ServerKeyExchange:
    suite = ciphers.by_code(suite_code) if suite_code is not None else None
    if suite is None:
        return ServerKeyExchange("other")
    r = _Reader(msg)
    kx = suite.kx
    if kx in ("DHE_PSK", "ECDHE_PSK"):
        r.vec16()  # psk_identity_hint (RFC 4279 §3, RFC 5489 §2)
    if kx in ("ECDHE", "ECDH_anon", "ECDHE_PSK"):
        curve_type = r.u8()
        if curve_type == 3:  # named_curve
            group = r.u16()
            if not r.vec8():
                raise TLSProtocolError("decode_error", "empty ECDH point")
            return ServerKeyExchange("ecdhe", group=group)
        return ServerKeyExchange("ecdhe_explicit")
    if kx in ("DHE", "DH_anon", "DHE_PSK"):
        p = r.vec16()
        if not p or not r.vec16() or not r.vec16():
            raise TLSProtocolError("decode_error", "empty DH parameter")
        return ServerKeyExchange("dhe", bits=int.from_bytes(p, "big").bit_length())
    if kx == "RSA" and suite.export:
        modulus = r.vec16()
        if not modulus or not r.vec16():
            raise TLSProtocolError("decode_error", "empty RSA parameter")
        return ServerKeyExchange("rsa_export", bits=int.from_bytes(modulus, "big").bit_length())
    return ServerKeyExchange("other")


def parse_server_response(
    data: bytes, *, eof: bool = True
) -> tuple[list[Event], TLSProtocolError | None]:
    """One-shot helper: every event in ``data`` and the error that ended it, if any."""
    parser = ServerHelloParser()
    parser.feed(data)
    if eof:
        parser.feed(b"")
    events: list[Event] = []
    while True:
        try:
            ev = parser.next_event()
        except TLSProtocolError as exc:
            return events, exc
        if ev is NEED_DATA or ev is CLOSED:
            return events, None
        events.append(ev)
