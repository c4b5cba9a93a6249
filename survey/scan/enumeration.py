"""Versions and cipher suites of one server: hello probes under a budget, with back-off.

Theory of operation
-------------------
After a server's starttls probe (scan/servers.py) the ``versions`` and
``ciphers`` profiles send hand-built hellos, each on its own connection
through the full SMTP preamble (net/probes.py), one after another, every one
inside ``Politeness.slot(ip)``: the per-IP cap and spacing hold for hellos
exactly as for any other connection, so a server never sees more than the
cap at once.

``versions``: one hello per version, SSLv3..TLS 1.3, except the version the
starttls handshake negotiated (that one is known). A version is supported
when the server picks a suite from our offer of every candidate.

``ciphers``: the whole enumeration, version by version: first the version the
starttls connection negotiated (its suite is the hint of scan/plans.py), then
the others from the top down, each ``GuidedEnumeration`` taught by the
versions before it. Connections per server: supported (version, suite)
pairs + one per version + the starttls connection, plus one for each
preference question the hints could not settle (see scan/plans.py).

Budget and back-off. A server may start refusing in the middle (a 421 "too
many connections", a greeting that no longer comes, a refused connect): that
says nothing about TLS, so it is never fed to the state machine as a
refusal. The hello waits ``retry_delay * 2**k`` seconds and is sent again, up
to ``retries`` times in a row (the retry rule of scan/servers.py); a server
that does not come back ends the enumeration with ``probe_status`` =
``partial`` and the suites found so far. A hello that gets no TLS decision
within the deadline is retried the same way, then counts as a failure of that
version only (a server that never spoke TLS at all then ends the enumeration:
``failed``). Every connection counts against ``budget`` (connections per
server, the starttls probe and its retries included); when it runs out the
enumeration stops, ``partial`` too.

``probe_status``: ``ok`` (every version decided), ``partial`` (budget, a
server that stopped answering, or a version left undecided), ``failed`` (a
hello got no decision before the server ever spoke TLS: a TLS record that
never completes, garbage, silence; the lists stay null), ``not_run`` (the
starttls profile, or a server that never reached STARTTLS's 220). A server
that closes the connection on every hello refused every one: measured, none
(``[]``), as proto/enumerate.py reads a close. With ``partial`` the lists hold
what was found: a version or suite missing from them was not shown
unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from survey.net.probes import HelloAnswer, hello_probe
from survey.net.smtp import SmtpProbe
from survey.net.transport import PROBE_VERSIONS, certificate_probe_suites
from survey.proto import ciphers, tlshello
from survey.proto.enumerate import (
    DEFAULT_CHUNK,
    Chosen,
    Failed,
    Offer,
    Outcome,
    SuiteEnumeration,
    VersionResult,
)
from survey.proto.tlshello import HelloSpec, build_client_hello
from survey.scan import plans
from survey.scan.access import ServerAccess
from survey.vocabulary import HostStatus, ProbeStatus, Profile

PROFILES: tuple[Profile, ...] = tuple(Profile)
ENUMERATED = (Profile.VERSIONS, Profile.CIPHERS)
# Statuses after which hellos make sense: the server said 220 to STARTTLS.
ENUMERABLE = frozenset({HostStatus.OK, HostStatus.TLS_HANDSHAKE_FAILED})
DEFAULT_BUDGET = 200


@dataclass(frozen=True)
class Enumeration:
    """The enumeration columns of a hosts row, and what it cost."""

    probe_status: ProbeStatus
    versions_supported: list[str] | None = None
    cipher_suites: list[dict[str, Any]] | None = None
    server_preference: list[dict[str, Any]] | None = None
    connections: int = 0          # hello connections (the starttls probe not included)
    backoffs: int = 0
    detail: str | None = None

    def columns(self) -> dict[str, Any]:
        return {"probe_status": self.probe_status,
                "versions_supported": self.versions_supported,
                "cipher_suites": self.cipher_suites,
                "server_preference": self.server_preference}


NOT_RUN = Enumeration(ProbeStatus.NOT_RUN)


class _OutOfBudget(Exception):
    pass


class _Gone(Exception):
    """The server stopped answering (SMTP refusals, timeouts) and did not come back."""


class _Aborted(Exception):
    """No TLS answer at all and nothing to wait for: the enumeration cannot work."""


class Enumerator:
    """Runs a profile's hellos against servers whose starttls probe reached the 220."""

    def __init__(self, *, profile: str, access: ServerAccess,
                 budget: int = DEFAULT_BUDGET) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
        self.profile = profile
        self.access = access
        self.budget = budget
        self.servers = 0
        self.hellos = 0
        self.partial = 0

    async def run(self, base: SmtpProbe, used: int) -> Enumeration:
        """Enumerate ``base``'s server; ``used`` connections were spent on it already."""
        if self.profile not in ENUMERATED or base.status not in ENUMERABLE:
            return NOT_RUN
        self.servers += 1
        server = _Server(self, base, used)
        result = await server.run()
        self.hellos += result.connections
        self.partial += result.probe_status == ProbeStatus.PARTIAL
        return result


class _Server:
    """One server's enumeration: the hellos, the counts, the results so far."""

    def __init__(self, owner: Enumerator, base: SmtpProbe, used: int) -> None:
        self.owner = owner
        self.base = base
        self.used = used
        self.connections = 0
        self.backoffs = 0
        self.spoke_tls = base.status == HostStatus.OK
        self.results: dict[str, VersionResult] = {}
        self.decided: dict[str, bool | None] = {}   # versions profile: supported?
        self.chosen: list[dict[str, Any]] = []     # versions profile: the suites chosen
        self.pending_chunks: list[str] = []
        self.detail: str | None = None

    # -- one hello, with budget and back-off ---------------------------------------------

    async def ask(self, offer: Offer) -> Outcome:
        owner = self.owner
        hello = build_client_hello(HelloSpec(offer.version, offer.suites,
                                             server_name=self.base.sni))
        stalls = 0
        while True:
            if self.used + self.connections >= owner.budget:
                raise _OutOfBudget
            access = owner.access
            async with access.politeness.slot(self.base.ip):
                answer = await hello_probe(self.base.ip, access.port, hello, policy=access.policy,
                                           ehlo_name=access.ehlo_name, timeouts=access.timeouts,
                                           turns=access.turns)
            self.connections += 1
            self.spoke_tls = self.spoke_tls or answer.spoke_tls
            outcome = answer.outcome(offer) if answer.sent else None
            stalled = _stalled(answer)
            if not stalled or stalls >= owner.access.retries:
                if isinstance(outcome, Failed) and not self.spoke_tls:
                    raise _Aborted(f"{offer.version}: {outcome.reason}: {answer.detail or ''}")
                if outcome is not None:
                    return outcome            # a Failed one leaves this version open
                raise _Gone(f"{answer.status} after {stalls} retries: {answer.detail or ''}")
            await trio.sleep(owner.access.retry_delay * 2 ** stalls)
            stalls += 1
            self.backoffs += 1

    # -- profiles ------------------------------------------------------------------------------

    async def run(self) -> Enumeration:
        interrupted = None
        try:
            if self.owner.profile == Profile.VERSIONS:
                await self._versions()
            else:
                await self._ciphers()
        except _OutOfBudget:
            interrupted = f"connection budget of {self.owner.budget} spent"
        except _Gone as gone:
            interrupted = f"the server stopped answering: {gone}"[:300]
        except _Aborted as aborted:
            return Enumeration(ProbeStatus.FAILED, connections=self.connections,
                               backoffs=self.backoffs, detail=f"no TLS answer: {aborted}"[:300])
        if self.owner.profile == Profile.VERSIONS:
            supported = [v for v, ok in self.decided.items() if ok]
            complete = all(ok is not None for ok in self.decided.values())
            complete = complete and len(self.decided) == len(ciphers.VERSIONS)
            versions = [v for v in ciphers.VERSIONS if v in supported]
            enumeration = Enumeration(ProbeStatus.OK, versions_supported=versions)
        else:
            results = list(self.results.values())
            complete = (len(results) == len(ciphers.VERSIONS)
                        and all(r.complete and r.supported is not None for r in results))
            enumeration = Enumeration(ProbeStatus.OK,
                                      versions_supported=plans.versions_supported(results),
                                      cipher_suites=plans.cipher_suites(results),
                                      server_preference=plans.server_preference(results))
        ok = complete and interrupted is None
        status = ProbeStatus.OK if ok else ProbeStatus.PARTIAL
        undecided = sorted([v for v, r in self.results.items() if not r.complete]
                           + [v for v, ok in self.decided.items() if ok is None])
        detail = interrupted or (f"undecided: {', '.join(undecided)}" if undecided else None)
        if not ok and detail is None:
            detail = "incomplete"
        if (self.base.status == HostStatus.TLS_HANDSHAKE_FAILED
                and enumeration.versions_supported
                and probe_could_negotiate(enumeration.cipher_suites or self.chosen)):
            # ServerHellos only: a server that chose a suite our certificate probe speaks and
            # still aborts every handshake is no TLS server to a sender, whatever versions it
            # announces. One that chose only suites OpenSSL lacks here (RC4, 3DES, SSLv3)
            # failed with our client, not with every sender: its lists stay ok.
            status = ProbeStatus.NO_HANDSHAKE
            detail = ("no handshake completed (the starttls probe's failed: "
                      f"{self.base.detail or 'no detail'}); the lists are what its "
                      "ServerHellos announced" + (f"; also {detail}" if not ok else ""))[:300]
            ok = False
        return Enumeration(status, enumeration.versions_supported, enumeration.cipher_suites,
                           enumeration.server_preference, self.connections, self.backoffs,
                           None if ok else detail)

    def _negotiated(self) -> tuple[str | None, int | None]:
        """The starttls handshake's version and suite code (the hint), when it worked."""
        if self.base.status != HostStatus.OK or self.base.tls_version not in ciphers.VERSIONS:
            return None, None
        suite = ciphers.by_iana_name(self.base.cipher_suite or "")
        return self.base.tls_version, suite.code if suite is not None else None

    def _chunks_now(self, version: str, first: Outcome | None, candidates: int,
                    chunk: int) -> bool | None:
        """After a one-hello offer: chunks now (True), never (False), or later (None).

        A refusal of every candidate at once that names no version reason may
        be a server choking on the long list (only TLS 1.2 has more than 128
        candidates), or a plain "no": chunks are worth their hellos when
        the version is known to work (the starttls handshake used it) or when
        a lower version turns out supported (``_retry_in_chunks``, at the end).
        """
        if not plans.needs_chunks(first, candidates, chunk):
            return False
        if self._negotiated()[0] == version:
            return True
        self.pending_chunks.append(version)
        return None

    async def _retry_in_chunks(self, supported: set[str], redo) -> None:
        for version in self.pending_chunks:
            lower = ciphers.version_index(version)
            if any(ciphers.version_index(v) < lower for v in supported):
                await redo(version)

    async def _versions(self) -> None:
        known, _ = self._negotiated()
        if known is not None:
            self.decided[known] = True
        for version in reversed(ciphers.VERSIONS):
            if version not in self.decided:
                self.decided[version] = None
                self.decided[version] = await self._supported(version)

        async def redo(version: str) -> None:
            self.decided[version] = await self._supported(version, DEFAULT_CHUNK)

        await self._retry_in_chunks({v for v, ok in self.decided.items() if ok}, redo)

    async def _supported(self, version: str, chunk: int | None = None) -> bool | None:
        """One hello of every candidate (in chunks when that may not get through)."""
        candidates = plans.candidate_order(version)
        chunk = chunk or len(candidates)
        while True:
            machine = SuiteEnumeration(version, candidates, chunk_size=max(chunk, 2))
            first: Outcome | None = None
            while (offer := machine.next_offer()) is not None and offer.purpose == "discover":
                outcome = await self.ask(offer)
                first = first or outcome
                if isinstance(outcome, Chosen):
                    self.chosen.append({"version": version,
                                        "name": ciphers.name_for_code(outcome.suite)})
                    return True
                machine.record(outcome)
            if isinstance(first, Failed) or machine.result().error is not None:
                return None
            if not self._chunks_now(version, first, len(candidates), chunk):
                return False
            chunk = DEFAULT_CHUNK

    async def _ciphers(self) -> None:
        top, hint = self._negotiated()
        order = [v for v in reversed(ciphers.VERSIONS) if v != top]
        if top is not None:
            order.insert(0, top)
        prior: str | None = None
        known: tuple[int, ...] = ()
        for version in order:
            result = await self._suites(version, hint if version == top else None, prior, known)
            if result.preference == "server" and result.ordered and len(result.suites) > 1:
                prior, known = "server", result.suites
            elif result.preference == "client":
                prior, known = "client", ()

        async def redo(version: str) -> None:
            await self._suites(version, None, prior, known, DEFAULT_CHUNK)

        await self._retry_in_chunks({v for v, r in self.results.items() if r.supported}, redo)

    async def _suites(self, version: str, hint: int | None, prior: str | None,
                      known: tuple[int, ...], chunk: int | None = None) -> VersionResult:
        candidates = plans.candidate_order(version, hint=hint, known=known)
        chunk = chunk or len(candidates)
        while True:
            machine = plans.GuidedEnumeration(version, candidates, hint=hint, prior=prior,
                                              chunk_size=max(chunk, 2))
            first: Outcome | None = None
            try:
                while (offer := machine.next_offer()) is not None:
                    outcome = await self.ask(offer)
                    first = first or outcome
                    machine.record(outcome)
            finally:
                self.results[version] = machine.result()   # kept when interrupted
            if not self._chunks_now(version, first, len(candidates), chunk):
                return self.results[version]
            chunk = DEFAULT_CHUNK


def hello_profile() -> dict[str, Any]:
    """What the hand-built hellos offer, for the manifest (docs/design.md: the manifest)."""
    return {
        "builder": "survey.proto.tlshello.build_client_hello",
        "candidates": {v: len(plans.candidate_order(v)) for v in ciphers.VERSIONS},
        "families": sorted(ciphers.DEFAULT_FAMILIES),
        "groups": [f"0x{g:04x}" for g in tlshello.DEFAULT_GROUPS],
        "key_shares": [f"0x{g:04x}" for g in tlshello.DEFAULT_KEY_SHARES],
        "signature_algorithms": [f"0x{a:04x}" for a in tlshello.DEFAULT_SIGNATURE_ALGORITHMS],
        "suites_per_hello": "every candidate of the version; chunks of "
                            f"{DEFAULT_CHUNK} after an odd refusal",
    }


def _stalled(answer: HelloAnswer) -> bool:
    """The SMTP part failed, or TLS never decided: wait and ask again, never a refusal."""
    return not answer.sent or answer.transport == "timeout"


def probe_could_negotiate(found: list[dict[str, Any]] | None) -> bool:
    """Did the server choose some (version, suite) our certificate probe offers? Unknown
    (no suites recorded) counts as yes."""
    if not found:
        return True
    ours = certificate_probe_suites()
    return any(s["version"] in PROBE_VERSIONS and s["name"] in ours for s in found)
