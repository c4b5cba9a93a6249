"""MTA-STS policies (RFC 8461): body grammar, fetch rules, MX patterns, sender verdicts.

Theory of operation
-------------------
Everything here is a pure function of values the network layer hands over;
``survey.net.https`` does the GET and calls ``evaluate_fetch`` with what came
back. (The ``_mta-sts`` TXT record grammar lives in ``survey.proto.txtrecords``.)

``evaluate_fetch`` checks the HTTP envelope before it reads a byte of the body,
in a fixed order so that one response gets one category (RFC 8461 §3.3;
tests/vectors/README.md): ``redirect`` > ``http_status`` > ``content_type`` >
``timeout`` > ``too_large`` > the body's own error. The first five are
``fetch_error``s, the body errors make the policy ``invalid``.

``parse_policy`` reads the body line by line, never with a regex over the whole
text, so its cost is linear in the (capped) body size. It works in three passes
so that the category does not depend on line order:

1. **Grammar** (``syntax``): the body is UTF-8; it is split on LF, a CR just
   before an LF belongs to the line end (RFC 8461 §3.2 ``sts-policy-term = LF /
   CRLF``, mixed freely). At most one line break may end the body; an empty
   line anywhere else, a line starting with WSP, a line without ``:`` or with a
   name that is not ``(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")``
   is a syntax error. ``field-delim = ":" *WSP`` and the trailing ``*WSP`` are
   not part of the value. Every value must be a valid ``sts-policy-ext-value``
   (at least one character, no CTL -- HTAB and a lone CR included -- inside,
   UTF-8 allowed): every valid known value is one too, so a line failing this
   fits no production of the grammar at all.
2. **Values** (``invalid_<field>``): the first ``version``, ``mode`` and
   ``max_age`` and every ``mx`` are checked against their own grammar, in line
   order. A line that is grammatical only as an extension but carries a known
   name is ``invalid_<name>`` (sts-pol-017, -033, -053). Field names are
   case-sensitive (``%s``): ``MX:`` or ``Mode:`` are extensions, not the known
   fields. Later copies of a non-``mx`` field are ignored (§3.2: "all entries
   except for the first SHOULD be ignored") beyond the syntax of pass 1.
3. **Presence** (``missing_<field>``): version, mode, max_age, then mx (at least
   one unless ``mode: none``).

Choices where the RFC leaves room (tests/vectors/README.md decisions 2, 3, 4, 5):

- ``max_age`` is ``1*10DIGIT``; a value above 31557600 is clamped to it
  (erratum 7282), 11 digits are invalid even when small; leading zeros are fine.
- An empty value (``mode:``, ``foo:``) or a CTL inside any value is
  ``syntax``, whatever the field name; so is a body with bare-CR line ends
  (its single line carries CRs inside a value).
- ``mx`` is ``["*."] Domain`` (RFC 5321 §4.1.2): ASCII letters, digits and
  inner hyphens per label, labels of at most 63 octets, at most 253 octets
  after ``*.``; no trailing dot, no underscore, no U-label, no address literal.
  A dotted quad is a syntactically valid Domain and is accepted. The value is
  kept as written (case included); matching is case-insensitive.
- The body is always read as UTF-8 whatever ``charset`` says (RFC 8461 §3.2
  defines a UTF-8 grammar; ``charset=iso-8859-1`` is ignored, sts-pol-081): a
  byte sequence that is not UTF-8 is ``syntax``. A BOM is not stripped (the
  first name would then not be an ext-name: ``syntax``).
- Content-Type must be ``text/plain`` (case-insensitive, surrounding blanks
  allowed); all parameters are ignored; a missing or empty header is rejected.
- Only 301, 302, 303, 307 and 308 count as redirects; any other non-200
  status, 2xx included, is ``http_status``.
- ``elapsed_s`` above 60 s (or NaN) is ``timeout``; exactly 60 s is in time.
- A body of exactly 65536 octets is accepted, 65537 is ``too_large``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from survey.proto.names import match_presented, normalise_reference
from survey.vocabulary import (
    STS_BODY_ERRORS,
    STS_HTTP_ERRORS,
    PolicyStatus,
    StsMode,
    StsPolicyError,
    StsVerdict,
)

MAX_POLICY_BYTES = 65536  # RFC 8461 §3.3: "64 kilobytes" suggested
FETCH_TIMEOUT_S = 60  # RFC 8461 §3.3: "one minute" suggested
MAX_AGE_CAP = 31557600  # RFC 8461 §3.2 (erratum 7282: clamp, do not reject)

VERSION = "STSv1"
MODES: tuple[StsMode, ...] = tuple(StsMode)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

FIELD_VERSION = "version"
FIELD_MODE = "mode"
FIELD_MX = "mx"
FIELD_MAX_AGE = "max_age"
SINGLE_FIELDS = (FIELD_VERSION, FIELD_MODE, FIELD_MAX_AGE)

# Error categories (survey.vocabulary.StsPolicyError): FETCH_ERRORS mean "fetch_error",
# BODY_ERRORS "invalid".
FETCH_ERRORS = STS_HTTP_ERRORS
BODY_ERRORS = STS_BODY_ERRORS
ACTIVE_MODES = (StsMode.ENFORCE, StsMode.TESTING)

STATUS_OK = PolicyStatus.OK
STATUS_FETCH_ERROR = PolicyStatus.FETCH_ERROR
STATUS_INVALID = PolicyStatus.INVALID

VERDICT_DELIVER = StsVerdict.DELIVER
VERDICT_FAIL = StsVerdict.FAIL
VERDICT_NO_POLICY = StsVerdict.NO_POLICY

_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")  # bounded: no backtracking blow-up
_WSP = " \t"
_DIGITS = frozenset("0123456789")
_LET_DIG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LDH = _LET_DIG | {"-"}


class PolicyError(ValueError):
    """A policy body (or fetch) that is not a valid policy; ``category`` is one of
    FETCH_ERRORS or BODY_ERRORS, ``line`` the 1-based body line when known."""

    def __init__(self, category: StsPolicyError, detail: str = "",
                 line: int | None = None) -> None:
        super().__init__(f"{category}: {detail}" if detail else category)
        self.category = category
        self.detail = detail
        self.line = line


@dataclass(frozen=True)
class Policy:
    """A valid MTA-STS policy. ``max_age`` is already clamped to MAX_AGE_CAP; ``mx``
    keeps the patterns as written, in order; ``extensions`` holds the first value of
    each unknown field, in order."""

    version: str
    mode: str
    mx: tuple[str, ...]
    max_age: int
    extensions: tuple[tuple[str, str], ...] = ()

    def to_bytes(self, line_end: str = "\r\n") -> bytes:
        """Serialise as RFC 8461 §3.2 text (for the testbed and round-trip tests)."""
        lines = [f"version: {self.version}", f"mode: {self.mode}"]
        lines += [f"mx: {pattern}" for pattern in self.mx]
        lines.append(f"max_age: {self.max_age}")
        lines += [f"{name}: {value}" for name, value in self.extensions]
        return (line_end.join(lines) + line_end).encode("utf-8")


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one policy fetch: a policy, or the category of the first fault."""

    valid: bool
    policy: Policy | None = None
    error: StsPolicyError | None = None
    detail: str = ""

    @property
    def status(self) -> PolicyStatus:
        """The dataset's ``mta_sts_policy_status``: ok, fetch_error or invalid."""
        if self.valid:
            return STATUS_OK
        return STATUS_FETCH_ERROR if self.error in FETCH_ERRORS else STATUS_INVALID


# --- policy body grammar (RFC 8461 §3.2) -------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines without their terms; a syntax error for blank lines or a second final term."""
    if not text:
        raise PolicyError(StsPolicyError.SYNTAX, "empty body", 1)
    parts = text.split("\n")  # not splitlines(): U+0085, U+2028... are not line ends here
    if parts[-1] == "":
        parts.pop()  # the one optional final sts-policy-term
    lines = []
    for number, part in enumerate(parts, start=1):
        ended_by_lf = number < len(parts) or text.endswith("\n")
        if ended_by_lf and part.endswith("\r"):
            part = part[:-1]  # CRLF
        if not part:
            raise PolicyError(StsPolicyError.SYNTAX, "blank line", number)
        lines.append(part)
    return lines


def _has_ctl(value: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in value)


def _is_ext_value(value: str) -> bool:
    """sts-policy-ext-value: vchar [*(SP / vchar) vchar], UTF-8 allowed, no CTL."""
    return bool(value) and not _has_ctl(value) and value[0] != " " and value[-1] != " "


def _is_domain(value: str) -> bool:
    """RFC 5321 §4.1.2 Domain, with RFC 1035 length limits."""
    if not value or len(value) > 253:
        return False
    for label in value.split("."):
        if not label or len(label) > 63 or not _LDH.issuperset(label):
            return False
        if label[0] not in _LET_DIG or label[-1] not in _LET_DIG:
            return False
    return True


def is_mx_pattern(value: str) -> bool:
    """sts-policy-mx-value = ["*."] Domain."""
    return _is_domain(value[2:] if value.startswith("*.") else value)


def _parse_max_age(value: str) -> int | None:
    if not 1 <= len(value) <= 10 or not _DIGITS.issuperset(value):
        return None  # 1*10(DIGIT): no sign, no exponent, no Unicode digits, no "_"
    return min(int(value), MAX_AGE_CAP)


def parse_policy(body: bytes) -> Policy:
    """Parse a policy body; raises PolicyError with a BODY_ERRORS category (or too_large)."""
    if len(body) > MAX_POLICY_BYTES:
        raise PolicyError(StsPolicyError.TOO_LARGE, f"{len(body)} octets > {MAX_POLICY_BYTES}")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(StsPolicyError.SYNTAX, f"not UTF-8 at octet {exc.start}") from None
    # Pass 1: grammar.
    known: list[tuple[int, str, str]] = []  # (line, name, value) to check in pass 2
    seen: set[str] = set()
    extensions: list[tuple[str, str]] = []
    for number, line in enumerate(_split_lines(text), start=1):
        name, colon, rest = line.partition(":")
        if not colon:
            raise PolicyError(StsPolicyError.SYNTAX, "no ':' in line", number)
        if not _EXT_NAME.fullmatch(name):
            raise PolicyError(StsPolicyError.SYNTAX, f"bad field name {name[:40]!r}", number)
        value = rest.lstrip(_WSP).rstrip(_WSP)
        if not _is_ext_value(value):  # every known value is also a valid ext-value
            raise PolicyError(StsPolicyError.SYNTAX,
                              f"empty value or control character in {name!r}", number)
        if name == FIELD_MX or (name in SINGLE_FIELDS and name not in seen):
            known.append((number, name, value))
        elif name not in seen and name not in SINGLE_FIELDS:
            extensions.append((name, value))
        seen.add(name)
    # Pass 2: values of the known fields, in line order.
    fields: dict[str, object] = {}
    mx: list[str] = []
    for number, name, value in known:
        if name == FIELD_VERSION and value != VERSION:
            raise PolicyError(StsPolicyError.INVALID_VERSION, f"{value[:40]!r}", number)
        if name == FIELD_MODE and value not in MODES:
            raise PolicyError(StsPolicyError.INVALID_MODE, f"{value[:40]!r}", number)
        if name == FIELD_MX:
            if not is_mx_pattern(value):
                raise PolicyError(StsPolicyError.INVALID_MX, f"{value[:80]!r}", number)
            mx.append(value)
            continue
        if name == FIELD_MAX_AGE:
            max_age = _parse_max_age(value)
            if max_age is None:
                raise PolicyError(StsPolicyError.INVALID_MAX_AGE, f"{value[:40]!r}", number)
            fields[name] = max_age
            continue
        fields[name] = value
    # Pass 3: presence.
    for name in SINGLE_FIELDS:
        if name not in fields:
            raise PolicyError(StsPolicyError.of(f"missing_{name}"), f"no {name!r} field")
    if not mx and fields[FIELD_MODE] != StsMode.NONE:
        raise PolicyError(StsPolicyError.MISSING_MX, "no 'mx' field and mode is not none")
    return Policy(
        version=str(fields[FIELD_VERSION]),
        mode=str(fields[FIELD_MODE]),
        mx=tuple(mx),
        max_age=int(fields[FIELD_MAX_AGE]),  # type: ignore[call-overload]
        extensions=tuple(extensions),
    )


# --- fetch rules (RFC 8461 §3.3) ---------------------------------------------------------


def media_type(content_type: str | None) -> str | None:
    """The lower-case ``type/subtype`` of a Content-Type value, parameters dropped."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip(" \t").lower() or None


def evaluate_fetch(
    status: int,
    content_type: str | None,
    redirect: bool,
    body: bytes,
    elapsed_s: float = 0.0,
) -> FetchResult:
    """Apply RFC 8461 §3.3 to one HTTP response and parse the body if it passes.

    ``redirect`` says the client followed a redirect to get here; ``body`` is what
    was read, which the fetcher caps at MAX_POLICY_BYTES + 1 octets so that an
    over-long body shows as too_large; ``elapsed_s`` is the time the whole GET took.
    """
    error: StsPolicyError | None = None
    detail = ""
    if redirect or status in REDIRECT_STATUSES:
        error, detail = StsPolicyError.REDIRECT, f"status {status}"
    elif status != 200:
        error, detail = StsPolicyError.HTTP_STATUS, f"status {status}"
    elif media_type(content_type) != "text/plain":
        error, detail = StsPolicyError.CONTENT_TYPE, repr(content_type)[:80]
    elif not elapsed_s <= FETCH_TIMEOUT_S:  # NaN counts as too slow
        error, detail = StsPolicyError.TIMEOUT, f"{elapsed_s} s"
    elif len(body) > MAX_POLICY_BYTES:
        error, detail = StsPolicyError.TOO_LARGE, f"{len(body)} octets"
    if error is not None:
        return FetchResult(valid=False, error=error, detail=detail)
    try:
        policy = parse_policy(body)
    except PolicyError as exc:
        return FetchResult(valid=False, error=exc.category, detail=str(exc))
    return FetchResult(valid=True, policy=policy)


# --- MX patterns (RFC 8461 §4.1) ---------------------------------------------------------


def mx_matches(pattern: str, mx_host: str) -> bool:
    """Does one policy ``mx`` pattern match an MX host name?

    Case-insensitive, one trailing dot ignored on both sides, U-labels in the
    host compared as A-labels, ``*.`` standing for exactly one left-most label.
    Shares the label matcher with certificate names (survey.proto.names).
    """
    if not isinstance(pattern, str) or not isinstance(mx_host, str):
        return False
    host = normalise_reference(mx_host)
    if host is None:
        return False
    if pattern.endswith("."):
        pattern = pattern[:-1]
    return match_presented(pattern, host, min_wildcard_suffix_labels=1)


def policy_matches(policy: Policy, mx_host: str) -> bool:
    """Is the MX host allowed by any of the policy's patterns?"""
    return any(mx_matches(pattern, mx_host) for pattern in policy.mx)


# --- sender verdicts (docs/design.md "Verdict definitions") -------------------------------


def sts_verdict(mode: str | None, session_ok: bool) -> StsVerdict:
    """What a sender without a cached policy does with one (MX, IP) (RFC 8461 §5).

    ``mode`` is None without a valid policy. ``session_ok`` means the MX matched
    the policy, STARTTLS worked and the certificate was valid for the MX host.
    """
    if mode not in ACTIVE_MODES:
        return VERDICT_NO_POLICY
    if mode == StsMode.TESTING or session_ok:
        return VERDICT_DELIVER
    return VERDICT_FAIL


def sts_domain_verdict(mode: str | None, sessions_ok: Iterable[bool]) -> StsVerdict:
    """Would a sender deliver to the domain through some MX? (``sts_domain_verdict``)."""
    verdicts = {sts_verdict(mode, ok) for ok in sessions_ok}
    if mode not in ACTIVE_MODES:
        return VERDICT_NO_POLICY
    if mode == StsMode.TESTING or VERDICT_DELIVER in verdicts:
        return VERDICT_DELIVER
    return VERDICT_FAIL  # enforce, and no MX (or none at all) could be used
