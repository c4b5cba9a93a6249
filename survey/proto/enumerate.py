"""Cipher suite enumeration as a pure state machine: which hello to send next.

Theory of operation
-------------------
A server answers a ClientHello by picking one suite from the offer (or by
refusing). To find every suite it supports at one version with the fewest
connections:

1. **Discovery.** Offer every candidate. The server picks one: remove it and
   offer the rest again. Repeat until the server refuses (handshake_failure,
   another fatal alert, a clean close, or a ServerHello for another version).
   That is ``n + 1`` hellos for ``n`` supported suites, and the refusal
   proves no other candidate is supported. A first answer of protocol_version
   or a ServerHello for another version refuses the version itself: one
   hello, whatever the chunking. If the server enforces its own
   order, each pick is its top choice among what is left, so the picks come
   out in the server's preference order.

2. **Preference.** A server that follows the client's order picks, from each
   offer, the first offered suite it supports. If some discovery pick
   contradicts that (now that the supported set is known), the server
   enforces its own order and no extra hello is needed. Otherwise one more
   hello offers the supported suites in reverse: a client-order server picks
   the first of them, a server-order server picks its top choice again. A
   pick that neither model explains is reported as ``mixed`` (e.g. OpenSSL's
   PRIORITIZE_CHACHA, or BoringSSL-style equal-preference groups). With 0 or 1
   supported suites preference is ``undefined``: there is nothing to order.

3. **Chunks.** ~250 legacy suites in one hello exceed what some servers
   accept, so candidates go out in chunks of at most ``chunk_size`` (default
   128, as testssl.sh does). Discovery runs per chunk, so each chunk costs one
   refusal hello: ``n + chunks`` in all. The picks within a chunk are ordered,
   but chunks are not ordered against each other; when a server-order server
   has suites in more than one chunk, the chains are merged with two-suite
   "which of these" hellos, starting from the tail (is the best of the later
   chain below the worst of the merged list? one hello settles the common
   case where the legacy chunk holds only weaker suites) and falling back to
   galloping insertion (one hello per suite when the later chain ranks at the
   top), ``O(k log n)`` hellos at worst for ``k`` suites in later chunks.

Hello count per version, for ``n`` supported suites in one chunk: ``n + 1``
when the server's order differs from ours somewhere (the usual case for
server preference), ``n + 2`` when it follows the client's order or happens
to agree with ours. Each extra chunk adds one, and merging adds its
comparisons. TLS 1.3 has few suites: one chunk.

Everything here is pure: ``SuiteEnumeration.next_offer()`` says what to send,
``record(outcome)`` takes what the server did, ``result()`` says what was
found. The network layer builds the hello (``tlshello``), reads the answer,
and turns it into an outcome with ``outcome_from_events``.

Hooks
-----
A planner that knows more than the candidates (the scanner's guided
enumeration, scan/plans.py: a hint from the starttls connection, what
another version taught) subclasses ``SuiteEnumeration`` and overrides three
public methods; the machine keeps the loop, the chunks, the budget and the
stops:

* ``discovery_offer(chunk, chain)``: the suites of the next discovery hello.
  It holds every candidate of the chunk not found yet, in any order, and may
  add suites already found (a refusal of such an offer contradicts what was
  found and ends the enumeration as ``refused_known_suites``).
* ``known_pick(suite, chain)``: the server picked a suite found before (only
  an offer with found suites allows it); True (the default) ends the chunk's
  discovery, False sends the next discovery offer.
* ``settled_preference()``: the preference the discovery alone proved, or
  None (the default) for the test hellos of step 2.

The hooks read ``found`` (the suites found so far, all chunks, in discovery
order) and ``history`` (every discovery hello: the offer and the pick).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass

from . import ciphers
from .tlshello import Alert, HelloRetryRequest, ServerHello, TLSProtocolError

__all__ = [
    "DEFAULT_CHUNK",
    "Chosen",
    "Failed",
    "Offer",
    "Refused",
    "ServerEnumeration",
    "SuiteEnumeration",
    "VersionResult",
    "outcome_from_events",
    "run",
    "version_refusal",
]

DEFAULT_CHUNK = 128


@dataclass(frozen=True)
class Offer:
    """One hello to send: these suites, in this order, at this version.

    ``purpose``: ``discover``, ``preference`` (the reverse-order test) or
    ``order`` (a two-suite comparison while merging chunks).
    """

    version: str
    suites: tuple[int, ...]
    purpose: str = "discover"


@dataclass(frozen=True)
class Chosen:
    """The server answered with a ServerHello (or HelloRetryRequest) for this suite."""

    suite: int


@dataclass(frozen=True)
class Refused:
    """The server declined the offer: an alert name, ``closed``, ``reset``, or ``version:<v>``."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """No usable answer (timeout, garbage, a pick outside the offer): stop, keep what was found."""

    reason: str


Outcome = Chosen | Refused | Failed


def outcome_from_events(
    offer: Offer,
    events: Iterable[object],
    error: TLSProtocolError | None = None,
    transport: str | None = None,
) -> Outcome:
    """What the server did with ``offer``, from the parser's events.

    ``transport`` is how the connection ended if it did before a decision:
    ``closed`` and ``reset`` count as refusals (many servers just hang up on a
    version or suite they do not support), anything else (``timeout``...) as
    failure. A ServerHello for another version than offered is a refusal of
    the offered version (``version:TLSv1.2``); a HelloRetryRequest counts as a
    pick at TLS 1.3 (RFC 8446 §4.1.4: it names the suite).
    """
    for ev in events:
        if isinstance(ev, (ServerHello, HelloRetryRequest)):
            if ev.version != offer.version:
                return Refused(f"version:{ev.version or hex(ev.version_code)}")
            if ev.cipher_suite not in offer.suites:
                return Failed("suite_not_offered")
            return Chosen(ev.cipher_suite)
        if isinstance(ev, Alert) and (ev.fatal or ev.description == 0):
            return Refused(ev.name)
    if error is not None:
        return Failed(error.kind)
    if transport in ("closed", "reset", None):
        return Refused(transport or "closed")
    return Failed(transport)


@dataclass(frozen=True)
class VersionResult:
    """What the enumeration found at one version.

    ``supported``: True, False, or None when not even the first hello got an
    answer. ``suites``: the supported suites, in the server's order when
    ``preference == "server"`` (and ``ordered``), else in discovery order.
    ``preference``: ``server``, ``client``, ``mixed``, ``undefined`` (0 or 1
    suite) or ``unknown`` (the test hello failed). ``complete`` is False when a
    failure or the hello budget cut the enumeration short.
    """

    version: str
    supported: bool | None
    suites: tuple[int, ...]
    preference: str
    ordered: bool
    hellos: int
    complete: bool
    error: str | None = None

    @property
    def server_preference(self) -> bool | None:
        return {"server": True, "client": False}.get(self.preference)

    @property
    def suite_names(self) -> tuple[str, ...]:
        return tuple(ciphers.name_for_code(c) for c in self.suites)


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class SuiteEnumeration:
    """The offers that find every supported suite at one version, and its preference."""

    def __init__(
        self,
        version: str,
        candidates: Sequence[int] | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        max_hellos: int | None = None,
    ) -> None:
        if chunk_size < 2:
            raise ValueError("chunk_size must be at least 2")
        self.version = version
        self.candidates = tuple(
            dict.fromkeys(
                candidates if candidates is not None else ciphers.scan_candidates(version)
            )
        )
        self.chunk_size = chunk_size
        self.max_hellos = max_hellos
        self.hellos = 0
        self._chains: list[list[int]] = []
        self._answered_first = False
        self._preference = "undefined"
        self._ordered = True
        self._order: list[int] | None = None
        self._error: str | None = None
        self._complete = False
        self._history: list[tuple[tuple[int, ...], int]] = []
        self._gen = self._plan()
        self._pending: Offer | None = self._advance(None)

    # driving interface

    def next_offer(self) -> Offer | None:
        """The hello to send now, or None when the enumeration is over."""
        return self._pending

    def record(self, outcome: Outcome) -> None:
        """What the server did with ``next_offer()``."""
        if self._pending is None:
            raise RuntimeError("record() with no offer outstanding")
        self.hellos += 1
        if not isinstance(outcome, Failed):
            self._answered_first = True
        self._pending = self._advance(outcome)

    @property
    def done(self) -> bool:
        return self._pending is None

    def result(self) -> VersionResult:
        found = [s for chain in self._chains for s in chain]
        suites = tuple(self._order) if self._order is not None else tuple(found)
        supported = bool(found) if self._answered_first else None
        return VersionResult(
            version=self.version,
            supported=supported,
            suites=suites,
            preference=self._preference,
            ordered=self._ordered and self._order is not None,
            hellos=self.hellos,
            complete=self._complete,
            error=self._error,
        )

    # the plan, as a generator: yields offers, receives outcomes

    def _advance(self, outcome: Outcome | None) -> Offer | None:
        try:
            offer = self._gen.send(outcome) if outcome is not None else next(self._gen)
        except StopIteration:
            return None
        if self.max_hellos is not None and self.hellos >= self.max_hellos:
            self._error = "hello_budget"
            self._gen.close()
            return None
        return offer

    def _ask(self, suites: Sequence[int], purpose: str
             ) -> Generator[Offer, Outcome, Chosen | Refused]:
        outcome = yield Offer(self.version, tuple(suites), purpose)
        if isinstance(outcome, Failed):
            raise _Stop(outcome.reason)
        if isinstance(outcome, Chosen) and outcome.suite not in suites:
            raise _Stop("suite_not_offered")
        return outcome

    def _plan(self) -> Generator[Offer, Outcome, None]:
        try:
            yield from self._discover()
            yield from self._detect_preference()
            if self._preference == "server" and len(self._chains) > 1:
                merged = self._chains[0]
                for chain in self._chains[1:]:
                    merged = yield from self._merge(merged, chain)
                self._order = merged
            elif self._preference in ("server", "client", "undefined"):
                self._order = [s for chain in self._chains for s in chain]
            self._complete = True
        except _Stop as stop:
            self._error = stop.reason
            self._ordered = False

    def _discover(self) -> Generator[Offer, Outcome, None]:
        chunks = [
            list(self.candidates[i : i + self.chunk_size])
            for i in range(0, len(self.candidates), self.chunk_size)
        ]
        for chunk in chunks:
            chain: list[int] = []
            self._chains.append(chain)  # filled in place: a later failure keeps what was found
            while chunk:
                offer = tuple(self.discovery_offer(chunk, chain))
                outcome = yield from self._ask(offer, "discover")
                if isinstance(outcome, Refused):
                    if len(offer) > len(chunk):  # found suites in the offer, and no pick
                        raise _Stop("refused_known_suites")
                    break
                self._history.append((offer, outcome.suite))
                if outcome.suite in chunk:
                    chain.append(outcome.suite)
                    chunk.remove(outcome.suite)
                elif self.known_pick(outcome.suite, chain):
                    break
            if not chain:
                self._chains.pop()
            if not self._history and isinstance(outcome, Refused) and version_refusal(outcome):
                break  # the version itself is refused: the other chunks would be too

    # hooks (module doc, "Hooks"): the plain machine's answers

    @property
    def found(self) -> tuple[int, ...]:
        """The suites found so far, every chunk, in discovery order."""
        return tuple(s for chain in self._chains for s in chain)

    @property
    def history(self) -> tuple[tuple[tuple[int, ...], int], ...]:
        """Every discovery hello so far that got a pick: (the offer, the pick)."""
        return tuple(self._history)

    def discovery_offer(self, chunk: Sequence[int], chain: Sequence[int]) -> Sequence[int]:
        """The next discovery hello: ``chunk`` (the candidates not found yet) as it is.

        ``chain``: this chunk's picks so far. An override returns every suite of
        ``chunk`` in any order, and may add suites of ``found``.
        """
        return chunk

    def known_pick(self, suite: int, chain: Sequence[int]) -> bool:
        """The server picked ``suite``, found before: True ends this chunk's discovery.

        False goes on with the next ``discovery_offer``, which must then differ,
        or the server picks the same again.
        """
        return True

    def settled_preference(self) -> str | None:
        """The preference the discovery proved by itself (None: send the test hellos)."""
        return None

    def _detect_preference(self) -> Generator[Offer, Outcome, None]:
        settled = self.settled_preference()
        if settled is not None:
            self._preference = settled
            return
        found = list(self.found)
        if len(found) < 2:
            self._preference = "undefined"
            return
        supported = set(found)

        def client_pick(offer: Sequence[int]) -> int:
            return next(s for s in offer if s in supported)

        if any(client_pick(offer) != pick for offer, pick in self._history):
            self._preference = "server"
            return
        heads = {chain[0] for chain in self._chains}
        # The test offer: all supported suites, reversed, led by one that heads no chain,
        # so a server-order server (whose pick is always some chain's head) cannot
        # pick the same suite as a client-order one.
        test = found[::-1]
        lead = next((s for s in test if s not in heads), None)
        tests = (
            [[lead] + [s for s in test if s != lead]] if lead is not None else [test, test[::-1]]
        )
        picks = []
        for offer in tests:
            outcome = yield from self._ask(offer, "preference")
            if isinstance(outcome, Refused):
                self._preference = "unknown"
                return
            picks.append(outcome.suite)
            if outcome.suite != offer[0]:
                break
        if len(picks) == len(tests) and all(p == o[0] for p, o in zip(picks, tests)):
            self._preference = "client"
        elif all(p in heads for p in picks) and len(set(picks)) == 1:
            self._preference = "server"
        else:
            self._preference = "mixed"

    def _merge(self, merged: list[int], chain: list[int]) -> Generator[Offer, Outcome, list[int]]:
        """Insert ``chain`` (ordered, best first) into ``merged`` (ordered), comparing by hellos.

        The first suite is checked against the tail (one hello when the whole
        chain ranks last); each suite's place is then found by galloping from
        just after the previous one (one hello when they rank at the top),
        then binary search.
        """
        out = list(merged)
        lo = 0
        for i, suite in enumerate(chain):
            if lo >= len(out):
                out.extend(chain[i:])
                break
            if i == 0 and not (yield from self._beats(suite, out[-1])):
                out.extend(chain)  # below the worst so far: the whole chain goes last
                break
            hi = len(out) - 1 if i == 0 else len(out)  # suite beats out[hi], if hi < len(out)
            step = 1
            while lo < hi:
                probe = min(lo + step - 1, hi - 1)
                if (yield from self._beats(suite, out[probe])):
                    hi = probe
                    break
                lo = probe + 1
                step *= 2
            while lo < hi:
                mid = (lo + hi) // 2
                if (yield from self._beats(suite, out[mid])):
                    hi = mid
                else:
                    lo = mid + 1
            out.insert(lo, suite)
            lo += 1
        return out

    def _beats(self, a: int, b: int) -> Generator[Offer, Outcome, bool]:
        outcome = yield from self._ask(
            (b, a), "order"
        )  # offered second: a pick of it is the server's own
        if isinstance(outcome, Refused):
            raise _Stop("refused_known_suites")
        return outcome.suite == a


def version_refusal(outcome: Refused) -> bool:
    """Does ``outcome`` refuse the version itself, whatever the suites offered?

    RFC 8446 §6.2 / RFC 5246 §7.2.2 protocol_version, or a ServerHello for another version.
    """
    return outcome.reason == "protocol_version" or outcome.reason.startswith("version:")


class ServerEnumeration:
    """Every version SSLv3..TLS 1.3, one ``SuiteEnumeration`` after another."""

    def __init__(
        self,
        versions: Sequence[str] = ciphers.VERSIONS,
        *,
        candidates: Callable[[str], Sequence[int]] = ciphers.scan_candidates,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        self._enums = [SuiteEnumeration(v, candidates(v), chunk_size=chunk_size) for v in versions]
        self._i = 0

    def _current(self) -> SuiteEnumeration | None:
        while self._i < len(self._enums) and self._enums[self._i].done:
            self._i += 1
        return self._enums[self._i] if self._i < len(self._enums) else None

    def next_offer(self) -> Offer | None:
        current = self._current()
        return current.next_offer() if current else None

    def record(self, outcome: Outcome) -> None:
        current = self._current()
        if current is None:
            raise RuntimeError("record() with no offer outstanding")
        current.record(outcome)

    @property
    def hellos(self) -> int:
        return sum(e.hellos for e in self._enums)

    def results(self) -> tuple[VersionResult, ...]:
        return tuple(e.result() for e in self._enums)

    def versions_supported(self) -> tuple[str, ...]:
        return tuple(r.version for r in self.results() if r.supported)


def run(enumeration: SuiteEnumeration | ServerEnumeration, ask: Callable[[Offer], Outcome]) -> None:
    """Drive an enumeration to the end with a function answering offers (tests, simple probes)."""
    while (offer := enumeration.next_offer()) is not None:
        enumeration.record(ask(offer))
