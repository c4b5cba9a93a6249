"""Checker for smtp_replies*.json (RFC 5321 §4.2; RFC 3207 §4; RFC 3463 §2).

The checker drives ``ReplyParser`` the way the scanner does: one ``feed`` per
chunk (a read off the socket), ``next_event`` until ``NEED_DATA`` after each,
end of stream after the last chunk. With ``after: STARTTLS`` a first reply of
220 is followed at once by ``start_tls()``, so anything the server sent after
it -- in the same read or a later one -- is ``data_after_starttls``.
"""

from __future__ import annotations

from survey.proto.smtp import (
    Reply,
    ReplyParser,
    SMTPProtocolError,
    classify_greeting,
    classify_starttls,
    parse_ehlo,
)

AFTER_VALUES = {None, "connect", "EHLO", "STARTTLS", "MAIL", "RCPT"}
KNOWN_EXPECT = {"replies", "error", "greeting", "ehlo", "starttls"}


def run(chunks: list[bytes], after: str | None) -> tuple[list[Reply], str | None]:
    """Replies and error kind (or None) for a stream read as ``chunks``."""
    parser = ReplyParser()
    replies: list[Reply] = []

    def drain() -> None:
        while isinstance(event := parser.next_event(), Reply):
            replies.append(event)
            if after == "STARTTLS" and len(replies) == 1 and event.code == 220:
                parser.start_tls()

    try:
        # A read never returns b"" before end of stream: empty chunks carry nothing.
        for chunk in filter(None, chunks):
            parser.feed(chunk)
            drain()
        parser.eof()
        drain()
    except SMTPProtocolError as error:
        return replies, error.kind
    return replies, None


def reply_json(reply: Reply) -> dict:
    return {"code": reply.code, "lines": list(reply.lines), "enhanced_code": reply.enhanced_code}


def ehlo_json(reply: Reply | None) -> dict | None:
    ehlo = parse_ehlo(reply) if reply is not None else None
    if ehlo is None:
        return None
    return {
        "domain": ehlo.domain,
        "greet": ehlo.greet,
        "keywords": {keyword: list(params) for keyword, params in ehlo.keywords.items()},
    }


def check(case: dict) -> None:
    inp, expect = case["input"], case["expect"]
    after = inp.get("after")
    assert after in AFTER_VALUES, f"{case['id']}: unknown 'after' value {after!r}"
    unknown = set(expect) - KNOWN_EXPECT
    assert not unknown, f"{case['id']}: this checker does not know expect keys {sorted(unknown)}"

    replies, error = run([chunk.encode("latin-1") for chunk in inp["chunks"]], after)
    first = replies[0] if replies else None
    got: dict = {"replies": [reply_json(r) for r in replies], "error": error}
    if "greeting" in expect:
        got["greeting"] = classify_greeting(first) if first else None
    if "ehlo" in expect:
        got["ehlo"] = ehlo_json(first)
    if "starttls" in expect:
        got["starttls"] = classify_starttls(first) if first else None
    want = {key: expect.get(key) for key in got}
    assert got == want, case["id"]


CHECKERS = {"smtp_replies": check}
