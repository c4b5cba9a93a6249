"""TLSRPT (RFC 8460): result types and aggregate reports (§4); the TXT record is re-exported.

Theory of operation
-------------------
A report is one JSON object (RFC 8460 §4.4) that arrives from a stranger, so
it is checked in two layers, each with its own error kind:

``json``
    The octets are not an I-JSON message (RFC 7493, which RFC 8460 §4.4's
    schema is written for): not UTF-8 (§2.1), a BOM, not JSON at all, a
    duplicate member name (§2.3), a string holding a surrogate or noncharacter
    code point (§2.1, including ``\\ud800`` escapes), a number that is NaN,
    Infinity or overflows a double (§2.2), or nesting deeper than
    ``MAX_DEPTH`` (RFC 8259 §9 lets a parser limit it). A dict handed in
    directly is held to the same rules (JSON types only, str keys).
``schema``
    Valid JSON, but not the report shape: a required member missing or of the
    wrong type, a count that is not a non-negative integer below 2**53
    (I-JSON §2.2), an unknown ``policy-type``, a date that is not an RFC 3339
    ``date-time``, an end before the start.
``too_large``
    More than ``max_octets`` (default ``MAX_REPORT_OCTETS``); nothing is parsed.

Leniencies, each deliberate: members we do not know are ignored (the format
grows); ``failure-details`` may be missing (§4.2.1 "heartbeat" reports);
``mx-host`` may be a string (§4.4 schema, Appendix B) or an array of strings
(§4.4 prose) and is always returned as a tuple, empty when absent;
``policy-string`` may be absent (``no-policy-found`` has no policy); a
``result-type`` outside §4.3 is counted, not rejected (§4.3: the list "is
expected to grow", IANA registry §6.6); the per-type counts are not required
to add up to ``total-failure-session-count`` (§4.3: failure types are
non-exclusive). Strings are type-checked, not parsed further (contact-info
addr-spec, policy-domain A-labels, IP addresses): they are data for the
analyst, and one odd field should not drop a report's counts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from survey.proto.txtrecords import TlsrptRecord, parse_tlsrpt_txt, txt_status
from survey.vocabulary import ResultType

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_REPORT_OCTETS",
    "POLICY_TYPES",
    "RESULT_TYPES",
    "NEGOTIATION_FAILURES",
    "DANE_FAILURES",
    "STS_FAILURES",
    "FailureDetail",
    "PolicySummary",
    "Report",
    "ReportError",
    "ResultType",
    "TlsrptRecord",
    "parse_report",
    "parse_tlsrpt_txt",
    "txt_status",
]

# Reports can be gzip'd in the wild (§5.3); this caps the JSON text itself.
# Large senders' daily reports are kilobytes; 16 MiB leaves room for huge ones.
MAX_REPORT_OCTETS = 16 * 1024 * 1024
MAX_DEPTH = 64  # a report nests 5 deep; anything near this is not a report
MAX_NODES = 4_000_000  # bounds a walk over a caller's dict (shared sub-objects count each time)
_MAX_COUNT = 2**53 - 1  # I-JSON §2.2: integers beyond this are not exchanged exactly
_MAX_DATETIME_CHARS = 64


# RFC 8460 §4.3 result types: survey.vocabulary.ResultType (the dataset's vocabulary,
# each value with its meaning), re-exported here.
RESULT_TYPES: tuple[str, ...] = tuple(t.value for t in ResultType)
NEGOTIATION_FAILURES = frozenset(RESULT_TYPES[:5])
DANE_FAILURES = frozenset(RESULT_TYPES[5:8])
STS_FAILURES = frozenset(RESULT_TYPES[8:])

# §4.4: "Presently, the only three valid choices are "tlsa", "sts", and the literal
# string "no-policy-found"."
POLICY_TYPES = ("tlsa", "sts", "no-policy-found")


class ReportError(ValueError):
    """A report that cannot be read. ``kind`` is ``json``, ``schema`` or ``too_large``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class FailureDetail:
    """One ``failure-details`` entry (§4.4); optional members are None when absent."""

    result_type: str
    failed_session_count: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    additional_information: str | None = None
    failure_reason_code: str | None = None


@dataclass(frozen=True)
class PolicySummary:
    """One element of ``policies``: the applied policy, its summary and failures (§4.4)."""

    policy_type: str
    policy_domain: str
    mx_host: tuple[str, ...]
    policy_string: tuple[str, ...]
    successful: int  # summary.total-successful-session-count
    failed: int  # summary.total-failure-session-count
    failure_details: tuple[FailureDetail, ...] = ()
    failure_details_sum: int = 0  # may differ from `failed`: types are non-exclusive (§4.3)
    result_types: dict[str, int] = field(default_factory=dict)  # failed sessions per type


@dataclass(frozen=True)
class Report:
    """An RFC 8460 §4 aggregate report."""

    organization_name: str
    report_id: str
    contact_info: str
    start_datetime: datetime  # UTC
    end_datetime: datetime  # UTC
    policies: tuple[PolicySummary, ...]

    @property
    def date_range(self) -> tuple[datetime, datetime]:
        return self.start_datetime, self.end_datetime


# --------------------------------------------------------------------------- I-JSON layer


class _NotIJson(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _NotIJson("duplicate member name")  # I-JSON §2.3
        result[key] = value
    return result


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotIJson("number overflows an IEEE 754 double")  # I-JSON §2.2
    return value


def _constant(name: str) -> Any:
    raise _NotIJson(f"{name} is not JSON")


def _bad_code_points() -> re.Pattern[str]:
    # I-JSON §2.1: no surrogates, no noncharacters (U+FDD0-U+FDEF, U+xxFFFE, U+xxFFFF).
    ranges = ["\ud800-\udfff", "\ufdd0-\ufdef"]
    for plane in range(17):
        base = plane << 16
        ranges.append(f"{chr(base | 0xFFFE)}{chr(base | 0xFFFF)}")
    return re.compile("[" + "".join(ranges) + "]")


_BAD_CODE_POINT = _bad_code_points()


def _check_ijson_value(root: Any) -> None:
    """Walk a decoded value without recursion: JSON types only, I-JSON strings, depth cap.

    A container reached again (a caller's dict may share sub-objects, or even hold a
    cycle) is walked again only when reached deeper than before, so a shared DAG costs
    its size, and a cycle runs into MAX_DEPTH.
    """
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(root, 1)]
    nodes = 0
    while stack:
        container, depth = stack.pop()
        if not isinstance(container, (dict, list)):
            items: Any = (container,)  # the root itself may be a scalar
        else:
            if depth > MAX_DEPTH:
                raise _NotIJson(f"nested deeper than {MAX_DEPTH}")
            if deepest.get(id(container), 0) >= depth:
                continue
            deepest[id(container)] = depth
            if isinstance(container, dict):
                for key in container:
                    if not isinstance(key, str):
                        raise _NotIJson("member name is not a string")
                    if _BAD_CODE_POINT.search(key):
                        raise _NotIJson("member name holds a surrogate or noncharacter code point")
                items = container.values()
            else:
                items = container
        for value in items:
            nodes += 1
            if nodes > MAX_NODES:
                raise _NotIJson(f"more than {MAX_NODES} values")
            if isinstance(value, str):
                if _BAD_CODE_POINT.search(value):
                    raise _NotIJson("string holds a surrogate or noncharacter code point")
            elif value is None or isinstance(value, (bool, int)):
                pass
            elif isinstance(value, float):
                if not math.isfinite(value):
                    raise _NotIJson("NaN or infinite number")
            elif isinstance(value, (dict, list)):
                stack.append((value, depth + 1))
            else:
                raise _NotIJson(f"{type(value).__name__} is not a JSON value")


def _decode(data: bytes | bytearray | memoryview | str, max_octets: int) -> Any:
    if isinstance(data, str):
        if len(data) > max_octets:
            raise ReportError("too_large", f"more than {max_octets} octets")
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ReportError("json", "text holds a lone surrogate") from None
    raw = bytes(data)
    if len(raw) > max_octets:
        raise ReportError("too_large", f"more than {max_octets} octets")
    try:
        text = raw.decode("utf-8")  # I-JSON §2.1: MUST be UTF-8
    except UnicodeDecodeError as exc:
        raise ReportError("json", f"not UTF-8 at offset {exc.start}") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_float=_float,
                           parse_constant=_constant)
    except _NotIJson as exc:
        raise ReportError("json", str(exc)) from None
    except RecursionError:
        raise ReportError("json", "nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() past sys.get_int_max_str_digits()
        raise ReportError("json", f"not JSON: {type(exc).__name__}") from None
    return value


# --------------------------------------------------------------------------- schema layer

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def _schema(path: str, problem: str) -> ReportError:
    return ReportError("schema", f"{path}: {problem}")


def _member(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _schema(path, f"missing {key!r}")
    return obj[key]


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _schema(path, "not an object")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _schema(path, "not a string")
    return value


def _optional_string(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    return None if key not in obj else _string(obj[key], f"{path}.{key}")


def _strings(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _schema(path, "not an array")
    return tuple(_string(item, f"{path}[{i}]") for i, item in enumerate(value))


def _count(value: Any, path: str) -> int:
    # §4.4: "integer, encoded as a JSON number". 2.0 decodes to a float and is refused,
    # as are booleans (a Python int subclass).
    if isinstance(value, bool) or not isinstance(value, int):
        raise _schema(path, "not an integer")
    if not 0 <= value <= _MAX_COUNT:
        raise _schema(path, "count out of range 0..2**53-1")
    return value


def _date_time(value: Any, path: str) -> datetime:
    """RFC 3339 §5.6 ``date-time`` (T and Z in either case, per its §5.6 note), as UTC."""
    text = _string(value, path)
    match = _DATE_TIME.fullmatch(text) if len(text) <= _MAX_DATETIME_CHARS else None
    if match is None:
        raise _schema(path, "not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7)
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if match.group(8):
        offset = timedelta(0)
    else:
        off_h, off_m = int(match.group(10)), int(match.group(11))
        if off_h > 23 or off_m > 59:
            raise _schema(path, "offset out of range")
        offset = timedelta(hours=off_h, minutes=off_m) * (1 if match.group(9) == "+" else -1)
    if second == 60:
        second = 59  # a leap second (RFC 3339 §5.7); datetime cannot hold :60
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise _schema(path, "not a calendar date-time") from None


def _failure_detail(value: Any, path: str) -> FailureDetail:
    obj = _object(value, path)
    result_type = _string(_member(obj, "result-type", path), f"{path}.result-type")
    if not result_type:
        raise _schema(f"{path}.result-type", "empty")
    return FailureDetail(
        result_type=result_type,
        failed_session_count=_count(_member(obj, "failed-session-count", path),
                                    f"{path}.failed-session-count"),
        sending_mta_ip=_optional_string(obj, "sending-mta-ip", path),
        receiving_mx_hostname=_optional_string(obj, "receiving-mx-hostname", path),
        receiving_mx_helo=_optional_string(obj, "receiving-mx-helo", path),
        receiving_ip=_optional_string(obj, "receiving-ip", path),
        additional_information=_optional_string(obj, "additional-information", path),
        failure_reason_code=_optional_string(obj, "failure-reason-code", path),
    )


def _policy_summary(value: Any, path: str) -> PolicySummary:
    entry = _object(value, path)
    policy = _object(_member(entry, "policy", path), f"{path}.policy")
    ppath = f"{path}.policy"
    policy_type = _string(_member(policy, "policy-type", ppath), f"{ppath}.policy-type")
    if policy_type not in POLICY_TYPES:
        raise _schema(f"{ppath}.policy-type", "not tlsa, sts or no-policy-found")
    policy_domain = _string(_member(policy, "policy-domain", ppath), f"{ppath}.policy-domain")
    mx_host: tuple[str, ...] = ()
    if "mx-host" in policy:
        raw_mx = policy["mx-host"]
        mx_host = (raw_mx,) if isinstance(raw_mx, str) else _strings(raw_mx, f"{ppath}.mx-host")
    policy_string: tuple[str, ...] = ()
    if "policy-string" in policy:
        policy_string = _strings(policy["policy-string"], f"{ppath}.policy-string")

    summary = _object(_member(entry, "summary", path), f"{path}.summary")
    spath = f"{path}.summary"
    successful = _count(_member(summary, "total-successful-session-count", spath),
                        f"{spath}.total-successful-session-count")
    failed = _count(_member(summary, "total-failure-session-count", spath),
                    f"{spath}.total-failure-session-count")

    details: tuple[FailureDetail, ...] = ()
    if "failure-details" in entry:  # absent in heartbeat reports (§4.2.1)
        raw_details = entry["failure-details"]
        if not isinstance(raw_details, list):
            raise _schema(f"{path}.failure-details", "not an array")
        details = tuple(_failure_detail(d, f"{path}.failure-details[{i}]")
                        for i, d in enumerate(raw_details))
    per_type: dict[str, int] = {}
    for detail in details:
        count = detail.failed_session_count
        per_type[detail.result_type] = per_type.get(detail.result_type, 0) + count
    return PolicySummary(
        policy_type=policy_type,
        policy_domain=policy_domain,
        mx_host=mx_host,
        policy_string=policy_string,
        successful=successful,
        failed=failed,
        failure_details=details,
        failure_details_sum=sum(d.failed_session_count for d in details),
        result_types=per_type,
    )


def _report(value: Any) -> Report:
    top = _object(value, "report")
    date_range = _object(_member(top, "date-range", "report"), "report.date-range")
    start = _date_time(_member(date_range, "start-datetime", "report.date-range"),
                       "report.date-range.start-datetime")
    end = _date_time(_member(date_range, "end-datetime", "report.date-range"),
                     "report.date-range.end-datetime")
    if end < start:
        raise _schema("report.date-range", "end-datetime is before start-datetime")
    policies = _member(top, "policies", "report")
    if not isinstance(policies, list):  # §4.4: an array even for one policy
        raise _schema("report.policies", "not an array")
    return Report(
        organization_name=_string(_member(top, "organization-name", "report"),
                                  "report.organization-name"),
        report_id=_string(_member(top, "report-id", "report"), "report.report-id"),
        contact_info=_string(_member(top, "contact-info", "report"), "report.contact-info"),
        start_datetime=start,
        end_datetime=end,
        policies=tuple(_policy_summary(p, f"report.policies[{i}]") for i, p in enumerate(policies)),
    )


def parse_report(data: bytes | bytearray | memoryview | str | dict[str, Any],
                 max_octets: int = MAX_REPORT_OCTETS) -> Report:
    """Read an RFC 8460 §4 aggregate report from JSON octets, JSON text or a decoded value
    (``json.loads`` output: a dict for a report).

    Raises ReportError (and nothing else) for any input that is not a valid report.
    """
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        value: Any = _decode(data, max_octets)
    else:
        value = data  # already decoded: held to the same I-JSON rules below
    try:
        _check_ijson_value(value)
    except _NotIJson as exc:
        raise ReportError("json", str(exc)) from None
    return _report(value)
