"""MTA-STS and TLSRPT TXT record sets (RFC 8461 §3.1, RFC 8460 §3), beyond the vectors."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto.txtrecords import (
    INVALID_ID,
    INVALID_RUA,
    MAX_RECORD_OCTETS,
    MISSING_ID,
    MISSING_RUA,
    MULTIPLE_RECORDS,
    NO_RECORD,
    SYNTAX,
    StsRecord,
    TlsrptRecord,
    TxtInputError,
    is_uri,
    parse_mta_sts_txt,
    parse_tlsrpt_txt,
    record_text,
    txt_status,
)

STS_ERRORS = {NO_RECORD, MULTIPLE_RECORDS, SYNTAX, MISSING_ID, INVALID_ID}
TLSRPT_ERRORS = {NO_RECORD, MULTIPLE_RECORDS, SYNTAX, MISSING_RUA, INVALID_RUA}


def sts(*records):
    return parse_mta_sts_txt(list(records))


def rpt(*records):
    return parse_tlsrpt_txt(list(records))


# --------------------------------------------------------------------------- MTA-STS


def test_rfc_example_as_dnspython_hands_it_over():
    # RFC 8461 §3.1 example; dnspython keeps TXT rdata as a tuple of bytes.
    result = sts((b"v=STSv1; id=20160831085700Z;",))
    assert result == StsRecord(True, "20160831085700Z", {}, 0, None, "v=STSv1; id=20160831085700Z;")
    assert txt_status(result) == "valid"


def test_strings_are_joined_without_spaces():
    # RFC 8461 §3.1 (RFC 7208 §3.3 style): a space inside a string is data, none is added.
    assert sts((b"v=STSv1;", b" id=abc")).id == "abc"
    assert sts((b"v=STSv1; id=ab", b"c")).id == "abc"
    assert sts([b"v=STSv1; id=a", b"", b"bc"]).id == "abc"  # empty character-string


@pytest.mark.parametrize("record", ["v=STSv1", "v=STSv1 ", "v=STSv10; id=a", "v=stsv1; id=a",
                                    " v=STSv1; id=a", "v=STSv1,id=a", "id=a; v=STSv1;",
                                    "v=spf1 -all", "V=STSv1; id=a"])
def test_records_not_beginning_with_the_version_are_discarded(record):
    # RFC 8461 §3.1: records that do not begin with "v=STSv1;" are discarded
    # (with erratum 6285's *WSP before ';', README decision 1).
    result = sts(record, "v=STSv1; id=good")
    assert (result.valid, result.id, result.discarded) == (True, "good", 1)


def test_wsp_between_version_and_semicolon_is_a_candidate():
    # RFC 8461 erratum 6285: sts-field-delim = *WSP ";" *WSP follows sts-version.
    assert sts("v=STSv1 \t ; id=abc").id == "abc"


def test_empty_rrset_and_all_discarded_are_no_record():
    # RFC 8461 §3.1: no record left means no available policy.
    assert sts() == StsRecord(False, None, {}, 0, NO_RECORD, detail=sts().detail)
    assert (sts("", "x").error, sts("", "x").discarded) == (NO_RECORD, 2)
    assert txt_status(sts()) == "absent"


def test_an_invalid_candidate_still_counts_towards_multiple():
    # RFC 8461 §3.1: "If the number of resulting records is not one ... MUST assume
    # the recipient domain does not have an available MTA-STS policy."
    result = sts("v=STSv1; id=abc", "v=STSv1;", "v=spf1 -all")
    assert (result.error, result.discarded, result.id) == (MULTIPLE_RECORDS, 1, None)
    assert txt_status(result) == "multiple"


def test_identical_duplicates_are_still_multiple():
    # RFC 8461 §3.1 counts records; a resolver does not return identical RRs twice,
    # but if a caller passes them we do not silently merge.
    assert sts("v=STSv1; id=a", "v=STSv1; id=a").error == MULTIPLE_RECORDS


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ("v=STSv1; id=" + "a" * 33, INVALID_ID),  # RFC 8461 §3.1: 1*32
        ("v=STSv1; id=a_b", INVALID_ID),
        ("v=STSv1; id=a=b", INVALID_ID),  # a field named id whose value is not an sts-id
        ("v=STSv1; id==", INVALID_ID),
        ("v=STSv1; id", SYNTAX),  # no '=': neither sts-id nor sts-extension
        ("v=STSv1; =abc; id=a", SYNTAX),  # empty ext-name
        ("v=STSv1; id=a; _x=1", SYNTAX),  # ext-name starts with ALPHA / DIGIT
        ("v=STSv1; id=a; x" + "y" * 31 + "=1", None),  # ext-name of exactly 32
        ("v=STSv1; id=a; foo=", SYNTAX),  # ext-value is 1*
        ("v=STSv1; id=a; foo=\x7f", SYNTAX),  # DEL is not in ext-value
        ("v=STSv1; id=a\x00", SYNTAX),  # control characters anywhere
        ("v=STSv1; id=a;; ", SYNTAX),  # an empty field between delimiters
        ("v=STSv1; id=a; ;", SYNTAX),
        ("v=STSv1; id=a;\t", None),  # one optional trailing delimiter, with its WSP
        ("v=STSv1; id=a\t", SYNTAX),  # WSP with no ';' to belong to
        ("v=STSv1; ID=a", MISSING_ID),  # %s"id=" is case-sensitive (RFC 7405)
        ("v=STSv1 ;", MISSING_ID),
        ("v=STSv1; id=bad-id; foo=a=b", SYNTAX),  # syntax outranks invalid_id
        ("v=STSv1; foo=a=b", SYNTAX),  # syntax outranks missing_id
        ("v=STSv1; id=caf\u00e9", SYNTAX),  # RFC 8461 §3.1: records MUST be US-ASCII
    ],
)
def test_grammar_edges(record, error):
    result = sts(record)
    assert result.error == error, result
    assert result.valid is (error is None)
    if error is not None:
        assert (result.id, result.extensions) == (None, {})
        assert txt_status(result) == "invalid"
        assert result.detail


def test_duplicate_id_first_wins_even_when_the_first_is_bad():
    # RFC 8461 §3.2 last paragraph, applied to the TXT id (README decision 3).
    assert sts("v=STSv1; id=good; id=not-valid!").id == "good"
    assert sts("v=STSv1; id=not-valid; id=good").error == INVALID_ID
    # An ignored copy is not validated, but the record must still tokenise.
    assert sts("v=STSv1; id=good; id=a b").error == SYNTAX


def test_extensions_first_value_wins_and_every_copy_is_grammar_checked():
    # RFC 8461 §3.1: unknown fields are ignored by senders but are part of the grammar.
    assert sts("v=STSv1; a=1; id=x; a=2; b.c-d_e=~").extensions == {"a": "1", "b.c-d_e": "~"}
    assert sts("v=STSv1; a=1; id=x; a=2=3").error == SYNTAX
    # 'v' after the version is just an extension.
    assert sts("v=STSv1; id=x; v=STSv2").extensions == {"v": "STSv2"}


def test_non_utf8_and_non_ascii_bytes_are_a_value_not_a_traceback():
    # RFC 8461 §3.1: MTA-STS TXT records MUST be US-ASCII.
    for raw in (b"v=STSv1; id=\xff\xfe", b"v=STSv1; id=abc; x=\xc3\xa9", b"v=STSv1; id=\x80"):
        result = sts(raw)
        assert (result.valid, result.error) == (False, SYNTAX)
        assert "offset" in result.detail
    assert sts(b"\xff v=STSv1; id=a").error == NO_RECORD


def test_oversized_records_are_not_joined():
    big = [b"v=STSv1; id=a; x=" + b"y" * 200] + [b"z" * 255] * 300  # > 65535 octets
    assert sum(map(len, big)) > MAX_RECORD_OCTETS
    result = sts(big)
    assert (result.error, result.record) == (SYNTAX, None)
    assert sts([b"q" * 255] * 300, "v=STSv1; id=a").discarded == 1


def test_record_text_keeps_every_octet_visible():
    assert record_text((b"v=STSv1; ", "id=caf\u00e9".encode())) == "v=STSv1; id=caf\u00e9"
    assert record_text(b"v=STSv1; id=\xff") == "v=STSv1; id=\\xff"
    assert sts(b"v=STSv1; id=\xff").record == "v=STSv1; id=\\xff"


@pytest.mark.parametrize("bad", [None, 3, b"v=STSv1; id=a", "v=STSv1; id=a", [3], [[b"a", 3]], [{"a": 1}]])
def test_values_that_are_not_rrsets_raise_txt_input_error(bad):
    with pytest.raises(TxtInputError):
        parse_mta_sts_txt(bad)
    with pytest.raises(TxtInputError):
        parse_tlsrpt_txt(bad)


def test_txt_status_covers_the_dataset_vocabulary():
    # docs/schema.md: mta_sts_txt_status / tlsrpt_status in
    # {absent, valid, invalid, multiple, dns_error};
    # dns_error is the I/O layer's.
    assert {txt_status(r) for r in (sts(), sts("v=STSv1; id=a"), sts("v=STSv1;"),
                                    sts("v=STSv1;id=a", "v=STSv1;id=b"))} == {
        "absent", "valid", "invalid", "multiple"}
    assert txt_status(rpt("v=TLSRPTv1; rua=x")) == "invalid"


# --------------------------------------------------------------------------- TLSRPT


def test_rfc_8460_examples():
    # RFC 8460 §3.1.1 and §3.1.2.
    assert rpt("v=TLSRPTv1; rua=mailto:reports@example.com").rua == ("mailto:reports@example.com",)
    result = rpt((b"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",))
    assert result.rua_supported == ("https://reporting.example.com/v1/tlsrpt",)
    assert txt_status(result) == "valid"


def test_scheme_support_is_case_insensitive_and_keeps_the_text():
    # RFC 3986 §3.1: schemes are case-insensitive; RFC 8460 §3 supports mailto and https.
    result = rpt("v=TLSRPTv1; rua=MAILTO:a@example.com,HTTPS://r.example/x,http://r.example/y")
    assert result.rua == ("MAILTO:a@example.com", "HTTPS://r.example/x", "http://r.example/y")
    assert result.rua_supported == ("MAILTO:a@example.com", "HTTPS://r.example/x")


def test_only_unsupported_schemes_is_still_a_valid_record():
    # RFC 8460 §3: the record is well formed; a reporter just has nowhere to send.
    result = rpt("v=TLSRPTv1; rua=ftp://r.example/x")
    assert (result.valid, result.rua_supported) == (True, ())


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ("v=TLSRPTv1; rua=mailto:tls,reports@example.com", INVALID_RUA),  # raw ',' splits; no scheme
        ("v=TLSRPTv1; rua=mailto:tls!reports@example.com", INVALID_RUA),  # '!' MUST be encoded
        ("v=TLSRPTv1; rua=reports@example.com", INVALID_RUA),  # not a URI: no scheme
        ("v=TLSRPTv1; rua=mailto:a%2@example.com", INVALID_RUA),  # broken pct-encoding
        ("v=TLSRPTv1; rua=https://exa^mple.com/", INVALID_RUA),
        ("v=TLSRPTv1; rua=https://[::1/", INVALID_RUA),
        ("v=TLSRPTv1; rua=https://[2001:db8::1]/x", None),
        ("v=TLSRPTv1; rua=https://r.example:8443", None),
        ("v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com", INVALID_RUA),
        ("v=TLSRPTv1; rua=mailto:a@example.com , ", INVALID_RUA),  # nothing after ','
        ("v=TLSRPTv1; rua=,mailto:a@example.com", INVALID_RUA),
        ("v=TLSRPTv1; rua= mailto:a@example.com", SYNTAX),  # WSP only next to ','
        ("v=TLSRPTv1; rua=mailto:a@example.com ", SYNTAX),  # trailing WSP, no ';'
        ("v=TLSRPTv1; rua=mailto:a@example.com ; ", None),
        ("v=TLSRPTv1; RUA=mailto:a@example.com", MISSING_RUA),  # %s"rua="
        ("v=TLSRPTv1;", MISSING_RUA),
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=nope", INVALID_RUA),  # every copy counts
        ("v=TLSRPTv1; rua=nope; x=a=b", SYNTAX),  # syntax outranks invalid_rua
        ("v=TLSRPTv1; rua=nope; rua=a b", SYNTAX),
        ("v=TLSRPTv1; rua=mailto:\u00e4@example.com", SYNTAX),  # the ABNF is US-ASCII
    ],
)
def test_rua_edges(record, error):
    result = rpt(record)
    assert result.error == error, result
    if error is not None:
        assert (result.rua, result.rua_supported, result.extensions) == ((), (), {})


def test_repeated_rua_combines_in_order_keeping_duplicates():
    # RFC 8460 §3 is silent; README decision 3 combines.
    result = rpt("v=TLSRPTv1; rua=mailto:a@x.example; foo=1; rua=mailto:a@x.example,https://h.example/")
    assert result.rua == ("mailto:a@x.example", "mailto:a@x.example", "https://h.example/")
    assert result.extensions == {"foo": "1"}


def test_an_sts_record_in_the_tlsrpt_set_is_discarded_and_vice_versa():
    assert rpt("v=STSv1; id=a").discarded == 1
    assert sts("v=TLSRPTv1; rua=mailto:a@x.example").discarded == 1


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("mailto:a@example.com", True), ("https://h.example/p?q=1#f", True), ("urn:isbn:0451450523", True),
        ("https://u:p@h.example:0/", True), ("https://[v7.a:b]/", True), ("https://[fe80::1%25eth0]/", False),
        ("https://h.example:80a/", False), ("1http://h/", False), (":x", False), ("", False),
        ("https://h.example/a b", False), ("https://h.example/\u00e9", False), ("https://h/%zz", False),
        ("a+b.c-d:x", True), ("https://h.example/#a#b", False), ("https://h.example/[x]", False),
    ],
)
def test_is_uri_follows_rfc_3986(uri, ok):
    # RFC 3986 §3 URI (absolute, with scheme); RFC 6874 zone ids are not part of it.
    assert is_uri(uri) is ok


# --------------------------------------------------------------------------- properties

chunk = st.binary(max_size=40)
record_strategy = st.one_of(
    st.binary(max_size=120),
    st.lists(chunk, max_size=5).map(tuple),
    st.text(max_size=80),
    st.builds(lambda v, rest: v + rest, st.sampled_from(["v=STSv1;", "v=TLSRPTv1;", "v=STSv1 ;"]),
              st.text(st.characters(codec="ascii"), max_size=80)),
    st.builds(lambda v, rest: v + rest, st.sampled_from([b"v=STSv1;", b"v=TLSRPTv1;"]),
              st.binary(max_size=80)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(record_strategy, max_size=4))
def test_any_rrset_gives_a_result_value(records):
    # Hostile input never raises; the result is always internally consistent.
    for result, errors in ((parse_mta_sts_txt(records), STS_ERRORS), (parse_tlsrpt_txt(records), TLSRPT_ERRORS)):
        assert result.valid is (result.error is None)
        assert result.error is None or result.error in errors
        assert 0 <= result.discarded <= len(records)
        assert txt_status(result) in {"absent", "valid", "invalid", "multiple"}
        if isinstance(result, TlsrptRecord):
            assert set(result.rua_supported) <= set(result.rua)
            assert bool(result.rua) is result.valid
        elif result.valid:
            assert result.id.isascii() and result.id.isalnum() and len(result.id) <= 32


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(max_codepoint=255), max_size=60), max_size=3))
def test_text_and_octets_read_the_same(records):
    # One character per octet: a latin-1 text record and its bytes are the same record.
    as_bytes = [r.encode("latin-1") for r in records]
    for parse in (parse_mta_sts_txt, parse_tlsrpt_txt):
        a, b = parse(records), parse(as_bytes)
        assert (a.valid, a.error, a.discarded, a.extensions) == (b.valid, b.error, b.discarded, b.extensions)


wsp = st.text(" \t", max_size=2)
ext_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda n: n not in ("id", "rua"))
ext_value = st.text(st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in "=;"]), min_size=1,
                    max_size=12)
sts_id = st.text(st.sampled_from("abcXYZ0189"), min_size=1, max_size=32)
host = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
uri = st.one_of(
    st.builds("mailto:{}@{}".format, st.from_regex(r"[a-z0-9.%+\-]{1,12}", fullmatch=True).filter(
        lambda s: "%" not in s), host),
    st.builds("https://{}{}".format, host, st.from_regex(r"(/[a-z0-9=?]{0,8}){0,3}", fullmatch=True)),
)


def _delim(draw):
    return draw(wsp) + ";" + draw(wsp)


def _split(draw, text: str) -> tuple[bytes, ...]:
    raw = text.encode("ascii")
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    return tuple(raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)]))


@st.composite
def sts_records(draw):
    the_id = draw(sts_id)
    extensions = draw(st.lists(st.tuples(ext_name, ext_value), max_size=4))
    fields = [f"{n}={v}" for n, v in extensions]
    fields.insert(draw(st.integers(0, len(fields))), f"id={the_id}")
    text = "v=STSv1" + "".join(_delim(draw) + f for f in fields)
    if draw(st.booleans()):
        text += _delim(draw)
    expected_ext: dict[str, str] = {}
    for n, v in extensions:
        expected_ext.setdefault(n, v)
    return _split(draw, text), the_id, expected_ext


@st.composite
def tlsrpt_records(draw):
    uris = draw(st.lists(uri, min_size=1, max_size=4))
    value = uris[0] + "".join(draw(wsp) + "," + draw(wsp) + u for u in uris[1:])
    extensions = draw(st.lists(st.tuples(ext_name, ext_value), max_size=3))
    fields = [f"{n}={v}" for n, v in extensions]
    fields.insert(draw(st.integers(0, len(fields))), f"rua={value}")
    text = "v=TLSRPTv1" + "".join(_delim(draw) + f for f in fields)
    if draw(st.booleans()):
        text += _delim(draw)
    return _split(draw, text), uris


@settings(max_examples=300, deadline=None)
@given(sts_records(), st.lists(st.sampled_from([b"v=spf1 -all", b"v=STSv1", b"", b"v=STSv2; id=a"]), max_size=2))
def test_round_trip_sts(generated, noise):
    record, the_id, extensions = generated
    result = parse_mta_sts_txt([*noise, record])
    assert (result.valid, result.id, result.extensions, result.discarded) == (True, the_id, extensions, len(noise))


@settings(max_examples=300, deadline=None)
@given(tlsrpt_records())
def test_round_trip_tlsrpt(generated):
    record, uris = generated
    result = parse_tlsrpt_txt([record])
    assert (result.valid, list(result.rua), list(result.rua_supported)) == (True, uris, uris), result


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1;" + " ;" * 30000,
        "v=STSv1; id=a; x=" + "=" * 60000,
        "v=STSv1" + " " * 60000 + ";id=a",
        "v=TLSRPTv1; rua=" + "mailto:a@b, " * 5000,
        "v=TLSRPTv1; rua=https://" + "%" * 60000,
        "v=TLSRPTv1; rua=https://[" + ":" * 60000 + "]/",
        "v=TLSRPTv1; rua=" + "a:" * 30000,
    ],
)
def test_worst_case_inputs_stay_linear(text):
    # No backtracking regexes on untrusted input: near-cap records parse in well under a second.
    start = time.perf_counter()
    parse_mta_sts_txt([text, text.encode()])
    parse_tlsrpt_txt([text])
    assert time.perf_counter() - start < 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30), st.text(max_size=30)), max_size=4))
def test_record_text_always_encodes(chunks):
    # The stored text must survive UTF-8 encoding (Parquet strings), whatever came in.
    record_text(chunks).encode("utf-8")
