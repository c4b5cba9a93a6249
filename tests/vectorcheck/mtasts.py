"""Checkers for mta_sts_policy*.json and mta_sts_mx_match*.json (RFC 8461 §3.2, §3.3, §4.1)."""

from __future__ import annotations

import base64

from survey.proto.mtasts import evaluate_fetch, mx_matches


def policy_body(inp: dict) -> bytes:
    """``body`` is text sent as UTF-8; ``body_b64`` carries raw bytes."""
    if "body_b64" in inp:
        return base64.b64decode(inp["body_b64"])
    return inp["body"].encode("utf-8")


def check_policy(case: dict) -> None:
    inp, expect = case["input"], case["expect"]
    result = evaluate_fetch(
        status=inp["status"],
        content_type=inp.get("content_type"),
        redirect=bool(inp.get("redirect", False)),
        body=policy_body(inp),
        elapsed_s=float(inp.get("elapsed_s", 0.0)),
    )
    policy = result.policy
    got = {
        "valid": result.valid,
        "mode": policy.mode if policy else None,
        "mx": list(policy.mx) if policy else None,
        "max_age": policy.max_age if policy else None,
        "error": result.error,
    }
    want = {key: expect.get(key) for key in got}
    assert got == want, f"{case['id']}: {result.detail}"


def check_mx_match(case: dict) -> None:
    inp = case["input"]
    assert mx_matches(inp["pattern"], inp["mx_host"]) is case["expect"], case["id"]


CHECKERS = {"mta_sts_policy": check_policy, "mta_sts_mx_match": check_mx_match}
