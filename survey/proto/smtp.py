"""SMTP replies (RFC 5321 §4.2), EHLO capabilities, and what a refusal means.

Theory of operation
-------------------
``ReplyParser`` is an h11-style protocol object: the network layer hands it
whatever a read returned (``feed``), then pulls complete ``Reply`` values out
(``next_event``) until it gets ``NEED_DATA``. It never sees a socket, so the
same code runs against vectors, fuzzers and the wire. A read that returns
``b""`` is end of stream: ``feed(b"")`` and ``eof()`` are the same call.

``feed`` splits the bytes into lines as they arrive and parses every line
that is complete; ``next_event`` only hands out what ``feed`` produced.
Parsing at feed time keeps the caps about the peer's bytes, never about how
the reads happened to be cut, so one stream gives the same replies and the
same error in any chunking (tests/test_proto_smtp.py checks this with
hypothesis). Bytes of an unfinished line are kept only while they are under
the caps; a 10 MB line with no line end is refused as soon as it reaches
``max_line`` octets, and nothing past that is copied.

What the parser keeps, and its caps (all per parser, all checked as bytes
arrive):

- the unfinished line: fewer than ``max_line`` octets (default 8192; a line
  counts with its CRLF or LF, so 8192 octets in all is accepted and 8193 is
  ``line_too_long`` -- tests/vectors/README.md decision 6; RFC 5321 §4.5.3.1.5
  makes 512 the minimum to accept, not a maximum);
- the lines of the unfinished reply: at most ``max_lines`` lines (default
  1000, else ``too_many_lines``) and at most ``max_reply_bytes`` octets,
  unfinished line included (default 128 KiB, else ``reply_too_large``);
- complete replies not yet pulled with ``next_event``: these are the caller's
  own reads, parsed; the network layer reads a bounded amount at a time and
  drains the parser after every read.

A cap is refused at the first octet that makes it certain (an unfinished line
of ``max_line`` octets can only end over the cap), and when two caps would
trip on the same line the one that trips first in byte order wins, so the
error kind does not depend on chunking either.

Errors are the peer's fault and come as ``SMTPProtocolError(kind, message)``
from ``next_event``, after every reply completed before the error (those stay
available). The error is sticky: later calls raise it again, later bytes are
dropped. Misuse by our own code (feeding after end of stream, ``start_tls``
without a 220) is a ``RuntimeError``, never an ``SMTPProtocolError``.

Line grammar (RFC 5321 §4.2), checked in this order when a line ends:

- a line ends at LF; a CR just before it belongs to the line end. A bare LF
  is accepted (README decision 6; §2.3.8 forbids it but real clients take
  it); any other CR stays in the text;
- fewer than three octets before the line end: ``syntax``;
- three octets that are not all ASCII digits (a leading space included):
  ``bad_code``;
- a first digit outside 2-5: ``code_out_of_range`` (the ABNF is %x32-35; 1yz
  is not used in SMTP). The second and third digits may be any digit (README
  decision 6: §4.2's prose over the ABNF's %x30-35 for the second digit);
- then SP (a final line), "-" (a continuation) or the line end (a final line
  with empty text, ``Reply-code [ SP textstring ] CRLF``); anything else is
  ``syntax``;
- every line of a multi-line reply carries the same code (§4.2.1, "MUST be
  the same"), else ``inconsistent_code``.

The text is kept as sent (trailing blanks, tabs, stray CRs, control
characters, all of it), decoded as UTF-8 with U+FFFD for invalid bytes
(RFC 6531 servers send UTF-8). ``Reply.raw`` keeps the exact octets for
transcripts; escaping for display is another module's job.

STARTTLS (RFC 3207 §4.2): after a 220 to STARTTLS the next bytes on the wire
must be the server's TLS handshake, which only starts after our ClientHello.
Plaintext that the server sent after the 220 -- already parsed into replies,
half a line, or anything fed later -- is an injection attempt (the classic
STARTTLS command-injection bug) and must never be read as replies: call
``start_tls()`` when the 220 arrives, before handing the stream to TLS. It
raises ``data_after_starttls`` and drops what followed the 220 if anything
did; after it, any further plaintext fed is the same error.

Enhanced status codes (RFC 3463 §2, RFC 2034 §4): ``Reply.enhanced_code`` is
``class "." subject "." detail`` at the very start of the first line's text,
class 2, 4 or 5, subject and detail 1 to 3 ASCII digits each (leading zeros
kept), followed by SP or the end of the text (RFC 2034: "always followed by
one or more spaces"). RFC 2034 §4 requires the class to "agree with the
primary response code", so a code whose class differs from the reply's first
digit (``250 4.0.0 ...``) is not an enhanced code: None. Only the first line
counts; the other lines keep their codes in their text, as sent.

Classification (pure functions, for the scanner):

- ``classify_greeting``: 220 ``accepted``; 4xx/5xx ``rejected`` (RFC 5321
  §3.1: 554 "no SMTP service here"; §3.8: 421 at any time, the first reply
  included); any other code ``unexpected``.
- ``classify_starttls``: 220 ``ready``; 4xx ``temporary_failure`` (RFC 3207
  §4: 454); 5xx ``rejected`` (RFC 3207 §4: 501; 5xx generally); other codes
  ``unexpected``. None of these is "no STARTTLS": that is an EHLO fact.
- ``classify_refusal``: the server status (``hosts.status``) of a 4xx/5xx reply:
  ``rate_limited`` when a 4xx reply's text names a connection or rate limit
  (the phrases and where they come from are listed at ``_RATE_LIMIT``),
  otherwise ``smtp_reject_4xx``; every 5xx is ``smtp_reject_5xx``, whatever
  it says (docs/design.md "Outcomes are rows": ``rate_limited`` is a 4xx). What
  a refusal that clears on a later retry becomes needs a clock and a second
  connection, so it belongs to the scanner (survey/scan/servers.py), not here.
- ``starttls_refusal_status``: the server status when STARTTLS was offered
  but refused: ``rate_limited`` (Postfix's "454 4.7.0 Error: too many new TLS
  sessions from ...") or ``starttls_rejected``. Never ``no_starttls``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from survey.proto.sentinels import CLOSED, NEED_DATA, Sentinel
from survey.vocabulary import HostStatus

__all__ = [
    "CLOSED",
    "ERROR_KINDS",
    "NEED_DATA",
    "Ehlo",
    "Reply",
    "ReplyParser",
    "SMTPProtocolError",
    "classify_greeting",
    "classify_refusal",
    "classify_starttls",
    "parse_ehlo",
    "parse_stream",
    "starttls_refusal_status",
]

MAX_LINE: Final = 8192  # octets per line, line end included (README decision 6)
MAX_LINES: Final = 1000  # lines per reply
MAX_REPLY_BYTES: Final = 16 * MAX_LINE  # octets per unfinished reply, 128 KiB

ERROR_KINDS: Final = frozenset({
    "incomplete",  # end of stream inside a line or a multi-line reply
    "syntax",  # under 3 octets, or no SP / "-" / line end after the code
    "bad_code",  # the first three octets are not three ASCII digits
    "code_out_of_range",  # first digit outside 2-5 (RFC 5321 §4.2 ABNF)
    "inconsistent_code",  # codes differ inside a multi-line reply (§4.2.1)
    "line_too_long",  # a line over max_line octets
    "too_many_lines",  # a reply over max_lines lines
    "reply_too_large",  # an unfinished reply over max_reply_bytes octets
    "data_after_starttls",  # plaintext after the 220 to STARTTLS (RFC 3207 §4.2)
})


class SMTPProtocolError(Exception):
    """The peer broke the reply grammar or a cap: its fault, not ours.

    ``kind`` is one of ``ERROR_KINDS`` (a stable value for datasets and
    tests); ``message`` says what was seen, for logs.
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown SMTPProtocolError kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message



# RFC 3463 §2 / RFC 2034 §4: status-code = class "." subject "." detail,
# class = "2" / "4" / "5", subject = 1*3digit, detail = 1*3digit; followed by SP.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |\Z)")


@dataclass(frozen=True)
class Reply:
    """One complete SMTP reply: its code and each line's text after the code.

    ``raw`` is the exact octets received (line ends included), for
    transcripts; it does not take part in equality, so ``Reply(250, ("OK",))``
    compares equal to a parsed ``250 OK``.
    """

    code: int
    lines: tuple[str, ...]
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code!r} is not 2yz..5yz")
        lines = tuple(self.lines)
        if not lines or not all(isinstance(line, str) for line in lines):
            raise ValueError("a reply has at least one line of text")
        object.__setattr__(self, "lines", lines)

    @property
    def text(self) -> str:
        """All lines' text, joined with LF."""
        return "\n".join(self.lines)

    @property
    def enhanced_code(self) -> str | None:
        """RFC 3463 class.subject.detail from the start of the first line, or None.

        The class must agree with the reply code's first digit (RFC 2034 §4).
        """
        match = _ENHANCED.match(self.lines[0])
        if match is None or int(match.group(1)) != self.code // 100:
            return None
        return f"{match.group(1)}.{match.group(2)}.{match.group(3)}"

    @property
    def is_transient(self) -> bool:
        """A 4yz reply (RFC 5321 §4.2.1: transient negative completion)."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """A 5yz reply (RFC 5321 §4.2.1: permanent negative completion)."""
        return 500 <= self.code < 600


class ReplyParser:
    """Incremental SMTP reply parser: ``feed`` bytes, pull ``Reply`` values.

    See the module docstring for the grammar, the caps and the error kinds.
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_lines: int = MAX_LINES,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        if max_line < 4:  # "250" plus a line end is the shortest valid line
            raise ValueError("max_line must be at least 4 octets")
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        if max_reply_bytes < max_line:
            raise ValueError("max_reply_bytes must be at least max_line")
        self.max_line = max_line
        self.max_lines = max_lines
        self.max_reply_bytes = max_reply_bytes
        self._partial = bytearray()  # the unfinished line, under the caps
        self._code: int | None = None  # code of the unfinished multi-line reply
        self._texts: list[str] = []  # its lines' text so far
        self._raws: list[bytes] = []  # its lines' octets so far
        self._reply_bytes = 0  # sum of len(self._raws)
        self._ready: deque[Reply] = deque()  # complete replies not yet pulled
        self._error: SMTPProtocolError | None = None
        self._eof = False
        self._tls = False  # start_tls() passed: no more plaintext allowed
        self._last: Reply | None = None  # the last reply next_event returned

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the bytes one read returned; ``b""`` means end of stream."""
        if self._eof:
            raise RuntimeError("feed() after end of stream")
        if not data:
            self.eof()
            return
        if self._error is not None:
            return  # sticky: nothing after an error is read
        if self._tls:
            self._fail("data_after_starttls",
                       f"{len(data)} plaintext octets after the 220 to STARTTLS")
            return
        data = bytes(data) if not isinstance(data, bytes) else data
        pos, size = 0, len(data)
        while pos < size:
            newline = data.find(b"\n", pos)
            end = size if newline < 0 else newline
            if self._over_cap(len(self._partial) + end - pos):
                return
            if newline < 0:
                self._partial += data[pos:]
                return
            line = bytes(self._partial) + data[pos:newline + 1]
            self._partial.clear()
            pos = newline + 1
            if not self._take_line(line):
                return

    def eof(self) -> None:
        """The peer closed its side: an unfinished line or reply is ``incomplete``."""
        if self._eof:
            return
        self._eof = True
        if self._error is None and (self._partial or self._raws):
            what = "a line" if self._partial else "a multi-line reply"
            self._fail("incomplete", f"end of stream inside {what}")

    def start_tls(self) -> None:
        """Call on a 220 to STARTTLS, before the TLS handshake (RFC 3207 §4.2).

        Raises ``data_after_starttls`` if the server sent anything after the
        220 (what it sent is dropped, never returned as replies); from then on
        any plaintext fed is the same error.
        """
        if self._last is None or self._last.code != 220 or self._tls:
            raise RuntimeError("start_tls() needs a 220 reply just returned by next_event()")
        self._tls = True
        if self._ready or self._raws or self._partial or self._error is not None:
            self._ready.clear()
            self._partial.clear()
            self._reset_reply()
            self._error = None
            self._fail("data_after_starttls", "the server sent more after its 220 to STARTTLS")
            raise self._error  # type: ignore[misc]

    # -- output --------------------------------------------------------------

    def next_event(self) -> Reply | Sentinel:
        """The next complete ``Reply``, ``NEED_DATA``, or ``CLOSED`` after a clean EOF.

        Raises ``SMTPProtocolError`` once the replies completed before an
        error have all been returned, and on every call after that.
        """
        if self._ready:
            self._last = self._ready.popleft()
            return self._last
        if self._error is not None:
            raise self._error
        return CLOSED if self._eof else NEED_DATA

    @property
    def buffered_bytes(self) -> int:
        """Octets held for the unfinished reply (its lines plus the unfinished line)."""
        return self._reply_bytes + len(self._partial)

    @property
    def has_pending_data(self) -> bool:
        """True when anything fed has not been returned as a reply yet."""
        return bool(self._ready or self._raws or self._partial)

    # -- internals -----------------------------------------------------------

    def _fail(self, kind: str, message: str) -> None:
        if self._error is None:
            self._error = SMTPProtocolError(kind, message)
        self._partial.clear()
        self._reset_reply()

    def _reset_reply(self) -> None:
        self._code = None
        self._texts = []
        self._raws = []
        self._reply_bytes = 0

    def _over_cap(self, prefix: int) -> bool:
        """Check ``prefix`` octets of a line seen before its LF against both caps.

        The line will end with at least one more octet (the LF), so a prefix
        of ``max_line`` octets is already over; likewise for the reply. The
        cap with the lower threshold trips first whatever the chunking.
        """
        line_limit = self.max_line
        reply_limit = self.max_reply_bytes - self._reply_bytes
        if prefix < min(line_limit, reply_limit):
            return False
        if line_limit <= reply_limit:
            self._fail("line_too_long", f"a line reached {self.max_line} octets without ending")
        else:
            self._fail("reply_too_large", f"a reply reached {self.max_reply_bytes} octets")
        return True

    def _take_line(self, line: bytes) -> bool:
        """Parse one complete line (LF included); False after an error."""
        body = line[:-1]
        if body.endswith(b"\r"):
            body = body[:-1]
        if len(body) < 3:
            self._fail("syntax", f"line too short for a reply code: {body!r}")
            return False
        digits = body[:3]
        if not digits.isdigit():  # bytes.isdigit() is ASCII-only
            self._fail("bad_code", f"reply code is not three digits: {digits!r}")
            return False
        if digits[0] not in b"2345":
            self._fail("code_out_of_range", f"reply code {digits.decode()} is not 2yz..5yz")
            return False
        separator = body[3:4]
        if separator not in (b"", b" ", b"-"):
            self._fail("syntax", f"{separator!r} after the reply code, not SP or '-'")
            return False
        code = int(digits)
        if self._code is not None and code != self._code:
            self._fail("inconsistent_code",
                       f"code {code} inside a multi-line {self._code} reply")
            return False
        if len(self._raws) >= self.max_lines:
            self._fail("too_many_lines", f"a reply has more than {self.max_lines} lines")
            return False
        self._code = code
        self._texts.append(body[4:].decode("utf-8", "replace"))
        self._raws.append(line)
        self._reply_bytes += len(line)
        if separator != b"-":
            self._ready.append(Reply(code, tuple(self._texts), b"".join(self._raws)))
            self._reset_reply()
        return True


def parse_stream(
    chunks: Iterable[bytes], **caps: int
) -> tuple[list[Reply], SMTPProtocolError | None]:
    """Every reply in a finished stream, then its error (None if it ended cleanly).

    For transcripts and tests; the scanner drives ``ReplyParser`` itself.
    Empty chunks are skipped: end of stream comes after the last chunk.
    """
    parser = ReplyParser(**caps)
    replies: list[Reply] = []
    try:
        for chunk in [*filter(None, chunks), b""]:
            parser.feed(chunk)
            while isinstance(event := parser.next_event(), Reply):
                replies.append(event)
    except SMTPProtocolError as error:
        return replies, error
    return replies, None


# -- EHLO (RFC 5321 §4.1.1.1) ------------------------------------------------

# ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_BLANKS = re.compile(r"[ \t]+")
_SIZE_DIGITS = re.compile(r"[0-9]{1,20}\Z")


@dataclass(frozen=True)
class Ehlo:
    """What a 250 reply to EHLO says (RFC 5321 §4.1.1.1).

    ``keywords`` maps each upper-cased keyword to its parameters as sent;
    the first line naming a keyword wins. ``junk`` keeps, as sent, the lines
    that are not ``ehlo-keyword *(SP ehlo-param)``.
    """

    domain: str | None
    greet: str | None
    keywords: Mapping[str, tuple[str, ...]]
    junk: tuple[str, ...] = ()

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords

    def params(self, keyword: str) -> tuple[str, ...] | None:
        """The parameters of ``keyword``, or None when it is not offered."""
        return self.keywords.get(keyword.upper())

    def capability_list(self) -> list[str]:
        """Dataset form: ``"KEYWORD p1 p2"`` per keyword, sorted by code point.

        Keywords are upper-cased, parameters kept as sent and joined by one
        SP; junk lines are not capabilities and are left out.
        """
        return sorted(" ".join((keyword, *params)) for keyword, params in self.keywords.items())

    @property
    def starttls(self) -> bool:  # RFC 3207
        return "STARTTLS" in self.keywords

    @property
    def pipelining(self) -> bool:  # RFC 2920
        return "PIPELINING" in self.keywords

    @property
    def smtputf8(self) -> bool:  # RFC 6531
        return "SMTPUTF8" in self.keywords

    @property
    def chunking(self) -> bool:  # RFC 3030
        return "CHUNKING" in self.keywords

    @property
    def requiretls(self) -> bool:  # RFC 8689
        return "REQUIRETLS" in self.keywords

    @property
    def eightbitmime(self) -> bool:  # RFC 6152
        return "8BITMIME" in self.keywords

    @property
    def enhancedstatuscodes(self) -> bool:  # RFC 2034
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def dsn(self) -> bool:  # RFC 3461
        return "DSN" in self.keywords

    @property
    def size(self) -> int | None:
        """RFC 1870 SIZE limit in octets; 0 means "no fixed maximum".

        None when SIZE is not offered, has no parameter, or the parameter is
        not a number of at most 20 digits.
        """
        params = self.keywords.get("SIZE")
        if not params or not _SIZE_DIGITS.match(params[0]):
            return None
        return int(params[0])

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """RFC 4954 AUTH mechanisms, upper-cased (the old ``AUTH=`` form is junk)."""
        return tuple(mechanism.upper() for mechanism in self.keywords.get("AUTH", ()))


def parse_ehlo(reply: Reply) -> Ehlo | None:
    """The capabilities in a reply to EHLO, or None when it is not a 250.

    ``ehlo-ok-rsp``: the first line is ``Domain [SP ehlo-greet]``, each
    further line ``ehlo-keyword *(SP ehlo-param)``. Keywords are matched
    case-insensitively (§4.1.1.1 "MUST") and stored upper-cased. Leniencies:
    runs of SP or HT separate words; a bad line lands in ``junk`` and never
    stops the others from being read.
    """
    if reply.code != 250:
        return None
    first = reply.lines[0]
    parts = _BLANKS.split(first, maxsplit=1)
    domain = parts[0] or None
    greet = parts[1] if len(parts) > 1 and parts[1] else None
    keywords: dict[str, tuple[str, ...]] = {}
    junk: list[str] = []
    for line in reply.lines[1:]:
        words = [word for word in _BLANKS.split(line) if word]
        if not words or line[:1] in (" ", "\t") or not _KEYWORD.match(words[0]):
            junk.append(line)
            continue
        keywords.setdefault(words[0].upper(), tuple(words[1:]))
    return Ehlo(domain, greet, MappingProxyType(keywords), tuple(junk))


# -- Classification ------------------------------------------------------------

GreetingClass = Literal["accepted", "rejected", "unexpected"]
StarttlsClass = Literal["ready", "temporary_failure", "rejected", "unexpected"]


def classify_greeting(reply: Reply) -> GreetingClass:
    """220 opens the session; 4xx/5xx (421, 554) refuse it (RFC 5321 §3.1, §3.8)."""
    if reply.code == 220:
        return "accepted"
    if reply.code >= 400:
        return "rejected"
    return "unexpected"


def classify_starttls(reply: Reply) -> StarttlsClass:
    """RFC 3207 §4: 220 go ahead, 454 temporary reason, 501 syntax error."""
    if reply.code == 220:
        return "ready"
    if reply.is_transient:
        return "temporary_failure"
    if reply.is_permanent:
        return "rejected"
    return "unexpected"


# Phrases by which a 4xx names a connection or rate limit. Matched
# case-insensitively anywhere in the reply's text. Sources (exact strings):
#   Postfix smtpd (anvil): "421 4.7.0 <host> Error: too many connections from <ip>",
#     "Error: too many connections" (process limit), "454 4.7.0 Error: too many new
#     TLS sessions from <ip>" (smtpd_client_new_tls_session_rate_limit),
#     "Error: too much mail from <ip>" (smtpd_client_message_rate_limit).
#   Exim smtp_in.c: "421 <host>: Too many concurrent SMTP connections; please try
#     again later", and per host "421 Too many concurrent SMTP connections from
#     this IP address; please try again later."; Amazon SES "421 Too many
#     concurrent SMTP connections".
#   Sendmail: "421 4.3.2 Connection rate limit exceeded.", "Too many SMTP
#     sessions for this host"; Free.fr "trop de connexions" (via Sisimai's
#     RateLimited / TooManyConn tables).
#   Microsoft Exchange / 365: "421 4.3.2 The maximum number of concurrent server
#     connections has exceeded a limit, closing transmission channel" (and "... a
#     per-source limit ...").
#   Gmail: "421-4.7.28 ... has been temporarily rate limited", "421 4.7.28 ...
#     exceeded the rate ...", "421 4.4.5 Server busy, try again later."
#   Yahoo: "421 4.7.0 [TSS04] Messages from <ip> temporarily deferred due to
#     unexpected volume or user complaints".
#   Comcast: "421 4.1.0 <ip> Throttled - try again later"; SendGrid "all available
#     IPs are at maximum connection limit"; Postfix policy throttles "451 4.7.1
#     ... Please try again slower".
# Deliberately NOT matched: "try again later" alone (Gmail's "421 4.7.0 Try again
# later, closing connection." is also its answer to a bad EHLO name),
# "Service not available, closing transmission channel" (RFC 5321 §3.8),
# Postfix "Error: too many errors", Exim "Too much load; please try again later"
# (server load, not a limit on us), greylisting, "too many recipients".
_RATE_LIMIT = re.compile(
    "|".join([
        r"\btoo\s+many\s+(?:(?:concurrent|simultaneous|parallel|open|active|new|"
        r"incoming|inbound|smtp|esmtp|tls)\s+){0,3}(?:connections?|sessions?|"
        r"connects)\b",
        r"\btrop\s+de\s+connexions\b",
        r"\bmaximum\s+number\s+of\s+(?:\w+\s+){0,3}(?:connections|sessions)\b",
        r"\b(?:connection|session)s?\s+(?:count\s+|rate\s+)?limit",
        r"\bmaximum\s+connection\s+limit\b",
        r"\bper-source\s+limit\b",
        r"\bconnection\s+rate\b",
        r"\brate[\s-]*limit",
        r"\bthrottl",
        r"\bexceeded\s+(?:the|its|your|our)\s+(?:\w+\s+)?(?:rate|quota)\b",
        r"\btoo\s+much\s+mail\b",
        r"\btoo\s+many\s+(?:messages|mails|emails)\s+from\b",
        r"\b(?:try\s+again|send(?:ing)?)\s+slower\b",
        r"\bslow\s+down\b",
        r"\b(?:too|server|system|host)\s+busy\b",
        r"\bunexpected\s+volume\b",
        r"\[TSS04\]",
    ]),
    re.IGNORECASE,
)


def names_rate_limit(text: str) -> bool:
    """True when the text names a connection or rate limit (see ``_RATE_LIMIT``)."""
    return _RATE_LIMIT.search(text) is not None


def classify_refusal(reply: Reply) -> HostStatus:
    """The server status (``hosts.status``) for a 4xx/5xx reply at greeting, EHLO or STARTTLS.

    A 4xx that names a connection or rate limit is ``rate_limited``, any other
    4xx (421 included) ``smtp_reject_4xx``, any 5xx ``smtp_reject_5xx``. A
    refusal that clears on a later retry ends ``ok`` (the scanner owns retries:
    survey.vocabulary.FINAL_STATUS_RULE); this function sees one reply.
    """
    if reply.is_transient:
        if names_rate_limit(reply.text):
            return HostStatus.RATE_LIMITED
        return HostStatus.SMTP_REJECT_4XX
    if reply.is_permanent:
        return HostStatus.SMTP_REJECT_5XX
    raise ValueError(f"a {reply.code} reply is not a refusal")


def starttls_refusal_status(reply: Reply) -> HostStatus:
    """Server status when STARTTLS was offered and the reply to it was not 220."""
    if reply.code == 220:
        raise ValueError("a 220 to STARTTLS is not a refusal")
    if reply.is_transient and names_rate_limit(reply.text):
        return HostStatus.RATE_LIMITED
    return HostStatus.STARTTLS_REJECTED
