"""Checkers for mta_sts_txt.json and tlsrpt_txt.json (RFC 8461 §3.1, RFC 8460 §3)."""

from __future__ import annotations

from survey.proto.txtrecords import parse_mta_sts_txt, parse_tlsrpt_txt, txt_status


def rrset(case_input: list) -> list:
    """Vector records are strings or lists of strings; feed the lists as bytes, the way
    dnspython hands character-strings over, and the joined strings as text."""
    return [
        [part.encode("utf-8") for part in record] if isinstance(record, list) else record
        for record in case_input
    ]


def _common(result, expect: dict) -> None:
    assert result.valid is expect["valid"], result
    assert result.error == expect["error"], result
    assert result.discarded == expect["discarded"], result
    assert dict(result.extensions) == expect["extensions"], result
    assert (txt_status(result) == "valid") is expect["valid"]


def check_mta_sts_txt(case: dict) -> None:
    expect = case["expect"]
    result = parse_mta_sts_txt(rrset(case["input"]))
    _common(result, expect)
    assert result.id == expect["id"], result
    # The same records as bytes throughout must read the same.
    as_bytes = [r.encode("utf-8") if isinstance(r, str) else r for r in rrset(case["input"])]
    assert _same(parse_mta_sts_txt(as_bytes), result)


def check_tlsrpt_txt(case: dict) -> None:
    expect = case["expect"]
    result = parse_tlsrpt_txt(rrset(case["input"]))
    _common(result, expect)
    assert list(result.rua) == expect["rua"], result
    assert list(result.rua_supported) == expect["rua_supported"], result
    as_bytes = [r.encode("utf-8") if isinstance(r, str) else r for r in rrset(case["input"])]
    assert _same(parse_tlsrpt_txt(as_bytes), result)


def _same(a, b) -> bool:
    """Equal up to the stored text (bytes vs str input may only differ there)."""
    return (a.valid, a.error, a.discarded, dict(a.extensions)) == (
        b.valid, b.error, b.discarded, dict(b.extensions)
    ) and getattr(a, "id", None) == getattr(b, "id", None) and getattr(a, "rua", None) == getattr(b, "rua", None)


CHECKERS = {"mta_sts_txt": check_mta_sts_txt, "tlsrpt_txt": check_tlsrpt_txt}
