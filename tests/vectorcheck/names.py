"""Checker for cert_names*.json (RFC 6125 §6.4, RFC 7817 §3, RFC 8461 §4.2)."""

from __future__ import annotations

from survey.proto.names import cert_name_matches


def check_cert_names(case: dict) -> None:
    inp = case["input"]
    got = cert_name_matches(
        inp["mx_host"] if "mx_host" in inp else inp["host"],
        inp.get("san_dns") or [],
        inp.get("subject_cn"),
        profile=inp.get("profile", "default"),
    )
    assert got is case["expect"], case["id"]


CHECKERS = {"cert_names": check_cert_names}
