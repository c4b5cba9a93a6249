"""Checker for tlsrpt_reports.json (RFC 8460 §4, RFC 7493)."""

from __future__ import annotations

import json

import pytest

from survey.proto.tlsrpt import Report, ReportError, parse_report


def _outcome(data) -> Report | ReportError:
    try:
        return parse_report(data)
    except ReportError as error:
        return error


def _summary(report: Report) -> dict:
    return {
        "valid": True,
        "organization_name": report.organization_name,
        "report_id": report.report_id,
        "contact_info": report.contact_info,
        "policies": [
            {
                "policy_type": p.policy_type,
                "policy_domain": p.policy_domain,
                "mx_host": list(p.mx_host),
                "successful": p.successful,
                "failed": p.failed,
                "failure_details_sum": p.failure_details_sum,
                "result_types": dict(p.result_types),
                "policy_string": list(p.policy_string),
            }
            for p in report.policies
        ],
        "error": None,
    }


def _match(ours: dict, expect: dict) -> None:
    """Every expected key must be one we produce and agree; policies compare per key too."""
    unknown = set(expect) - set(ours)
    assert not unknown, f"checker does not know expect keys {sorted(unknown)}"
    for key, wanted in expect.items():
        if key == "policies" and wanted is not None:
            assert len(ours[key]) == len(wanted), ours[key]
            for got, want in zip(ours[key], wanted):
                _match(got, want)
        else:
            assert ours[key] == wanted, (key, ours[key], wanted)


def check_tlsrpt_reports(case: dict) -> None:
    expect = case["expect"]
    source = case["input"]
    if "json" in source:
        # The decoded object and its serialisation must read the same.
        inputs = [source["json"], json.dumps(source["json"]).encode("utf-8")]
    elif "raw" in source:
        inputs = [source["raw"], source["raw"].encode("utf-8", "surrogatepass")]
    else:
        pytest.fail(f"unknown report input form {sorted(source)}")
    for data in inputs:
        outcome = _outcome(data)
        if expect["error"] is None:
            assert isinstance(outcome, Report), outcome
            _match(_summary(outcome), expect)
        else:
            assert isinstance(outcome, ReportError), outcome
            assert outcome.kind == expect["error"], outcome


CHECKERS = {"tlsrpt_reports": check_tlsrpt_reports}
