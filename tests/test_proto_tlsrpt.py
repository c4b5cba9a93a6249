"""TLSRPT aggregate reports (RFC 8460 §4) and result types (§4.3), beyond the vectors."""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.proto import tlsrpt, txtrecords
from survey.proto.tlsrpt import (
    DANE_FAILURES,
    MAX_REPORT_OCTETS,
    NEGOTIATION_FAILURES,
    POLICY_TYPES,
    RESULT_TYPES,
    STS_FAILURES,
    FailureDetail,
    Report,
    ReportError,
    ResultType,
    parse_report,
)

# RFC 8460 Appendix B, with the additional-information URI rejoined (README decision 8).
APPENDIX_B = """{
     "organization-name": "Company-X",
     "date-range": {
       "start-datetime": "2016-04-01T00:00:00Z",
       "end-datetime": "2016-04-01T23:59:59Z"
     },
     "contact-info": "sts-reporting@company-x.example",
     "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
     "policies": [{
       "policy": {
         "policy-type": "sts",
         "policy-string": ["version: STSv1","mode: testing",
               "mx: *.mail.company-y.example","max_age: 86400"],
         "policy-domain": "company-y.example",
         "mx-host": "*.mail.company-y.example"
       },
       "summary": {
         "total-successful-session-count": 5326,
         "total-failure-session-count": 303
       },
       "failure-details": [{
         "result-type": "certificate-expired",
         "sending-mta-ip": "2001:db8:abcd:0012::1",
         "receiving-mx-hostname": "mx1.mail.company-y.example",
         "failed-session-count": 100
       }, {
         "result-type": "starttls-not-supported",
         "sending-mta-ip": "2001:db8:abcd:0013::1",
         "receiving-mx-hostname": "mx2.mail.company-y.example",
         "receiving-ip": "203.0.113.56",
         "failed-session-count": 200,
         "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
       }, {
         "result-type": "validation-failure",
         "sending-mta-ip": "198.51.100.62",
         "receiving-ip": "203.0.113.58",
         "receiving-mx-hostname": "mx-backup.mail.company-y.example",
         "failed-session-count": 3,
         "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
       }]
     }]
   }"""


def minimal(**policy_overrides) -> dict:
    policy = {
        "policy": {"policy-type": "sts", "policy-string": ["version: STSv1"], "policy-domain": "example.com",
                   "mx-host": ["mx.example.com"]},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
    }
    policy.update(policy_overrides)
    return {
        "organization-name": "Org",
        "date-range": {"start-datetime": "2024-01-01T00:00:00Z", "end-datetime": "2024-01-01T23:59:59Z"},
        "contact-info": "tlsrpt@org.example",
        "report-id": "r1",
        "policies": [policy],
    }


def kind_of(data) -> str | None:
    try:
        parse_report(data)
    except ReportError as error:
        return error.kind
    return None


# --------------------------------------------------------------------------- result types


def test_result_types_are_the_section_4_3_list():
    # RFC 8460 §4.3.1 (negotiation), §4.3.2.1 (DANE), §4.3.2.2 (MTA-STS).
    assert RESULT_TYPES == (
        "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
        "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
        "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
    )
    assert NEGOTIATION_FAILURES | DANE_FAILURES | STS_FAILURES == set(RESULT_TYPES)
    assert STS_FAILURES == {"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
    assert ResultType.CERTIFICATE_EXPIRED == "certificate-expired"
    assert isinstance(ResultType.STS_WEBPKI_INVALID, str)
    assert POLICY_TYPES == ("tlsa", "sts", "no-policy-found")


def test_the_txt_parser_is_re_exported():
    assert tlsrpt.parse_tlsrpt_txt is txtrecords.parse_tlsrpt_txt
    assert tlsrpt.txt_status is txtrecords.txt_status


# --------------------------------------------------------------------------- reading reports


def test_appendix_b_in_full():
    # RFC 8460 Appendix B.
    report = parse_report(APPENDIX_B.encode())
    assert isinstance(report, Report)
    assert report.contact_info == "sts-reporting@company-x.example"
    assert report.date_range == (datetime(2016, 4, 1, tzinfo=timezone.utc),
                                 datetime(2016, 4, 1, 23, 59, 59, tzinfo=timezone.utc))
    (policy,) = report.policies
    assert policy.policy_string == ("version: STSv1", "mode: testing", "mx: *.mail.company-y.example",
                                    "max_age: 86400")
    assert policy.mx_host == ("*.mail.company-y.example",)
    assert (policy.successful, policy.failed, policy.failure_details_sum) == (5326, 303, 303)
    assert policy.failure_details[0] == FailureDetail(
        "certificate-expired", 100, "2001:db8:abcd:0012::1", "mx1.mail.company-y.example")
    assert policy.failure_details[1].receiving_ip == "203.0.113.56"
    assert policy.failure_details[2].failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    assert parse_report(APPENDIX_B) == report == parse_report(json.loads(APPENDIX_B))


def test_appendix_b_as_printed_is_not_json():
    # RFC 8460 Appendix B prints a line break inside a string (README decision 8).
    printed = APPENDIX_B.replace("report_info?id=5065427c-23d3#", "report_info?id=5065427c-23d3\n       #")
    assert kind_of(printed) == "json"


def test_failure_counts_need_not_add_up():
    # RFC 8460 §4.3: failure types are non-exclusive, so one session can count twice.
    data = minimal(**{
        "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
        "failure-details": [{"result-type": "certificate-expired", "failed-session-count": 1},
                            {"result-type": "certificate-host-mismatch", "failed-session-count": 1},
                            {"result-type": "certificate-expired", "failed-session-count": 2}],
    })
    (policy,) = parse_report(data).policies
    assert (policy.failed, policy.failure_details_sum) == (1, 4)
    assert policy.result_types == {"certificate-expired": 3, "certificate-host-mismatch": 1}


def test_no_policy_found_needs_no_policy_string_or_mx_host():
    # RFC 8460 §4.4: "no-policy-found" reports sessions with no policy to describe.
    data = minimal()
    data["policies"][0]["policy"] = {"policy-type": "no-policy-found", "policy-domain": "example.com"}
    (policy,) = parse_report(data).policies
    assert (policy.policy_type, policy.mx_host, policy.policy_string) == ("no-policy-found", (), ())


def test_unknown_members_are_ignored():
    data = minimal()
    data["x-vendor"] = {"anything": [1, 2.5, None, True]}
    data["policies"][0]["policy"]["x"] = 1
    assert parse_report(data).report_id == "r1"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("organization-name",), 3),
        (("report-id",), None),
        (("contact-info",), ["a"]),
        (("date-range",), "2024-01-01"),
        (("date-range", "start-datetime"), 20240101),
        (("policies",), {}),
        (("policies", 0), "sts"),
        (("policies", 0, "policy"), []),
        (("policies", 0, "policy", "policy-type"), "STS"),  # §4.4: exactly tlsa / sts / no-policy-found
        (("policies", 0, "policy", "policy-domain"), 1),
        (("policies", 0, "policy", "mx-host"), [1]),
        (("policies", 0, "policy", "mx-host"), {"a": "b"}),
        (("policies", 0, "policy", "policy-string"), "version: STSv1"),  # §4.4: an array of strings
        (("policies", 0, "summary"), None),
        (("policies", 0, "summary", "total-successful-session-count"), -1),
        (("policies", 0, "summary", "total-successful-session-count"), 2.0),  # integer (§4.4)
        (("policies", 0, "summary", "total-successful-session-count"), True),
        (("policies", 0, "summary", "total-successful-session-count"), "5"),
        (("policies", 0, "summary", "total-failure-session-count"), 2**53),  # I-JSON §2.2
        (("policies", 0, "failure-details"), {}),
        (("policies", 0, "failure-details"), [3]),
        (("policies", 0, "failure-details"), [{"result-type": "x"}]),
        (("policies", 0, "failure-details"), [{"result-type": "", "failed-session-count": 1}]),
        (("policies", 0, "failure-details"), [{"failed-session-count": 1}]),
        (("policies", 0, "failure-details"), [{"result-type": "x", "failed-session-count": 1,
                                               "receiving-ip": 7}]),
    ],
)
def test_mistyped_members_are_schema_errors(path, value):
    data = minimal()
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert kind_of(data) == "schema"
    assert kind_of(json.dumps(data)) == "schema"


@pytest.mark.parametrize(
    "path",
    [("organization-name",), ("report-id",), ("contact-info",), ("date-range",), ("policies",),
     ("date-range", "start-datetime"), ("date-range", "end-datetime"), ("policies", 0, "policy"),
     ("policies", 0, "summary"), ("policies", 0, "policy", "policy-type"),
     ("policies", 0, "policy", "policy-domain"),
     ("policies", 0, "summary", "total-successful-session-count"),
     ("policies", 0, "summary", "total-failure-session-count")],
)
def test_missing_required_members_are_schema_errors(path):
    # RFC 8460 §4.4: members the schema lists without "(optional)".
    data = minimal()
    target = data
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    assert kind_of(data) == "schema"


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        ("2024-01-01t00:00:00z", "2024-01-01T23:59:59.999Z", True),  # RFC 3339 §5.6 NOTE: t/z allowed
        ("2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00Z", True),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z", True),  # leap second (RFC 3339 §5.7)
        ("2024-01-01T00:00:00", "2024-01-02T00:00:00", False),  # no offset: not an RFC 3339 date-time
        ("2024-02-30T00:00:00Z", "2024-03-01T00:00:00Z", False),
        ("2024-01-01 00:00:00Z", "2024-01-02T00:00:00Z", False),
        ("2024-01-01T00:00:00+24:00", "2024-01-02T00:00:00Z", False),
        ("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", False),  # ends before it starts
        ("\uff12024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", False),  # ASCII digits only
        ("0001-01-01T00:00:00+01:00", "2024-01-02T00:00:00Z", False),  # before datetime.min in UTC
    ],
)
def test_date_range_is_rfc_3339(start, end, ok):
    # RFC 8460 §4.4: date-range members are RFC 3339 §5.6 date-time strings.
    data = minimal()
    data["date-range"] = {"start-datetime": start, "end-datetime": end}
    assert kind_of(data) == (None if ok else "schema")


def test_offsets_are_normalised_to_utc():
    data = minimal()
    data["date-range"]["start-datetime"] = "2024-01-01T02:30:00.5+02:30"
    assert parse_report(data).start_datetime == datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',  # I-JSON §2.3: member names MUST be unique
        b'{"organization-name": "\xff"}',  # I-JSON §2.1: MUST be UTF-8
        b'\xef\xbb\xbf{}',  # a BOM (RFC 8259 §8.1: MUST NOT be added)
        b'{"x": "\\ud800"}',  # a lone surrogate escape (I-JSON §2.1)
        b'{"x": "\\udc00\\ud800"}',
        '{"x": "\ufdd0"}'.encode(),  # a noncharacter (I-JSON §2.1)
        '{"x\uffff": 1}'.encode(),
        b'{"x": NaN}',
        b'{"x": -Infinity}',
        b'{"x": 1e400}',  # I-JSON §2.2: beyond an IEEE 754 double
        b'{"x": ' + b"1" * 5000 + b"}",
        b"{} {}",
        b"",
        b"{'a': 1}",
        b"[" * 100000 + b"]" * 100000,
        b'{"x": ' + b"[" * 70 + b"]" * 70 + b"}",  # past MAX_DEPTH
    ],
)
def test_not_i_json_is_a_json_error(raw):
    assert kind_of(raw) == "json"


def test_text_with_a_lone_surrogate_is_a_json_error():
    assert kind_of('{"x": "\ud800"}') == "json"


def test_a_top_level_array_or_scalar_is_a_schema_error():
    # Valid JSON (RFC 8259), just not a report object.
    assert kind_of(b"[]") == kind_of(b"3") == kind_of(b'"r"') == kind_of([]) == "schema"


def test_size_cap():
    assert kind_of(b" " * (MAX_REPORT_OCTETS + 1)) == "too_large"
    assert kind_of("x" * (MAX_REPORT_OCTETS + 1)) == "too_large"
    data = json.dumps(minimal()).encode()
    assert kind_of(data) is None
    with pytest.raises(ReportError) as caught:
        parse_report(data, max_octets=len(data) - 1)
    assert caught.value.kind == "too_large"


@pytest.mark.parametrize(
    ("value", "kind"),
    [({1: "a"}, "json"), ({"a": (1,)}, "json"), ({"a": {1, 2}}, "json"), ({"a": float("nan")}, "json"),
     ({"a": b"x"}, "json"), ({"a": "\ud800"}, "json"), (object(), "json"), (3.5, "schema"), (None, "schema")],
)
def test_decoded_input_is_held_to_i_json_too(value, kind):
    assert kind_of(value) == kind


def test_cyclic_and_shared_structures_terminate():
    cyclic: dict = {}
    cyclic["x"] = cyclic
    assert kind_of(cyclic) == "json"
    shared: list = []
    for _ in range(60):  # a DAG with 2**60 paths: each list is walked once
        shared = [shared, shared]
    start = time.perf_counter()
    assert kind_of({"x": shared}) == "schema"
    assert time.perf_counter() - start < 1


# --------------------------------------------------------------------------- properties

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_octets_give_a_report_or_a_report_error(raw):
    try:
        parse_report(raw)
    except ReportError as error:
        assert error.kind in ("json", "schema", "too_large")


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_gives_a_report_or_a_report_error(value):
    for data in (value, json.dumps(value, allow_nan=True)):
        try:
            parse_report(data)
        except ReportError as error:
            assert error.kind in ("json", "schema")


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


BASE = json.loads(APPENDIX_B)
BASE_PATHS = [p for p in _paths(BASE) if p]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BASE_PATHS), json_values, st.booleans())
def test_mutated_reports_never_raise_anything_else(path, replacement, delete):
    data = copy.deepcopy(BASE)
    target = data
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    for form in (data, json.dumps(data, allow_nan=True).encode()):
        try:
            parse_report(form)
        except ReportError as error:
            assert error.kind in ("json", "schema")


count = st.integers(0, 2**53 - 1)
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufdd0\ufffe\uffff"), max_size=15)
failure = st.fixed_dictionaries(
    {"result-type": st.one_of(st.sampled_from(RESULT_TYPES), text.filter(bool)), "failed-session-count": count},
    optional={"sending-mta-ip": text, "receiving-ip": text, "receiving-mx-hostname": text},
)
policy_entry = st.fixed_dictionaries({
    "policy": st.fixed_dictionaries(
        {"policy-type": st.sampled_from(POLICY_TYPES), "policy-domain": text},
        optional={"mx-host": st.one_of(text, st.lists(text, max_size=3)), "policy-string": st.lists(text, max_size=3)},
    ),
    "summary": st.fixed_dictionaries({"total-successful-session-count": count,
                                      "total-failure-session-count": count}),
}, optional={"failure-details": st.lists(failure, max_size=4)})


@settings(max_examples=300, deadline=None)
@given(text, text, st.lists(policy_entry, max_size=3))
def test_round_trip(org, report_id, policies):
    data = {"organization-name": org, "report-id": report_id, "contact-info": "a@b.example",
            "date-range": {"start-datetime": "2024-01-01T00:00:00Z", "end-datetime": "2024-01-02T00:00:00Z"},
            "policies": policies}
    report = parse_report(json.dumps(data).encode())
    assert (report.organization_name, report.report_id) == (org, report_id)
    for got, sent in zip(report.policies, policies, strict=True):
        mx = sent["policy"].get("mx-host", [])
        assert got.mx_host == ((mx,) if isinstance(mx, str) else tuple(mx))
        assert (got.successful, got.failed) == (sent["summary"]["total-successful-session-count"],
                                                sent["summary"]["total-failure-session-count"])
        details = sent.get("failure-details", [])
        assert got.failure_details_sum == sum(d["failed-session-count"] for d in details)
        assert sum(got.result_types.values()) == got.failure_details_sum
        assert [d.result_type for d in got.failure_details] == [d["result-type"] for d in details]
