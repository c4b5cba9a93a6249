"""survey.proto.smtp: reply parser, STARTTLS hygiene, EHLO, refusal classes.

Cases cite the RFC section they come from; the conformance vectors
(tests/test_vectors.py) cover the shared cases, these go beyond them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.proto.smtp import (
    CLOSED,
    ERROR_KINDS,
    MAX_LINE,
    NEED_DATA,
    Ehlo,
    Reply,
    ReplyParser,
    SMTPProtocolError,
    classify_greeting,
    classify_refusal,
    classify_starttls,
    names_rate_limit,
    parse_ehlo,
    parse_stream,
    starttls_refusal_status,
)
from tests.vectorcheck.smtp import run as run_like_scanner


def replies_of(data: bytes, **caps: int) -> list[Reply]:
    replies, error = parse_stream([data], **caps)
    assert error is None, error
    return replies


def error_of(data: bytes, **caps: int) -> tuple[list[Reply], str | None]:
    replies, error = parse_stream([data], **caps)
    return replies, error.kind if error else None


def reply(code: int, *lines: str) -> Reply:
    return Reply(code, lines or ("",))


# -- Reply grammar (RFC 5321 §4.2, §4.2.1) ------------------------------------


class TestReplyGrammar:
    def test_code_alone_is_a_final_line(self):
        # RFC 5321 §4.2: Reply-code [ SP textstring ] CRLF -- the text is optional
        assert replies_of(b"250\r\n") == [reply(250, "")]

    def test_continuation_with_empty_text(self):
        # RFC 5321 §4.2: Reply-code "-" [ textstring ] CRLF
        assert replies_of(b"250-\r\n250 done\r\n") == [reply(250, "", "done")]

    def test_multiline_reply_is_one_reply(self):
        # RFC 5321 §4.2.1: "250-First line / 250-Second line / 250 Last line"
        data = b"250-First line\r\n250-Second line\r\n250-234 Text beginning with numbers\r\n250 The last line\r\n"
        assert replies_of(data) == [
            reply(250, "First line", "Second line", "234 Text beginning with numbers", "The last line")
        ]

    def test_text_that_starts_with_digits_is_text(self):
        # RFC 5321 §4.2.1 example: "250-234 Text beginning with numbers"
        (r,) = replies_of(b"250-234 x\r\n250 y\r\n")
        assert r.lines == ("234 x", "y")

    def test_inconsistent_codes_keep_earlier_replies(self):
        # RFC 5321 §4.2.1: "the reply code on each of the lines MUST be the same"
        replies, kind = error_of(b"220 hi\r\n250-a\r\n251 b\r\n")
        assert replies == [reply(220, "hi")] and kind == "inconsistent_code"

    def test_second_digit_six_to_nine_is_accepted(self):
        # RFC 5321 §4.2 prose (five values of the second digit) vs ABNF %x30-35:
        # README decision 6 accepts 6-9
        assert [r.code for r in replies_of(b"260 a\r\n299 b\r\n599 c\r\n")] == [260, 299, 599]

    @pytest.mark.parametrize("line", [b"100 x", b"000 x", b"600 x", b"999 x", b"199"])
    def test_first_digit_outside_two_to_five(self, line):
        # RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
        assert error_of(line + b"\r\n") == ([], "code_out_of_range")

    @pytest.mark.parametrize("line", [b"abc x", b"2x0 x", b" 250 x", b"25a", b"\xb2\xb5\xb0 x", b"+25 x"])
    def test_non_digit_code(self, line):
        # RFC 5321 §4.2: the line starts with three digits
        assert error_of(line + b"\r\n") == ([], "bad_code")

    @pytest.mark.parametrize("line", [b"", b"2", b"25", b"\r"])
    def test_too_short(self, line):
        assert error_of(line + b"\r\n") == ([], "syntax")

    @pytest.mark.parametrize("line", [b"250OK", b"2500 x", b"250\tOK", b"250_OK", b"250:"])
    def test_bad_separator(self, line):
        # RFC 5321 §4.2: SP, "-" or CRLF after the code
        assert error_of(line + b"\r\n") == ([], "syntax")

    def test_blank_line_after_a_reply(self):
        assert error_of(b"250 OK\r\n\r\n") == ([reply(250, "OK")], "syntax")

    def test_bare_lf_is_a_line_end(self):
        # RFC 5321 §2.3.8 forbids it; README decision 6 accepts it, mixed with CRLF
        assert replies_of(b"250-a\n250-b\r\n250 c\n") == [reply(250, "a", "b", "c")]

    def test_lone_cr_is_text(self):
        # only CR immediately before LF belongs to the line end
        assert replies_of(b"250 a\rb\r\r\n") == [reply(250, "a\rb\r")]

    def test_text_kept_as_sent(self):
        # RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126); blanks are text too
        assert replies_of(b"250  two spaces\t \r\n") == [reply(250, " two spaces\t ")]

    def test_invalid_utf8_becomes_replacement_character(self):
        # RFC 6531 servers send UTF-8; anything else decodes with U+FFFD
        assert replies_of(b"250 caf\xe9 \xc3\xa9\r\n")[0].lines == ("caf\ufffd \u00e9",)

    def test_raw_keeps_exact_octets(self):
        data = b"250-a\n250 b\r\n"
        (r,) = replies_of(data)
        assert r.raw == data and r.text == "a\nb"

    def test_pipelined_replies_in_order(self):
        # RFC 2920 §3.2 with RFC 5321 §4.2: several replies in one read
        data = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"
        assert [r.code for r in replies_of(data)] == [250, 250, 354]


# -- Stream behaviour: NEED_DATA, EOF, stickiness -----------------------------


class TestStream:
    def test_need_data_until_the_final_line(self):
        parser = ReplyParser()
        for piece in (b"2", b"50-mx\r", b"\n250", b" OK\r"):
            parser.feed(piece)
            assert parser.next_event() is NEED_DATA
        parser.feed(b"\n")
        assert parser.next_event() == reply(250, "mx", "OK")
        assert parser.next_event() is NEED_DATA

    def test_clean_eof_is_closed(self):
        parser = ReplyParser()
        parser.feed(b"220 hi\r\n")
        parser.feed(b"")  # a read returning b"" is end of stream
        assert parser.next_event() == reply(220, "hi")
        assert parser.next_event() is CLOSED
        assert parser.next_event() is CLOSED

    def test_eof_inside_a_multiline_reply_is_incomplete(self):
        # RFC 5321 §4.2: the reply ends with the line without "-"
        assert error_of(b"250-a\r\n") == ([], "incomplete")

    def test_eof_after_cr_is_incomplete(self):
        assert error_of(b"250 OK\r") == ([], "incomplete")

    def test_error_is_sticky_and_later_bytes_are_dropped(self):
        parser = ReplyParser()
        parser.feed(b"199 x\r\n")
        with pytest.raises(SMTPProtocolError) as first:
            parser.next_event()
        parser.feed(b"250 OK\r\n")
        assert parser.buffered_bytes == 0
        with pytest.raises(SMTPProtocolError) as second:
            parser.next_event()
        assert first.value is second.value and first.value.kind == "code_out_of_range"

    def test_feed_after_eof_is_our_bug(self):
        parser = ReplyParser()
        parser.eof()
        with pytest.raises(RuntimeError):
            parser.feed(b"250 OK\r\n")

    def test_accepts_bytearray_and_memoryview(self):
        parser = ReplyParser()
        parser.feed(bytearray(b"250-a\r\n"))
        parser.feed(memoryview(b"250 b\r\n"))
        assert parser.next_event() == reply(250, "a", "b")

    def test_error_kinds_are_closed_set(self):
        with pytest.raises(ValueError):
            SMTPProtocolError("nope", "x")
        assert {"incomplete", "syntax", "bad_code", "code_out_of_range", "inconsistent_code",
                "line_too_long", "too_many_lines", "data_after_starttls"} <= ERROR_KINDS

    @pytest.mark.parametrize("caps", [{"max_line": 3}, {"max_lines": 0},
                                      {"max_line": 100, "max_reply_bytes": 99}])
    def test_caps_are_validated(self, caps):
        with pytest.raises(ValueError):
            ReplyParser(**caps)


# -- Caps (RFC 5321 §4.5.3.1) --------------------------------------------------


class TestCaps:
    def test_512_octet_line_is_accepted(self):
        # RFC 5321 §4.5.3.1.5: reply lines up to 512 octets, CRLF included
        line = b"250 " + b"x" * 506 + b"\r\n"
        assert len(line) == 512 and replies_of(line)[0].lines == ("x" * 506,)

    @pytest.mark.parametrize("end", [b"\r\n", b"\n"])
    def test_line_of_exactly_max_line_octets_is_accepted(self, end):
        # README decision 6: up to 8192 octets, the line end included
        line = b"250 " + b"y" * (MAX_LINE - 4 - len(end)) + end
        assert len(line) == MAX_LINE
        assert replies_of(line)[0].lines[0] == "y" * (MAX_LINE - 4 - len(end))

    @pytest.mark.parametrize("end", [b"\r\n", b"\n"])
    def test_one_octet_more_is_line_too_long(self, end):
        line = b"250 " + b"y" * (MAX_LINE - 3 - len(end)) + end
        assert len(line) == MAX_LINE + 1
        assert error_of(line) == ([], "line_too_long")

    def test_ten_megabyte_line_in_one_read_is_not_buffered(self):
        parser = ReplyParser()
        parser.feed(b"250 " + b"z" * 10_000_000)
        assert parser.buffered_bytes == 0
        with pytest.raises(SMTPProtocolError) as caught:
            parser.next_event()
        assert caught.value.kind == "line_too_long"

    def test_ten_megabyte_line_is_refused_as_soon_as_it_passes_the_cap(self):
        parser = ReplyParser()
        chunk = b"z" * 4096
        parser.feed(b"250 ")
        fed = 4
        with pytest.raises(SMTPProtocolError) as caught:
            while parser.next_event() is NEED_DATA and fed < 10_000_000:
                assert parser.buffered_bytes < MAX_LINE
                parser.feed(chunk)
                fed += len(chunk)
        assert caught.value.kind == "line_too_long"
        assert fed - len(chunk) < MAX_LINE <= fed  # the read that crossed the cap
        assert parser.buffered_bytes == 0

    def test_refused_at_the_first_octet_that_makes_it_certain(self):
        parser = ReplyParser(max_line=16)
        parser.feed(b"250 " + b"a" * 11)  # 15 octets: a LF would still fit
        assert parser.next_event() is NEED_DATA
        parser.feed(b"\r")  # 16 octets before the LF: 17 with it
        with pytest.raises(SMTPProtocolError, match="line_too_long"):
            parser.next_event()

    def test_too_many_lines(self):
        assert replies_of(b"250-a\r\n250-b\r\n250 c\r\n", max_lines=3)
        assert error_of(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n", max_lines=3) == ([], "too_many_lines")

    def test_endless_multiline_banner_is_capped(self):
        parser = ReplyParser()
        for _ in range(MAX_LINE):  # far more lines than either cap allows
            parser.feed(b"220-still going\r\n")
            assert parser.buffered_bytes <= parser.max_reply_bytes
        with pytest.raises(SMTPProtocolError) as caught:
            parser.next_event()
        assert caught.value.kind in {"too_many_lines", "reply_too_large"}

    def test_reply_too_large(self):
        data = b"250-" + b"a" * 60 + b"\r\n"
        assert error_of(data * 5, max_line=100, max_reply_bytes=200) == ([], "reply_too_large")

    def test_first_cap_crossed_wins(self):
        # the reply cap (18 octets left) trips before the line cap (24) on this
        # line, whether it arrives in one read or octet by octet
        data = (b"250-" + b"y" * 17 + b"\r\n") * 2 + b"x" * 30
        caps = {"max_line": 24, "max_reply_bytes": 64}
        assert error_of(data, **caps) == ([], "reply_too_large")
        assert parse_stream([data[i:i + 1] for i in range(len(data))], **caps)[1].kind == "reply_too_large"

    def test_caps_reset_between_replies(self):
        data = (b"250-" + b"a" * 60 + b"\r\n250 b\r\n") * 20
        assert len(replies_of(data, max_line=100, max_reply_bytes=200)) == 20


# -- STARTTLS (RFC 3207) -------------------------------------------------------


class TestStartTLS:
    def test_clean_switch(self):
        # RFC 3207 §4: "220 Ready to start TLS", then the TLS negotiation
        parser = ReplyParser()
        parser.feed(b"220 2.0.0 Ready to start TLS\r\n")
        assert parser.next_event().code == 220
        parser.start_tls()
        assert parser.next_event() is NEED_DATA
        parser.eof()
        assert parser.next_event() is CLOSED

    @pytest.mark.parametrize("rest", [b"250 injected\r\n", b"2", b"garbage\r\n", b"\n"])
    def test_bytes_after_220_in_the_same_read(self, rest):
        # RFC 3207 §4.2: plaintext after the 220 is an injection; it must not be read
        parser = ReplyParser()
        parser.feed(b"220 Ready\r\n" + rest)
        assert parser.next_event() == reply(220, "Ready")
        with pytest.raises(SMTPProtocolError) as caught:
            parser.start_tls()
        assert caught.value.kind == "data_after_starttls"
        with pytest.raises(SMTPProtocolError, match="data_after_starttls"):
            parser.next_event()  # the injected reply is never returned

    def test_bytes_in_a_later_read(self):
        parser = ReplyParser()
        parser.feed(b"220 Ready\r\n")
        parser.next_event()
        parser.start_tls()
        parser.feed(b"250 injected\r\n")
        with pytest.raises(SMTPProtocolError, match="data_after_starttls"):
            parser.next_event()

    def test_start_tls_needs_a_220(self):
        parser = ReplyParser()
        with pytest.raises(RuntimeError):
            parser.start_tls()
        parser.feed(b"454 4.7.0 TLS not available due to temporary reason\r\n")
        parser.next_event()
        with pytest.raises(RuntimeError):
            parser.start_tls()

    def test_after_a_454_the_session_goes_on_in_plaintext(self):
        # RFC 3207 §4: 454 -- the client may go on without TLS (we QUIT)
        replies, error = run_like_scanner([b"454 4.7.0 later\r\n221 bye\r\n"], "STARTTLS")
        assert [r.code for r in replies] == [454, 221] and error is None


# -- Enhanced status codes (RFC 3463 §2, RFC 2034 §4) --------------------------


class TestEnhancedCode:
    @pytest.mark.parametrize(("line", "want"), [
        (b"250 2.1.0 Ok", "2.1.0"),
        (b"421 4.7.0", "4.7.0"),  # the code alone, at the end of the text
        (b"550 5.7.27 Sender address has null MX", "5.7.27"),  # RFC 7505 §4.1
        (b"556 5.1.10 Recipient address has null MX", "5.1.10"),  # RFC 7505 §3.2
        (b"554 5.999.999 x", "5.999.999"),  # subject, detail = 1*3digit
        (b"451 4.03.002 x", "4.03.002"),  # leading zeros are digits
        (b"250 2.1.0  two spaces", "2.1.0"),  # "followed by one or more spaces"
    ])
    def test_valid(self, line, want):
        assert replies_of(line + b"\r\n")[0].enhanced_code == want

    @pytest.mark.parametrize("line", [
        b"250 4.0.0 class disagrees",  # RFC 2034 §4: must agree with the reply code
        b"550 2.0.0 class disagrees",
        b"354 3.0.0 class 3 does not exist",  # RFC 3463 §2: class is 2, 4 or 5
        b"354 2.0.0 and not for 3yz",
        b"250 1.0.0 x",
        b"550 5.1234.1 x",  # more than three digits
        b"550 5.1.1234 x",
        b"550 5..1 x",
        b"550 5.1. x",
        b"550 5.1.1x",  # not followed by SP
        b"550 5.1.1\tx",
        b"550 5.1.1.2 x",
        b"550 x 5.1.1",  # not at the start of the text
        b"550  5.1.1 x",
        b"550 \xd9\xa5.1.1 x",  # Arabic-Indic digit five is not a DIGIT
    ])
    def test_not_an_enhanced_code(self, line):
        assert replies_of(line + b"\r\n")[0].enhanced_code is None

    def test_only_the_first_line_counts(self):
        # RFC 2034 §4: every line repeats the code; we read the first
        (r,) = replies_of(b"550-5.7.1 one\r\n550 5.7.2 two\r\n")
        assert r.enhanced_code == "5.7.1"
        (r,) = replies_of(b"550-no code\r\n550 5.7.2 two\r\n")
        assert r.enhanced_code is None


# -- Reply value ----------------------------------------------------------------


class TestReplyValue:
    def test_equality_ignores_raw(self):
        assert Reply(250, ("OK",), b"250 OK\r\n") == Reply(250, ("OK",), b"250 OK\n")

    def test_lines_become_a_tuple(self):
        assert Reply(250, ["a", "b"]).lines == ("a", "b")  # type: ignore[arg-type]

    @pytest.mark.parametrize(("code", "lines"), [(199, ("x",)), (600, ("x",)), (250, ()), (250, (b"x",))])
    def test_invalid_values(self, code, lines):
        with pytest.raises(ValueError):
            Reply(code, lines)

    def test_frozen(self):
        with pytest.raises(AttributeError):
            Reply(250, ("x",)).code = 251  # type: ignore[misc]


# -- EHLO (RFC 5321 §4.1.1.1) --------------------------------------------------


def ehlo_of(*lines: str, code: int = 250) -> Ehlo | None:
    return parse_ehlo(Reply(code, lines))


class TestEhlo:
    def test_postfix_style_reply(self):
        ehlo = ehlo_of("mx.example.com", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN",
                       "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING")
        assert ehlo is not None
        assert (ehlo.domain, ehlo.greet) == ("mx.example.com", None)
        assert ehlo.starttls and ehlo.pipelining and ehlo.smtputf8 and ehlo.chunking
        assert ehlo.eightbitmime and ehlo.dsn and ehlo.enhancedstatuscodes
        assert not ehlo.requiretls
        assert ehlo.size == 10240000
        assert ehlo.capability_list() == [
            "8BITMIME", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES", "ETRN", "PIPELINING",
            "SIZE 10240000", "SMTPUTF8", "STARTTLS", "VRFY",
        ]

    def test_keywords_are_case_insensitive_params_as_sent(self):
        # RFC 5321 §4.1.1.1: keywords "MUST always be recognized and processed in a
        # case-insensitive manner"
        ehlo = ehlo_of("mx", "starttls", "Auth plain Login", "x-Custom Foo BAR")
        assert dict(ehlo.keywords) == {"STARTTLS": (), "AUTH": ("plain", "Login"),
                                       "X-CUSTOM": ("Foo", "BAR")}
        assert ehlo.has("StartTLS") and ehlo.params("auth") == ("plain", "Login")
        assert ehlo.auth_mechanisms == ("PLAIN", "LOGIN")

    def test_greet(self):
        # RFC 5321 §4.1.1.1: ehlo-ok-rsp = "250" SP Domain [ SP ehlo-greet ] CRLF
        ehlo = ehlo_of("mx.example.com Hello client.example.org [192.0.2.1]")
        assert ehlo.domain == "mx.example.com"
        assert ehlo.greet == "Hello client.example.org [192.0.2.1]"
        assert ehlo.keywords == {}

    def test_address_literal_domain(self):
        assert ehlo_of("[192.0.2.1] hi").domain == "[192.0.2.1]"

    def test_empty_first_line(self):
        ehlo = ehlo_of("", "STARTTLS")
        assert ehlo.domain is None and ehlo.greet is None and ehlo.starttls

    def test_junk_lines_are_kept_not_fatal(self):
        # ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        ehlo = ehlo_of("mx", "AUTH=PLAIN LOGIN", "", " STARTTLS", "-X", "K\u00e9Y", "SIZE 100",
                       "\x1b[31mRED")
        assert ehlo.junk == ("AUTH=PLAIN LOGIN", "", " STARTTLS", "-X", "K\u00e9Y", "\x1b[31mRED")
        assert dict(ehlo.keywords) == {"SIZE": ("100",)}
        assert not ehlo.starttls  # a line with leading blanks is not a keyword line
        assert ehlo.auth_mechanisms == ()  # the pre-RFC 4954 AUTH= form is junk

    def test_first_copy_of_a_keyword_wins(self):
        ehlo = ehlo_of("mx", "SIZE 100", "size 200")
        assert ehlo.size == 100 and ehlo.capability_list() == ["SIZE 100"]

    def test_blank_runs_between_params(self):
        assert ehlo_of("mx", "AUTH  PLAIN\tLOGIN ").params("AUTH") == ("PLAIN", "LOGIN")

    @pytest.mark.parametrize(("line", "want"), [
        ("SIZE", None),  # RFC 1870 §4: the parameter is optional
        ("SIZE 0", 0),  # "no fixed maximum message size"
        ("SIZE 52428800", 52428800),
        ("SIZE abc", None),
        ("SIZE -1", None),
        ("SIZE " + "9" * 5000, None),  # no int() of a huge string
    ])
    def test_size(self, line, want):
        assert ehlo_of("mx", line).size == want

    def test_not_a_250(self):
        assert ehlo_of("5.5.1 EHLO not supported", code=502) is None
        assert ehlo_of("mx", code=220) is None

    def test_capability_list_is_sorted_by_code_point(self):
        ehlo = ehlo_of("mx", "b", "A", "a-b", "AUTH PLAIN LOGIN", "0X")
        assert ehlo.capability_list() == ["0X", "A", "A-B", "AUTH PLAIN LOGIN", "B"]


# -- Classification -------------------------------------------------------------


class TestGreetingAndStarttls:
    @pytest.mark.parametrize(("code", "want"), [
        (220, "accepted"),
        (421, "rejected"),  # RFC 5321 §3.8
        (554, "rejected"),  # RFC 5321 §3.1: "554 No SMTP service here"
        (450, "rejected"),
        (250, "unexpected"),
        (354, "unexpected"),
    ])
    def test_greeting(self, code, want):
        assert classify_greeting(Reply(code, ("x",))) == want

    @pytest.mark.parametrize(("code", "want"), [
        (220, "ready"),  # RFC 3207 §4
        (454, "temporary_failure"),  # RFC 3207 §4
        (421, "temporary_failure"),
        (501, "rejected"),  # RFC 3207 §4: syntax error (no parameters allowed)
        (502, "rejected"),
        (530, "rejected"),
        (250, "unexpected"),
    ])
    def test_starttls(self, code, want):
        assert classify_starttls(Reply(code, ("x",))) == want


# Real refusal texts; the sources are listed next to _RATE_LIMIT in the module.
RATE_LIMITED = [
    "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1",  # Postfix anvil
    "421 4.7.0 mx.example.com Error: too many connections",  # Postfix
    "454 4.7.0 Error: too many new TLS sessions from 192.0.2.1",  # Postfix
    "421 mx.example.com: Too many concurrent SMTP connections; please try again later",  # Exim
    "421 Too many concurrent SMTP connections from this IP address; please try again later.",
    "421 Too many concurrent SMTP connections",  # Amazon SES
    "421 4.3.2 Connection rate limit exceeded.",  # Sendmail ratecontrol
    "421 4.3.2 Too many SMTP sessions for this host",  # Sendmail
    "421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
    "closing transmission channel",  # Microsoft Exchange / 365
    "421 4.3.2 The maximum number of concurrent server connections has exceeded a "
    "per-source limit, closing transmission channel",
    "421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of\n"
    "421-4.7.28 unsolicited mail originating from your IP address. To protect our\n"
    "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
    "421 4.7.28 rate limited.",  # Gmail
    "421 4.4.5 Server busy, try again later.",  # Gmail
    "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
    "volume or user complaints",  # Yahoo
    "421 4.1.0 192.0.2.1 Throttled - try again later.",  # Comcast
    "451 4.7.1 <mx.example.jp[192.0.2.3]>: Client host rejected: Please try again slower",
    "421 4.3.2 mx.example.com too busy, try again later",
    "421 Trop de connexions, reessayez plus tard",  # Free.fr
    "450 4.7.1 Error: too much mail from 192.0.2.1",  # Postfix message rate
]

NOT_RATE_LIMITED = [
    "421 4.3.2 mx.example.com Service not available, closing transmission channel",  # RFC 5321
    "421 4.7.0 Try again later, closing connection. (EHLO)",  # Gmail, also for bad EHLO names
    "421 4.7.0 mx.example.com Error: too many errors",  # Postfix hard error limit
    "421 Too much load; please try again later",  # Exim load shedding
    "451 4.7.1 Greylisted, see http://postgrey.schweikert.ch/",
    "452 4.5.3 Your message has too many recipients.",
    "421 4.4.2 mx.example.com Error: timeout exceeded",
    "454 4.7.0 TLS not available due to local problem",
    "421 Server shutting down",
]


def parsed(text: str) -> Reply:
    (r,) = replies_of(text.replace("\n", "\r\n").encode() + b"\r\n")
    return r


class TestRefusal:
    @pytest.mark.parametrize("text", RATE_LIMITED)
    def test_rate_limited(self, text):
        assert classify_refusal(parsed(text)) == "rate_limited"

    @pytest.mark.parametrize("text", NOT_RATE_LIMITED)
    def test_other_4xx(self, text):
        assert classify_refusal(parsed(text)) == "smtp_reject_4xx"

    @pytest.mark.parametrize("text", [
        "554 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org",
        "554 5.7.1 too many connections",  # a 5xx is never rate_limited (docs/design.md)
        "550 5.7.27 Sender address has null MX",  # RFC 7505 §4.1
    ])
    def test_5xx(self, text):
        assert classify_refusal(parsed(text)) == "smtp_reject_5xx"

    def test_not_a_refusal(self):
        with pytest.raises(ValueError):
            classify_refusal(Reply(220, ("hi",)))

    def test_starttls_refusal_is_never_no_starttls(self):
        assert starttls_refusal_status(parsed("454 4.7.0 TLS not available due to temporary reason")) \
            == "starttls_rejected"
        assert starttls_refusal_status(parsed("501 5.5.4 Syntax error")) == "starttls_rejected"
        assert starttls_refusal_status(parsed(RATE_LIMITED[2])) == "rate_limited"
        with pytest.raises(ValueError):
            starttls_refusal_status(Reply(220, ("go",)))


# -- Properties (hypothesis) ----------------------------------------------------

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_CAPS = {"max_line": 24, "max_lines": 4, "max_reply_bytes": 64}

# Pieces that make SMTP-ish streams likely: codes, separators, texts, line ends.
PIECES = st.sampled_from([
    b"250", b"220", b"421", b"554", b"199", b"2x0", b"25", b"-", b" ", b"\t", b"\r", b"\n",
    b"\r\n", b"OK", b"2.1.0 ", b"5.7.27", b"STARTTLS", b"SIZE 100", b"\xc3\xa9", b"\xff", b"x" * 30,
])
# Whole lines, so multi-line replies grow towards the small caps.
LINES = st.sampled_from([
    b"250-hello\r\n", b"250-" + b"y" * 17 + b"\r\n", b"250-" + b"y" * 19 + b"\n", b"250 end\r\n",
    b"220-banner\n", b"220 ok\r\n",
])
SMTPISH = st.lists(st.one_of(LINES, PIECES), max_size=40).map(b"".join)
STREAMS = st.one_of(st.binary(max_size=300), SMTPISH)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def outcome(chunks: list[bytes], **caps: int) -> tuple[list[tuple[int, tuple[str, ...], bytes]], str | None]:
    """Feed like the network layer, checking the caps after every read."""
    parser = ReplyParser(**caps)
    got = []
    try:
        for chunk in [*filter(None, chunks), b""]:
            parser.feed(chunk)
            assert parser.buffered_bytes <= parser.max_reply_bytes
            assert len(parser._partial) < parser.max_line
            while isinstance(event := parser.next_event(), Reply):
                got.append((event.code, event.lines, event.raw))
        assert event is CLOSED
    except SMTPProtocolError as error:
        assert error.kind in ERROR_KINDS
        return got, error.kind
    return got, None


@FAST
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_bytes_any_chunking_only_protocol_errors(data, cuts):
    outcome(split(data, cuts))
    outcome(split(data, cuts), **SMALL_CAPS)


@FAST
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_chunking_invariance(data, cuts):
    assert outcome(split(data, cuts)) == outcome([data])
    assert outcome(split(data, cuts), **SMALL_CAPS) == outcome([data], **SMALL_CAPS)


@FAST
@given(data=STREAMS)
def test_one_byte_at_a_time_matches_one_read(data):
    assert outcome([data[i:i + 1] for i in range(len(data))], **SMALL_CAPS) \
        == outcome([data], **SMALL_CAPS)


@FAST
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_starttls_check_is_chunking_invariant(data, cuts):
    stream = b"220 go\r\n" + data
    assert run_like_scanner(split(stream, cuts), "STARTTLS") == run_like_scanner([stream], "STARTTLS")
    if data:
        assert run_like_scanner([stream], "STARTTLS")[1] == "data_after_starttls"


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)


@st.composite
def well_formed(draw):
    code = draw(st.integers(200, 599))
    lines = draw(st.lists(TEXT, min_size=1, max_size=5))
    ends = draw(st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=len(lines), max_size=len(lines)))
    data = b"".join(
        b"%d%s%s%s" % (code, b"-" if i < len(lines) - 1 else b" ", text.encode(), end)
        for i, (text, end) in enumerate(zip(lines, ends))
    )
    return Reply(code, tuple(lines)), data


@FAST
@given(replies=st.lists(well_formed(), min_size=1, max_size=4), cuts=st.lists(st.integers(0), max_size=8))
def test_well_formed_replies_round_trip(replies, cuts):
    data = b"".join(d for _, d in replies)
    got, error = parse_stream(split(data, cuts))
    assert error is None and got == [r for r, _ in replies]
    assert b"".join(r.raw for r in got) == data


@FAST
@given(first=TEXT, lines=st.lists(TEXT, max_size=8))
def test_parse_ehlo_never_raises(first, lines):
    ehlo = parse_ehlo(Reply(250, (first, *lines)))
    caps = ehlo.capability_list()
    assert caps == sorted(caps)
    assert len(ehlo.keywords) + len(ehlo.junk) <= len(lines)
    ehlo.size, ehlo.auth_mechanisms  # noqa: B018 -- must not raise


@FAST
@given(code=st.integers(400, 599), text=st.text(max_size=200))
def test_classify_refusal_total_on_refusals(code, text):
    status = classify_refusal(Reply(code, (text,)))
    assert status in {"rate_limited", "smtp_reject_4xx", "smtp_reject_5xx"}
    assert names_rate_limit(text) in (True, False)
