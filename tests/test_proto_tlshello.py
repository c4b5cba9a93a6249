"""ClientHello builder and server-answer parser (survey.proto.tlshello)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto import ciphers, tlshello
from survey.proto.tlshello import (
    CLOSED,
    NEED_DATA,
    Alert,
    Certificate,
    HandshakeMessage,
    HelloRetryRequest,
    HelloSpec,
    ServerHello,
    ServerHelloDone,
    ServerHelloParser,
    ServerKeyExchange,
    TLSProtocolError,
    build_client_hello,
    parse_server_response,
)

RANDOM = bytes(range(32))

# --- helpers to write server flights by hand ------------------------------------------


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def ext(t: int, body: bytes) -> bytes:
    return struct.pack("!HH", t, len(body)) + body


def server_hello(
    version: int = 0x0303,
    suite: int = 0xC02F,
    exts: bytes | None = b"",
    random: bytes = RANDOM,
    session_id: bytes = b"",
) -> bytes:
    body = (
        struct.pack("!H", version)
        + random
        + bytes([len(session_id)])
        + session_id
        + struct.pack("!HB", suite, 0)
    )
    if exts is not None:
        body += struct.pack("!H", len(exts)) + exts
    return hs(2, body)


def certificate(*ders: bytes) -> bytes:
    certs = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return hs(11, len(certs).to_bytes(3, "big") + certs)


def ske_ecdhe(group: int = 0x001D) -> bytes:
    return hs(
        12, b"\x03" + struct.pack("!H", group) + b"\x20" + bytes(32) + b"\x04\x01\x00\x02\xaa\xbb"
    )


def ske_dhe(p_bits: int = 2048) -> bytes:
    p = (1 << (p_bits - 1) | 1).to_bytes((p_bits + 7) // 8, "big")
    return hs(
        12, struct.pack("!H", len(p)) + p + b"\x00\x01\x02" + b"\x00\x01\x05" + b"\x00\x02\xaa\xbb"
    )


TLS12_FLIGHT = record(
    22,
    server_hello(exts=ext(0xFF01, b"\x00") + ext(11, b"\x01\x00"))
    + certificate(b"LEAF", b"CA")
    + ske_ecdhe()
    + hs(14, b""),
)


def events_of(data: bytes, eof: bool = True):
    return parse_server_response(data, eof=eof)


# --- builder ---------------------------------------------------------------------------


def decode_hello(data: bytes):
    """Our own strict decode of a ClientHello record: (record version, client version, suites, {ext: body})."""
    ctype, rversion, rlen = struct.unpack("!BHH", data[:5])
    assert ctype == 22 and rlen == len(data) - 5
    msg = data[5:]
    assert msg[0] == 1 and int.from_bytes(msg[1:4], "big") == len(msg) - 4
    body = msg[4:]
    cversion = int.from_bytes(body[:2], "big")
    pos = 34
    sid_len = body[pos]
    pos += 1 + sid_len
    n = int.from_bytes(body[pos : pos + 2], "big")
    suites = [int.from_bytes(body[pos + 2 + i : pos + 4 + i], "big") for i in range(0, n, 2)]
    pos += 2 + n
    assert body[pos : pos + 2] == b"\x01\x00"  # compression: null only
    pos += 2
    exts: dict[int, bytes] = {}
    if pos < len(body):
        total = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        assert total == len(body) - pos
        while pos < len(body):
            t, ln = struct.unpack("!HH", body[pos : pos + 4])
            assert t not in exts
            exts[t] = body[pos + 4 : pos + 4 + ln]
            pos += 4 + ln
    return rversion, cversion, suites, exts, sid_len, len(msg)


def test_sslv3_hello_has_record_version_3_0_and_no_extensions():
    # RFC 6101 §5.2.1 / §5.6.1.2: SSL 3.0 record and client_version 3.0; no extensions exist.
    data = build_client_hello(HelloSpec("SSLv3", (0x000A, 0x0005)), random=RANDOM)
    rv, cv, suites, exts, sid, _ = decode_hello(data)
    assert (rv, cv, exts, sid) == (0x0300, 0x0300, {}, 0)
    assert suites == [0x000A, 0x0005, 0x00FF]  # RFC 5746 §3.3: the SCSV stands in for the extension


@pytest.mark.parametrize(
    "version,cv", [("TLSv1.0", 0x0301), ("TLSv1.1", 0x0302), ("TLSv1.2", 0x0303)]
)
def test_tls12_and_older_hellos_look_like_a_real_client(version, cv):
    data = build_client_hello(
        HelloSpec(version, (0xC013, 0x002F), server_name="MX.Example.test."), random=RANDOM
    )
    rv, got_cv, suites, exts, sid, _ = decode_hello(data)
    assert (rv, got_cv, sid) == (0x0301, cv, 0)
    assert suites[-1] == 0x00FF and 0x5600 not in suites  # no TLS_FALLBACK_SCSV (RFC 7507)
    # RFC 6066 §3: host_name, no trailing dot.
    assert exts[0] == b"\x00\x12\x00\x00\x0fMX.Example.test"
    assert exts[11] == b"\x03\x00\x01\x02"  # RFC 8422 §5.1.2
    groups = exts[10]
    assert int.from_bytes(groups[:2], "big") == len(groups) - 2
    assert b"\x00\x1d" in groups and b"\x00\x17" in groups
    assert 23 in exts and 35 in exts and 22 in exts
    assert 43 not in exts and 51 not in exts
    if version == "TLSv1.2":
        sigalgs = exts[13][2:]
        pairs = {sigalgs[i : i + 2] for i in range(0, len(sigalgs), 2)}
        assert {
            b"\x02\x01",
            b"\x02\x03",
            b"\x04\x01",
            b"\x08\x04",
        } <= pairs  # SHA-1 RSA/ECDSA, SHA-256, PSS
    else:
        assert 13 not in exts  # RFC 5246 §7.4.1.4.1: not offered with earlier versions


def test_tls13_hello_offers_only_tls13_with_two_valid_key_shares():
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    data = build_client_hello(HelloSpec("TLSv1.3", (0x1301, 0x1302)), random=RANDOM)
    rv, cv, _suites, exts, sid, _ = decode_hello(data)
    assert (rv, cv, sid) == (0x0301, 0x0303, 32)  # RFC 8446 §4.1.2, D.4
    assert exts[43] == b"\x02\x03\x04"  # supported_versions: TLS 1.3 only
    assert exts[45] == b"\x01\x01"  # psk_dhe_ke
    assert 13 in exts
    groups = exts[10][2:]
    codes = {int.from_bytes(groups[i : i + 2], "big") for i in range(0, len(groups), 2)}
    assert codes <= tlshello.TLS13_GROUPS  # RFC 8446 §4.2.7: no obsolete curves
    shares = exts[51]
    assert int.from_bytes(shares[:2], "big") == len(shares) - 2
    pos, found = 2, {}
    while pos < len(shares):
        g, ln = struct.unpack("!HH", shares[pos : pos + 4])
        found[g] = shares[pos + 4 : pos + 4 + ln]
        pos += 4 + ln
    assert set(found) == {0x001D, 0x0017}
    x25519.X25519PublicKey.from_public_bytes(found[0x001D])  # valid points, or these raise
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), found[0x0017])


def test_padding_avoids_256_to_511_byte_hellos():
    # RFC 7685 §4 (and the F5 bug it works around).
    for n in range(1, 140):
        data = build_client_hello(HelloSpec("TLSv1.2", tuple(range(1, n + 1))), random=RANDOM)
        *_, exts, _sid, msg_len = decode_hello(data)
        assert not 256 <= msg_len < 512, (n, msg_len)
        if 21 in exts:
            assert msg_len == 512 and set(exts[21]) <= {0}


def test_no_sni_for_ip_literals_and_large_hellos_split_into_records():
    _, _, _, exts, _, _ = decode_hello(
        build_client_hello(HelloSpec("TLSv1.2", (0x002F,), server_name="127.0.0.1"))
    )
    assert 0 not in exts
    with pytest.raises(ValueError):
        build_client_hello(HelloSpec("TLSv1.2", (0x002F,), server_name="bücher.example"))
    big = build_client_hello(HelloSpec("TLSv1.2", tuple(range(1, 9001))))
    assert len(big) > 2**14 and big[0] == 22
    first_len = int.from_bytes(big[3:5], "big")
    assert first_len == 2**14 and big[5 + first_len] == 22


def test_tlslite_decodes_our_hellos():
    import tlslite.messages as messages
    import tlslite.utils.codec as codec
    for version in ciphers.VERSIONS:
        suites = ciphers.scan_candidates(version)[:100]
        data = build_client_hello(HelloSpec(version, suites, server_name="mx.example.test"))
        ch = messages.ClientHello().parse(codec.Parser(data[6:]))
        assert list(ch.cipher_suites) == [*suites, 0x00FF]
        assert ch.server_name == b"mx.example.test" or version == "SSLv3"


def test_hello_spec_rejects_misuse():
    with pytest.raises(ValueError):
        HelloSpec("TLSv1.4", (1,))
    with pytest.raises(ValueError):
        HelloSpec("TLSv1.2", ())
    with pytest.raises(ValueError):
        HelloSpec("TLSv1.2", (0x10000,))


# --- parser: well-formed answers ----------------------------------------------------------


def test_tls12_flight():
    # RFC 5246 §7.3: ServerHello, Certificate, ServerKeyExchange, ServerHelloDone in one record.
    events, err = events_of(TLS12_FLIGHT)
    assert err is None
    sh, cert, ske, done = events
    assert isinstance(sh, ServerHello) and (sh.version, sh.cipher_suite) == ("TLSv1.2", 0xC02F)
    assert sh.cipher_name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" and sh.extensions == (
        0xFF01,
        11,
    )
    assert cert == Certificate((b"LEAF", b"CA"))
    assert ske == ServerKeyExchange("ecdhe", group=0x001D)  # RFC 8422 §5.4 named_curve
    assert done == ServerHelloDone()


def test_each_message_in_its_own_record_and_one_message_across_records():
    msgs = server_hello() + certificate(b"A" * 3000) + ske_ecdhe() + hs(14, b"")
    split = record(22, msgs[:10]) + record(22, msgs[10:2000]) + record(22, msgs[2000:])
    events, err = events_of(split)
    assert err is None and [type(e) for e in events] == [
        ServerHello,
        Certificate,
        ServerKeyExchange,
        ServerHelloDone,
    ]


def test_dhe_key_exchange_reports_the_prime_size():
    # RFC 5246 §7.4.3 ServerDHParams.
    data = record(22, server_hello(suite=0x0033) + certificate(b"L") + ske_dhe(1024) + hs(14, b""))
    events, err = events_of(data)
    assert err is None and events[2] == ServerKeyExchange("dhe", bits=1024)


def test_tls13_server_hello_uses_supported_versions_and_key_share():
    # RFC 8446 §4.1.3, §4.2.1, §4.2.8: legacy_version stays 0x0303.
    exts = ext(43, b"\x03\x04") + ext(51, b"\x00\x1d\x00\x20" + bytes(32))
    data = (
        record(22, server_hello(suite=0x1302, exts=exts, session_id=bytes(32)))
        + record(20, b"\x01")
        + record(23, b"encrypted" * 10)
    )
    events, err = events_of(data)
    assert err is None
    assert events == [
        ServerHello(
            "TLSv1.3",
            0x0304,
            0x1302,
            legacy_version=0x0303,
            group=0x001D,
            session_id=bytes(32),
            extensions=(43, 51),
        )
    ]


def test_hello_retry_request():
    # RFC 8446 §4.1.3-4.1.4: the special random; key_share carries selected_group only.
    exts = ext(43, b"\x03\x04") + ext(51, b"\x00\x18")
    data = record(22, server_hello(suite=0x1301, exts=exts, random=tlshello.HRR_RANDOM)) + record(
        20, b"\x01"
    )
    events, err = events_of(data)
    assert err is None
    assert events == [
        HelloRetryRequest("TLSv1.3", 0x0304, 0x1301, group=0x0018, extensions=(43, 51))
    ]


def test_sslv3_server_hello_without_extensions():
    # RFC 6101 §5.6.1.3: no extensions block at all.
    events, err = events_of(
        record(22, server_hello(version=0x0300, suite=0x000A, exts=None), 0x0300)
    )
    assert err is None and events[0].version == "SSLv3" and events[0].extensions == ()


def test_downgrade_sentinel_is_reported():
    rnd = bytes(24) + bytes.fromhex("444f574e47524401")
    events, _ = events_of(record(22, server_hello(random=rnd)))
    assert events[0].downgrade == "TLSv1.2"


def test_alerts_with_names():
    # RFC 8446 §6: handshake_failure (40), protocol_version (70).
    events, err = events_of(record(21, b"\x02\x28"))
    assert (
        err is None
        and events == [Alert(2, 40)]
        and events[0].name == "handshake_failure"
        and events[0].fatal
    )
    events, err = events_of(
        record(21, b"\x02", 0x0301) + record(21, b"\x46", 0x0301)
    )  # split alert, TLS 1.0
    assert err is None and events[0].name == "protocol_version"
    # After a fatal alert the rest is ignored.
    events, err = events_of(record(21, b"\x02\x46") + b"garbage that is not TLS")
    assert err is None and events == [Alert(2, 70)]
    assert Alert(2, 250).name == "alert_250"


def test_need_data_then_closed():
    p = ServerHelloParser()
    p.feed(TLS12_FLIGHT[:7])
    assert p.next_event() is NEED_DATA
    p.feed(TLS12_FLIGHT[7:])
    assert isinstance(p.next_event(), ServerHello)
    for _ in range(3):
        p.next_event()
    assert p.next_event() is NEED_DATA
    p.feed(b"")
    assert p.next_event() is CLOSED
    with pytest.raises(RuntimeError):
        p.feed(b"more")


def test_hello_request_is_ignored_and_other_flight_messages_are_reported():
    data = record(
        22,
        hs(0, b"")
        + server_hello()
        + certificate(b"L")
        + hs(13, b"\x01\x01\x00\x00\x00\x00")
        + hs(14, b""),
    )
    events, err = events_of(data)
    assert err is None and events[2] == HandshakeMessage(13, 6)


# --- parser: garbage and caps --------------------------------------------------------------


def kind_of(data: bytes, eof: bool = True) -> str | None:
    _, err = events_of(data, eof=eof)
    return err.kind if err else None


def test_plaintext_smtp_answer():
    _, err = events_of(b"500 5.5.1 Unrecognized command\r\n")
    assert err.kind == "plaintext" and err.text.startswith(b"500 5.5.1")


def test_sslv2_server_hello():
    assert kind_of(b"\x80\x2e\x04\x00\x01\x00\x02" + bytes(40)) == "sslv2"


@pytest.mark.parametrize(
    "data,kind",
    [
        (b"\x00\x01\x02\x03\x04\x05", "not_tls"),
        (b"\x16\x04\x01\x00\x02ab", "not_tls"),  # record major version 4
        (b"\x18\x03\x03\x00\x02ab", "not_tls"),  # heartbeat content type
        (record(22, bytes(2**14 + 1)), "record_overflow"),  # RFC 8446 §5.1
        (record(22, hs(11, b"")[:1] + (70000).to_bytes(3, "big")), "message_too_large"),
        (record(22, certificate(b"X")), "unexpected_message"),  # Certificate before ServerHello
        (record(23, b"data"), "unexpected_message"),  # application data in the clear
        (record(22, server_hello() + server_hello()), "unexpected_message"),  # ServerHello twice
        (record(22, server_hello() + hs(14, b"") + hs(14, b"")), "unexpected_message"),
        (
            record(22, server_hello()[:20]) + record(21, b"\x02\x28"),
            "unexpected_message",
        ),  # interleaved
        (record(20, b"\x01"), "unexpected_message"),  # CCS before ServerHello
        (record(22, hs(2, b"\x03\x03" + bytes(10))), "decode_error"),
        (record(22, server_hello(exts=ext(43, b"\x03"))), "decode_error"),
        (
            record(22, server_hello(exts=ext(11, b"") + ext(11, b""))),
            "illegal_parameter",
        ),  # RFC 8446 §4.2
        (
            record(22, server_hello(exts=ext(43, b"\x03\x04")) + certificate(b"X")),
            "unexpected_message",
        ),
        (record(22, server_hello() + hs(11, b"\x00\x00\x05\x00\x00\x09ab")), "decode_error"),
        (record(22, server_hello() + hs(14, b"x")), "decode_error"),
        (TLS12_FLIGHT[:-3], "truncated"),
        (record(22, server_hello())[:-1], "truncated"),
    ],
)
def test_garbage_kinds(data, kind):
    assert kind_of(data) == kind


def test_error_is_sticky_and_events_before_it_survive():
    p = ServerHelloParser()
    p.feed(record(22, server_hello()) + b"\x00garbage")
    assert isinstance(p.next_event(), ServerHello)
    for _ in range(2):
        with pytest.raises(TLSProtocolError) as exc:
            p.next_event()
        assert exc.value.kind == "not_tls"
    p.feed(b"more")  # dropped


def test_message_cap_is_enforced_from_the_header():
    p = ServerHelloParser(max_message=1000)
    p.feed(record(22, server_hello() + hs(11, b"")[:1] + (1001).to_bytes(3, "big")))
    p.next_event()
    with pytest.raises(TLSProtocolError) as exc:
        p.next_event()
    assert exc.value.kind == "message_too_large"


def test_a_long_certificate_chain_within_the_cap_is_read():
    chain = [bytes([i]) * 15000 for i in range(4)]
    msgs = server_hello() + certificate(*chain) + hs(14, b"")
    data = b"".join(record(22, msgs[i : i + 2**14]) for i in range(0, len(msgs), 2**14))
    events, err = events_of(data)
    assert err is None and events[1] == Certificate(tuple(chain))


def test_error_kind_values_are_checked():
    with pytest.raises(ValueError):
        TLSProtocolError("weird", "x")


# --- hypothesis ---------------------------------------------------------------------------------


def feed_chunks(data: bytes, cuts: list[int]):
    p = ServerHelloParser()
    events, error = [], None
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]
    for piece in [*pieces, b""]:
        p.feed(piece)
        while True:
            try:
                ev = p.next_event()
            except TLSProtocolError as exc:
                error = exc.kind
                break
            if ev is NEED_DATA or ev is CLOSED:
                break
            events.append(ev)
        if error:
            break
        assert len(p._buf) <= 5 + tlshello.MAX_CIPHERTEXT and len(p._hs) <= 4 + p.max_message
    return events, error


FLIGHTS = [
    TLS12_FLIGHT,
    record(22, server_hello(exts=ext(43, b"\x03\x04") + ext(51, b"\x00\x1d\x00\x01\x05")))
    + record(20, b"\x01"),
    record(21, b"\x02\x28"),
    b"220 mail.example ESMTP\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FLIGHTS), st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_chunking_never_changes_the_result(flight, cuts):
    assert feed_chunks(flight, cuts) == feed_chunks(flight, [])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=700), max_size=8))
def test_arbitrary_bytes_only_ever_give_events_or_tls_protocol_errors(data, cuts):
    _events, error = feed_chunks(data, cuts)
    assert error is None or error in tlshello.ERROR_KINDS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([22, 21, 20, 23]), st.integers(0, 3))
def test_arbitrary_record_bodies_after_a_valid_header(body, ctype, prefix):
    # Random bytes inside well-framed records reach the message parsers, not only the sniffer.
    lead = [
        b"",
        record(22, server_hello()),
        record(22, server_hello() + certificate(b"L")),
        TLS12_FLIGHT[:-9],
    ][prefix]
    _events, error = feed_chunks(lead + record(ctype, body), [7, 50])
    assert error is None or error in tlshello.ERROR_KINDS


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_arbitrary_server_hello_bodies(body):
    _events, err = parse_server_response(record(22, hs(2, body) + hs(12, body) + hs(11, body)))
    assert err is None or err.kind in tlshello.ERROR_KINDS
