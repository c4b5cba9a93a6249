"""Which hellos a server gets: the order of the offers, and the discovery that saves hellos.

Theory of operation
-------------------
proto/enumerate.py's ``SuiteEnumeration`` finds every suite at one version
with ``n + 1`` hellos per chunk of candidates, and then spends one more hello
on the preference test whenever the discovery picks are all what a
client-order server would have picked. Per server that overhead is one hello
per supported version, which breaks the connection budget the scanner
promises (supported pairs + versions probed + 2, the starttls connection
included). Three things remove it; all of them are pure, like the state
machine they extend:

1. **A hint for the first version.** The starttls connection already told us
   the server's highest version and the suite it chose there from OpenSSL's
   offer. A server that enforces its order chose its favourite; a server that
   follows the client chose OpenSSL's first. ``candidate_order`` puts that
   suite *last* in our first offer: a server-order server picks it anyway,
   a client-order server picks something else, so the first pick already
   contradicts one of the two models (when the server has two suites or more).

2. **What one version taught the next.** After a version whose order the
   server enforces, the next version's offer starts with those suites in the
   *reverse* of the server's order: a server-order server picks its favourite
   from the back, a client-order server the first one, and the discovery
   contradicts the client model by itself. A client-order (or undecided)
   previous version makes a client-order server the expectation.

3. **Folding the preference test into the last discovery hello.** While the
   picks so far are consistent with client order and client order is
   expected, each discovery offer carries the suites found so far at its
   *end*, in reverse discovery order. A client-order server picks an unknown
   suite if it supports one (discovery goes on as usual) and otherwise the
   last found suite: that single hello proves both "no other suite here"
   and "client order", where the plain machine needed a refusal and a test
   hello. A server-order server picks its favourite (the first found suite)
   instead; that proves server order, costs the one hello the test would
   have cost, and discovery continues plainly. A "mixed" server (equal
   preference groups, ChaCha prioritisation) can be misread by a fold: it is
   reported as client order there. Alternate discovery offers are sent in
   reverse order ("zigzag"), so a server-order server's picks contradict the
   client model early.

Chunks: proto/enumerate.py offers at most 128 suites a hello (testssl.sh's
choice for servers that choke on long lists). The scanner first offers every
candidate of the version in one hello (235 at TLS 1.2: a 694-byte record,
where the OpenSSL client here offers 158 suites); only when that hello is
refused without a version reason (``needs_chunks``) and the version is
likely there (scan/enumeration.py decides) does the version start over in
chunks of 128. A server that chokes costs two extra hellos, every other
server none.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from survey.proto import ciphers
from survey.proto.enumerate import (
    DEFAULT_CHUNK,
    Outcome,
    Refused,
    SuiteEnumeration,
    VersionResult,
    version_refusal,
)

VERSIONS = ciphers.VERSIONS


@functools.cache
def _candidates(version: str) -> tuple[int, ...]:
    return ciphers.scan_candidates(version)   # sorts the registry: once per version


def candidate_order(version: str, *, hint: int | None = None,
                    known: Sequence[int] = ()) -> tuple[int, ...]:
    """The candidates of ``version`` in the order of our first offer.

    ``known``: a server order learnt at another version (best first); its
    suites lead, reversed. ``hint``: the suite the server chose for the
    starttls connection at this version; it goes last.
    """
    order = list(_candidates(version))
    if known:
        members = set(order)
        lead = [s for s in reversed(known) if s in members]
        chosen = set(lead)
        order = lead + [s for s in order if s not in chosen]
    if hint is not None and hint in order:
        order.remove(hint)
        order.append(hint)
    return tuple(order)


def _consistent(history: Iterable[tuple[tuple[int, ...], int]], supported: set[int]) -> bool:
    """Every pick so far is what a client-order server would have picked."""
    for offer, pick in history:
        if next((s for s in offer if s in supported), None) != pick:
            return False
    return True


class GuidedEnumeration(SuiteEnumeration):
    """``SuiteEnumeration`` with a hint, a prior and folded preference tests (module doc).

    ``prior``: ``client`` or ``server``, what another version of this server
    did; ``hint``: the starttls connection's suite at this version. It
    overrides the machine's hooks (proto/enumerate.py, "Hooks") and nothing else.
    """

    def __init__(self, version: str, candidates: Sequence[int], *, hint: int | None = None,
                 prior: str | None = None, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.hint = hint
        self.prior = prior
        self._client_proof = False
        super().__init__(version, candidates, chunk_size=chunk_size)

    def _expect_client(self, history: Sequence[tuple[tuple[int, ...], int]]) -> bool:
        if self.prior is not None:
            return self.prior == "client"
        if self.hint is not None and history:
            return history[0][1] != self.hint
        return True

    def discovery_offer(self, chunk: Sequence[int], chain: Sequence[int]) -> Sequence[int]:
        """Zigzag (every other offer reversed), the found suites folded in at the end."""
        base = tuple(chunk[::-1]) if len(chain) % 2 else tuple(chunk)
        history = self.history
        fold = (not self._client_proof and len(chain) >= 2
                and _consistent(history, set(self.found)) and self._expect_client(history))
        return base + tuple(chain[::-1]) if fold else base

    def known_pick(self, suite: int, chain: Sequence[int]) -> bool:
        """The last found suite: client order, nothing else in this chunk; else server order."""
        if suite == chain[-1]:
            self._client_proof = True
            return True
        return False   # a known suite other than the client's pick: go on plainly

    def settled_preference(self) -> str | None:
        found = set(self.found)
        if len(found) >= 2 and self._client_proof:
            return "client" if _consistent(self.history, found) else "mixed"
        return None


def needs_chunks(first: Outcome | None, candidates: int, chunk_size: int) -> bool:
    """Was the one-hello offer of every candidate refused in a way chunks might get past?"""
    return (candidates > DEFAULT_CHUNK and chunk_size > DEFAULT_CHUNK
            and isinstance(first, Refused) and not version_refusal(first))


# -- the hosts columns -------------------------------------------------------------------

def versions_supported(results: Iterable[VersionResult]) -> list[str]:
    found = {r.version for r in results if r.supported}
    return [v for v in VERSIONS if v in found]


def enforced(result: VersionResult) -> bool | None:
    """``server_preference.enforced``: None with fewer than two suites or no clear answer."""
    if len(result.suites) < 2:
        return None
    return {"server": True, "client": False}.get(result.preference)


def server_preference(results: Iterable[VersionResult]) -> list[dict[str, Any]]:
    return [{"version": r.version, "enforced": enforced(r)}
            for r in _in_order(results) if r.supported]


def cipher_suites(results: Iterable[VersionResult]) -> list[dict[str, Any]]:
    """``{version, name, preference_order}``; the order only where the server enforces one."""
    rows = []
    for r in _in_order(results):
        ranked = enforced(r) is True and r.ordered
        for i, code in enumerate(r.suites):
            rows.append({"version": r.version, "name": ciphers.name_for_code(code),
                         "preference_order": i + 1 if ranked else None})
    return rows


def _in_order(results: Iterable[VersionResult]) -> list[VersionResult]:
    return sorted(results, key=lambda r: ciphers.version_index(r.version))
