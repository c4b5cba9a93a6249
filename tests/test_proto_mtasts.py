"""MTA-STS policy grammar, fetch rules, MX patterns and sender verdicts (RFC 8461)."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.proto import mtasts
from survey.proto.mtasts import (
    BODY_ERRORS,
    FETCH_ERRORS,
    FETCH_TIMEOUT_S,
    MAX_AGE_CAP,
    MAX_POLICY_BYTES,
    FetchResult,
    Policy,
    PolicyError,
    evaluate_fetch,
    mx_matches,
    parse_policy,
    policy_matches,
    sts_domain_verdict,
    sts_verdict,
)

GOOD = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"


def error_of(body: str | bytes) -> str:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    with pytest.raises(PolicyError) as info:
        parse_policy(raw)
    assert info.value.category in BODY_ERRORS + ("too_large",)
    return info.value.category


def parse(body: str) -> Policy:
    return parse_policy(body.encode("utf-8"))


def fetch(body: bytes = GOOD.encode(), **kw) -> FetchResult:
    args = dict(status=200, content_type="text/plain", redirect=False, body=body, elapsed_s=1.0)
    args.update(kw)
    return evaluate_fetch(**args)


# --- RFC 8461 §3.2: grammar -------------------------------------------------------------


def test_rfc_example_policy():
    # RFC 8461 §3.2, the example policy.
    policy = parse(
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
        "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"
    )
    assert policy == Policy(
        version="STSv1",
        mode="enforce",
        mx=("mail.example.com", "*.example.net", "backupmx.example.com"),
        max_age=604800,
    )


def test_mixed_crlf_and_lf_line_ends():
    # RFC 8461 §3.2: sts-policy-term = LF / CRLF, chosen per term.
    assert parse("version: STSv1\r\nmode: enforce\nmx: a.example\r\nmax_age: 1").max_age == 1


@pytest.mark.parametrize(
    "body",
    [
        "version: STSv1\rmode: enforce\rmx: mail.example.com\rmax_age: 86400\r",  # bare CR
        "\n" + GOOD,  # blank first line
        "version: STSv1\n\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n",
        GOOD + "\r\n",  # two final terms
        GOOD + " \n",  # a final line of WSP only
        GOOD.replace("mode:", "\tmode:"),  # leading HTAB
        GOOD.replace("mode:", "mode :"),  # WSP before ':'
        GOOD.replace("max_age: 86400\n", "max_age: 86400\r\r\n"),
        "",
        "\n",
        "\r\n",
        "\ufeff" + GOOD,  # a BOM is not part of an ext-name
        GOOD + "foo:   \n",  # value of WSP only
        GOOD + "foo: a\tb\n",  # HTAB inside a value is a CTL
        GOOD + "foo: a\x7fb\n",  # DEL is a CTL
        GOOD + "_foo: x\n",  # ext-name starts with ALPHA / DIGIT
        GOOD + "f\u00f6o: x\n",  # ext-name is ASCII
        GOOD + ("a" * 33) + ": x\n",  # 1 + 31 characters at most
        GOOD.replace("max_age: 86400", "max_age:"),  # empty known value: no production fits
        GOOD.replace("mx: mail.example.com", "mx:\t"),
    ],
)
def test_syntax_errors(body):
    # RFC 8461 §3.2 ABNF, applied strictly (vectors README decision 4).
    assert error_of(body) == "syntax"


def test_ext_name_of_32_characters_and_inner_punctuation():
    # RFC 8461 §3.2: sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    name = "a" + "_-." * 10 + "z"
    assert len(name) == 32
    assert parse(GOOD + f"{name}: x\n").extensions == ((name, "x"),)


def test_extension_values_keep_inner_spaces_and_utf8():
    # RFC 8461 §3.2: sts-policy-ext-value = vchar [*(%x20 / vchar) vchar], UTF8-2/3/4 allowed.
    policy = parse(GOOD + "comment:  Grüße  aus \u2028 Köln \t\nx-1: 𝄞\n")
    assert policy.extensions == (("comment", "Grüße  aus \u2028 Köln"), ("x-1", "𝄞"))


def test_c1_controls_are_utf8_not_ctl():
    # RFC 5234 CTL is %x00-1F / %x7F; U+0085 is UTF8-2 and so allowed; it is no line end either.
    assert parse(GOOD + "note: a\u0085b\n").extensions == (("note", "a\u0085b"),)


def test_invalid_utf8_is_syntax():
    # RFC 8461 §3.2: extension values are UTF-8 [RFC3629]; an overlong or stray byte is not.
    assert error_of(GOOD.encode() + b"note: \xc0\xaf\n") == "syntax"
    assert error_of(GOOD.encode() + b"note: \xff\n") == "syntax"
    assert error_of(GOOD.encode() + b"note: \xed\xa0\x80\n") == "syntax"  # surrogate


def test_whitespace_around_value_is_not_part_of_it():
    # RFC 8461 §3.2: field-delim = ":" *WSP; sts-policy-field *WSP.
    policy = parse("version:\t STSv1 \t\nmode:enforce\nmx:  a.example\t\nmax_age:\t\t5  ")
    assert (policy.version, policy.mode, policy.mx, policy.max_age) == ("STSv1", "enforce", ("a.example",), 5)


def test_field_order_is_free():
    # RFC 8461 §3.2 puts no order on the fields (unlike the TXT record's leading v=).
    body = "max_age: 10\nmx: a.example\nmode: testing\nversion: STSv1"
    assert parse(body) == Policy("STSv1", "testing", ("a.example",), 10)


@pytest.mark.parametrize(
    ("line", "category"),
    [
        ("version: STSv2", "invalid_version"),
        ("version: STSv1 extra", "invalid_version"),
        ("version: stsv1", "invalid_version"),  # %s: case-sensitive (RFC 7405)
        ("mode: ENFORCE", "invalid_mode"),
        ("mode: report", "invalid_mode"),
        ("max_age: -1", "invalid_max_age"),
        ("max_age: 1.5", "invalid_max_age"),
        ("max_age: 1_000", "invalid_max_age"),  # int() would accept it
        ("max_age: \u0661\u0662", "invalid_max_age"),  # Arabic-Indic digits: not DIGIT
        ("max_age: 0x10", "invalid_max_age"),
        ("max_age: 86400 s", "invalid_max_age"),
        ("max_age: 12345678901", "invalid_max_age"),
    ],
)
def test_invalid_known_values(line, category):
    # RFC 8461 §3.2: sts-policy-version-value, -mode-value, -max-age-value = 1*10(DIGIT).
    name = line.split(":")[0]
    lines = [entry if not entry.startswith(name + ":") else line for entry in GOOD.splitlines()]
    assert error_of("\n".join(lines)) == category


@pytest.mark.parametrize(
    "pattern",
    [
        "mail.example.com.",  # trailing dot: Domain has none
        "mail..example.com",
        ".example.com",
        "-mail.example.com",  # Let-dig first
        "mail-.example.com",  # Let-dig last
        "mail_1.example.com",
        "mx.bücher.example",  # the A-label is required
        "*",
        "*.",
        "**.example.com",
        "*.*.example.com",
        "mx.*.example.com",
        "mx*.example.com",
        "*mx.example.com",
        "[192.0.2.1]",  # address literal is not Domain
        "mail.example.com:25",
        "a" * 64 + ".example",  # RFC 1035: labels of at most 63 octets
        ".".join(["a" * 63] * 4),  # 255 octets: longer than a DNS name can be
        "mail example.com",
        ".",
    ],
)
def test_invalid_mx_patterns(pattern):
    # RFC 8461 §3.2: sts-policy-mx-value = ["*."] Domain (RFC 5321 §4.1.2).
    assert error_of(GOOD.replace("mail.example.com", pattern)) == "invalid_mx"


@pytest.mark.parametrize(
    "pattern",
    ["a", "localhost", "*.com", "xn--bcher-kva.example", "*.xn--bcher-kva.example",
     "MX1.EXAMPLE.COM", "1.example", "192.0.2.1", "a-b--c.example", "a" * 63 + ".example",
     ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])],
)
def test_valid_mx_patterns_are_kept_as_written(pattern):
    # RFC 8461 §3.2: Domain allows either case and digit labels; §4.1 compares case-insensitively.
    assert parse(GOOD.replace("mail.example.com", pattern)).mx == (pattern,)


def test_missing_fields_in_rfc_order():
    # RFC 8461 §3.2: version, mode and max_age are required; mx unless mode is none.
    assert error_of("mode: enforce\nmx: a.example\nmax_age: 1") == "missing_version"
    assert error_of("version: STSv1\nmx: a.example\nmax_age: 1") == "missing_mode"
    assert error_of("version: STSv1\nmode: enforce\nmx: a.example") == "missing_max_age"
    assert error_of("version: STSv1\nmode: testing\nmax_age: 1") == "missing_mx"
    assert error_of("foo: bar") == "missing_version"
    assert parse("version: STSv1\nmode: none\nmax_age: 1") == Policy("STSv1", "none", (), 1)


def test_mode_none_still_validates_its_mx_lines():
    # RFC 8461 §3.2: an mx line that is present must be an sts-policy-mx-value.
    assert error_of("version: STSv1\nmode: none\nmx: bad_name\nmax_age: 1") == "invalid_mx"


def test_names_are_case_sensitive():
    # RFC 8461 §3.2 (%s, RFC 7405): "Version", "MODE", "Max_Age" are extensions.
    body = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nVersion: x\nMODE: y\nMax_Age: z"
    assert parse(body).extensions == (("Version", "x"), ("MODE", "y"), ("Max_Age", "z"))


def test_duplicates_first_wins_later_copies_unvalidated():
    # RFC 8461 §3.2: "If any non-repeated field ... is duplicated, all entries except for
    # the first SHOULD be ignored" (vectors README decision 3).
    policy = parse(GOOD + "mode: bogus\nmax_age: 1e9\nversion: STSv0\nnote: one\nnote: two\n")
    assert (policy.mode, policy.max_age, policy.version) == ("enforce", 86400, "STSv1")
    assert policy.extensions == (("note", "one"),)


def test_first_copy_wins_even_when_invalid():
    # RFC 8461 §3.2: the first entry is the field; a later valid copy does not repair it.
    assert error_of(GOOD.replace("mode: enforce", "mode: Enforce\nmode: enforce")) == "invalid_mode"


def test_ignored_duplicate_must_still_be_grammatical():
    # RFC 8461 §3.2: the whole body must match the ABNF, ignored lines included.
    assert error_of(GOOD + "mode: a\x00b\n") == "syntax"


def test_mx_repeats_in_order():
    # RFC 8461 §3.2: mx may repeat; all patterns are kept, duplicates included.
    assert parse(GOOD + "mx: b.example\nmx: mail.example.com\n").mx == (
        "mail.example.com", "b.example", "mail.example.com")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("0000086400", 86400), ("31557600", 31557600), ("31557601", MAX_AGE_CAP),
     ("9999999999", MAX_AGE_CAP)],
)
def test_max_age_range_and_clamp(value, expected):
    # RFC 8461 §3.2: 1*10(DIGIT), maximum 31557600; erratum 7282: clamp (decision 2).
    assert parse(GOOD.replace("86400", value)).max_age == expected


def test_syntax_beats_invalid_beats_missing():
    # Pass order (module docstring): one category per body whatever the line order.
    assert error_of("mode: Enforce\nfoo:\n") == "syntax"
    assert error_of("mode: Enforce\nmx: a.example\n") == "invalid_mode"
    assert error_of("mx: bad_mx\nmax_age: x\n") == "invalid_mx"


def test_parse_policy_has_its_own_size_cap():
    assert error_of(b"a" * (MAX_POLICY_BYTES + 1)) == "too_large"


def test_error_carries_line_number():
    with pytest.raises(PolicyError) as info:
        parse_policy(b"version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n")
    assert (info.value.category, info.value.line) == ("invalid_mx", 3)
    assert isinstance(info.value, ValueError)


# --- RFC 8461 §3.3: fetch rules ---------------------------------------------------------


def test_fetch_ok():
    result = fetch()
    assert (result.valid, result.error, result.status) == (True, None, "ok")
    assert result.policy == parse(GOOD)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(status):
    # RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
    assert fetch(status=status).error == "redirect"


@pytest.mark.parametrize("status", [100, 201, 204, 206, 300, 304, 305, 400, 404, 500, 0, 999])
def test_other_statuses(status):
    # RFC 8461 §3.3: "only valid if the HTTP response code is 200 (OK)".
    assert fetch(status=status).error == "http_status"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "TEXT/PLAIN", " text/plain ", "text/plain; charset=utf-8",
     "text/plain;charset=\"UTF-8\"", "text/plain; charset=windows-1252", "text/plain; foo",
     "text/plain;;;", "Text/Plain ;format=flowed"],
)
def test_content_type_accepted(content_type):
    # RFC 8461 §3.2: media type text/plain; parameters ignored (decision 5).
    assert fetch(content_type=content_type).valid


@pytest.mark.parametrize(
    "content_type",
    [None, "", " ", "text/html", "text/plain+x", "text / plain", "text/plainx",
     "text/plain, text/html", "application/octet-stream", "plain", "text/"],
)
def test_content_type_rejected(content_type):
    # RFC 8461 §3.2: text/plain is required; a missing header is rejected (decision 5).
    assert fetch(content_type=content_type).error == "content_type"


def test_charset_parameter_does_not_change_decoding():
    # RFC 8461 §3.2 is a UTF-8 grammar: a Latin-1 body is not reinterpreted.
    latin1 = GOOD.encode() + "note: Köln\n".encode("latin-1")
    assert fetch(body=latin1, content_type="text/plain; charset=iso-8859-1").error == "syntax"


def test_timeout_boundary():
    # RFC 8461 §3.3: a timeout of one minute is suggested; exactly 60 s is in time.
    assert fetch(elapsed_s=FETCH_TIMEOUT_S).valid
    assert fetch(elapsed_s=60.001).error == "timeout"
    assert fetch(elapsed_s=math.inf).error == "timeout"
    assert fetch(elapsed_s=math.nan).error == "timeout"


def test_size_boundary():
    # RFC 8461 §3.3: 64 kilobytes suggested: 65536 octets accepted, one more rejected.
    pad = MAX_POLICY_BYTES - len(GOOD.encode()) - len("pad: \n")
    body = (GOOD + "pad: " + "x" * pad + "\n").encode()
    assert len(body) == MAX_POLICY_BYTES and fetch(body=body).valid
    result = fetch(body=body + b"x")
    assert (result.error, result.status) == ("too_large", "fetch_error")


def test_error_precedence():
    # vectors README: redirect > http_status > content_type > timeout > too_large > body.
    big_bad = b"\xff" * (MAX_POLICY_BYTES + 1)
    everything = dict(status=302, content_type="text/html", redirect=True, body=big_bad, elapsed_s=99)
    assert fetch(**everything).error == "redirect"
    assert fetch(**{**everything, "status": 500, "redirect": False}).error == "http_status"
    assert fetch(**{**everything, "status": 200, "redirect": False}).error == "content_type"
    assert fetch(body=big_bad, elapsed_s=99).error == "timeout"
    assert fetch(body=big_bad).error == "too_large"
    result = fetch(body=b"\xff")
    assert (result.error, result.status) == ("syntax", "invalid")


def test_redirect_flag_with_200():
    # RFC 8461 §3.3: a 200 reached by following a redirect is not a policy.
    assert fetch(redirect=True).error == "redirect"


# --- RFC 8461 §4.1: MX patterns ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.example.com", "MAIL.example.COM.", True),
        ("mail.example.com.", "mail.example.com.", True),
        ("mail.example.com..", "mail.example.com", False),  # only one dot is removed
        ("mail.example.com", "mail.example.com..", False),
        ("*.example.com", "mx1.example.com", True),  # RFC 8461 §4.1 example
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),  # exactly one label
        ("*.EXAMPLE.com", "Mx.example.COM", True),
        ("*.example.com", "xn--bcher-kva.example.com", True),  # whole-label wildcard, A-label
        ("*.example.com", "bücher.example.com", True),
        ("*.com", "example.com", True),  # RFC 8461 does not forbid it (names.py docstring)
        ("mx*.example.com", "mx1.example.com", False),  # partial label
        ("*x.example.com", "mx.example.com", False),
        ("mx.*.example.com", "mx.a.example.com", False),
        ("*.*.example.com", "a.b.example.com", False),
        ("*", "localhost", False),
        ("*.", "com", False),
        ("", "", False),
        ("mx.bücher.example", "mx.xn--bcher-kva.example", False),  # pattern must be A-labels
        ("mail.example.com", "mail.example.com ", False),
        ("*.example.com", "*.example.com", False),  # a host is no pattern
        ("*.example.com", "_srv.example.com", True),
        ("mail.example.com", "x" * 2000, False),
    ],
)
def test_mx_matches(pattern, host, expected):
    # RFC 8461 §4.1 with RFC 6125 §6.4.1–6.4.3.
    assert mx_matches(pattern, host) is expected


def test_policy_matches_any_pattern():
    policy = parse(GOOD + "mx: *.example.net\n")
    assert policy_matches(policy, "mail.example.com")
    assert policy_matches(policy, "backup.example.net.")
    assert not policy_matches(policy, "example.net")
    assert not policy_matches(Policy("STSv1", "none", (), 1), "mail.example.com")


# --- sender verdicts (docs/design.md, RFC 8461 §5) ----------------------------------------


@pytest.mark.parametrize(
    ("mode", "ok", "verdict"),
    [(None, True, "no_policy"), (None, False, "no_policy"), ("none", False, "no_policy"),
     ("testing", False, "deliver"), ("testing", True, "deliver"),
     ("enforce", True, "deliver"), ("enforce", False, "fail")],
)
def test_sts_verdict(mode, ok, verdict):
    # RFC 8461 §5: enforce refuses delivery to an MX that fails; testing delivers and reports.
    assert sts_verdict(mode, ok) == verdict


def test_sts_domain_verdict():
    assert sts_domain_verdict("enforce", [False, True]) == "deliver"
    assert sts_domain_verdict("enforce", [False, False]) == "fail"
    assert sts_domain_verdict("enforce", []) == "fail"
    assert sts_domain_verdict("testing", []) == "deliver"
    assert sts_domain_verdict("none", [True]) == "no_policy"
    assert sts_domain_verdict(None, iter([True])) == "no_policy"


# --- hypothesis -------------------------------------------------------------------------

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
domain = st.lists(label, min_size=1, max_size=5).map(".".join)
pattern = st.tuples(st.booleans(), domain).map(lambda t: ("*." if t[0] else "") + t[1])
ext_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda n: n not in ("version", "mode", "mx", "max_age"))
ext_value = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f")
    .filter(lambda c: c >= " "),
    min_size=1, max_size=30,
).map(str.strip).filter(lambda v: v and v.strip(" \t") == v)


@st.composite
def policies(draw):
    mode = draw(st.sampled_from(mtasts.MODES))
    mx = tuple(draw(st.lists(pattern, min_size=0 if mode == "none" else 1, max_size=5)))
    exts = draw(st.lists(st.tuples(ext_name, ext_value), max_size=4, unique_by=lambda e: e[0]))
    max_age = draw(st.integers(0, MAX_AGE_CAP))
    return Policy("STSv1", mode, mx, max_age, tuple(exts))


@FUZZ
@given(policies(), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_round_trip(policy, line_end, final_term):
    body = policy.to_bytes(line_end)
    if not final_term:
        body = body[: -len(line_end)]
    assert parse_policy(body) == policy


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_foreign_errors(body):
    try:
        policy = parse_policy(body)
    except PolicyError as exc:
        assert exc.category in BODY_ERRORS
    else:
        assert policy.mode in mtasts.MODES and 0 <= policy.max_age <= MAX_AGE_CAP


@FUZZ
@given(policies(), st.data())
def test_mutated_policies_never_raise_foreign_errors(policy, data):
    body = bytearray(policy.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(body)))
        if data.draw(st.booleans()) and where < len(body):
            del body[where]
        else:
            body[where:where] = data.draw(st.sampled_from(
                [b"\n", b"\r", b"\r\n", b" ", b"\t", b":", b"*", b".", b"\x00", b"\xc3", b"\xc3\xa9",
                 b"mx: ", b"mode: none\n", b"max_age: ", b"-", b"_"]))
    try:
        parse_policy(bytes(body))
    except PolicyError as exc:
        assert exc.category in BODY_ERRORS


@FUZZ
@given(
    status=st.integers(-(2**40), 2**40),
    content_type=st.none() | st.text(max_size=60),
    redirect=st.booleans(),
    body=st.binary(max_size=300),
    elapsed_s=st.floats(allow_nan=True, allow_infinity=True),
)
def test_arbitrary_envelopes(status, content_type, redirect, body, elapsed_s):
    result = evaluate_fetch(status, content_type, redirect, body, elapsed_s)
    assert result.valid == (result.error is None) == (result.policy is not None)
    assert result.error is None or result.error in FETCH_ERRORS + BODY_ERRORS
    assert result.status in ("ok", "fetch_error", "invalid")


@FUZZ
@given(st.text(max_size=80), st.text(max_size=80))
def test_mx_matches_arbitrary_text(pattern, host):
    assert mx_matches(pattern, host) in (True, False)


@FUZZ
@given(pattern, st.booleans(), st.booleans())
def test_mx_matches_case_and_dot_insensitive(pat, upper, dot):
    host = pat.replace("*", "x")
    variant = (host.upper() if upper else host) + ("." if dot else "")
    assert mx_matches(pat, variant)
    assert mx_matches(pat.upper() + ("." if dot else ""), host)


@pytest.mark.parametrize(
    "body",
    [
        b"a" * MAX_POLICY_BYTES,
        b":" * MAX_POLICY_BYTES,
        b"\n" * MAX_POLICY_BYTES,
        b"foo: " + b" " * (MAX_POLICY_BYTES - 6) + b"x",
        b"mx: " + b"a-" * ((MAX_POLICY_BYTES - 4) // 2),
        b"mx: " + b"a." * ((MAX_POLICY_BYTES - 4) // 2),
        (b"mx: *.a\n" * (MAX_POLICY_BYTES // 8)),
        b"version: STSv1\nmode: none\nmax_age: 1\n" + b"x: y\n" * 13000,
    ],
)
def test_adversarial_bodies_are_fast(body):
    # Linear-time parsing: a 64 KiB worst case takes milliseconds, not seconds.
    start = time.perf_counter()
    try:
        parse_policy(body[:MAX_POLICY_BYTES])
    except PolicyError:
        pass
    assert time.perf_counter() - start < 0.5
