"""Each mail server once: shared probes, retries, and SNI without a handshake per name.

Theory of operation
-------------------
Domain tasks ask ``ServerProber.for_name(ip, name)`` for the probe whose
certificate applies to ``name`` at ``ip``: the MX host name, and for a CNAME'd
MX host where DANE applies also the TLSA base domain a DANE sender sends
(RFC 7672 §8.1; scan/verdicts.py ``sni_names``). The first asker's name becomes
the SNI of the server's one *base* probe; everyone else awaits that probe
(single flight). The base probe is the ``hosts`` row.

Certificates may depend on SNI (docs/design.md "Data flow of a scan", step 3),
but a provider with
per-customer MX names maps millions of names onto a handful of addresses, so
a handshake per name would hammer it. When a second name shows up for an
address, one more probe is made with that name as SNI: the same chain means
the server ignores SNI and the base chain serves every name; a different chain
means it does not, and from then on each name gets its own probe. One extra
connection per shared address decides it. (A failed decision probe counts as
"ignores SNI": nothing better is known, and the address is spared.)

A refusal that may clear (``SmtpProbe.is_retryable``: a 4xx at greeting or
EHLO, rate limits and greylisting) is retried up to ``retries`` times, with
exponential back-off, each attempt through the politeness slot. The final
attempt's result stands (survey.vocabulary.FINAL_STATUS_RULE); the base
probe keeps every attempt (when, how far, the last reply code, the status)
for its row's ``attempts``, and ``connections`` counts every attempt.

With the ``versions`` and ``ciphers`` profiles the base probe is followed by
the server's enumeration (scan/enumeration.py) before the base result is
released: the host row is written once, whole, and no domain's rows commit
before the row of a server they use (the resume rule of scan/run.py).
``connections`` then counts the hellos too; the SNI decision probes are
counted in the manifest (``sni_probes``), not in a row.

Memory: every result stays for the whole scan (domains still to come may use
the server), so what the rows no longer need is dropped once ``on_base`` has
written the host row (``trimmed``, the one rule: the mx rows use only the
status, SNI and chain). Chains keep their DER (domains judge them), but
equal certificates are one ``bytes`` object: a provider's addresses and every
server under one intermediate share theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple

import trio

from survey.net.singleflight import SingleFlight
from survey.net.smtp import SmtpProbe, probe_starttls
from survey.scan.access import ServerAccess
from survey.scan.enumeration import NOT_RUN, Enumeration, Enumerator
from survey.vocabulary import AttemptStep, HostStatus


class Attempt(NamedTuple):
    """One starttls connection of a server's probe (an item of ``hosts.attempts``)."""

    at: datetime                # when the connection was opened (UTC)
    step: AttemptStep           # how far the dialogue got
    reply_code: int | None      # the last reply's code; None when the server sent none
    status: HostStatus


@dataclass(slots=True)
class Attempted:
    probe: SmtpProbe
    connections: int
    enumeration: Enumeration = NOT_RUN
    attempts: list[Attempt] = field(default_factory=list)  # the base probe's, until written


class ServerProber:
    def __init__(self, access: ServerAccess, *,
                 on_base: Callable[[Attempted], None] | None = None,
                 enumerator: Enumerator | None = None) -> None:
        self.access = access
        self.on_base = on_base
        self.enumerator = enumerator
        self.sni_probes = 0
        self._base: SingleFlight[Attempted] = SingleFlight()
        self._first_name: dict[str, str] = {}
        self._per_name_sni: SingleFlight[bool] = SingleFlight()
        self._by_name: SingleFlight[Attempted] = SingleFlight()
        self._certificates: dict[bytes, bytes] = {}     # DER -> the one copy kept

    @property
    def servers(self) -> int:
        return len(self._base.results)

    async def for_name(self, ip: str, name: str) -> SmtpProbe:
        base = await self._base.get(ip, lambda: self._probe_base(ip, name))
        probe = base.probe
        if probe.status != HostStatus.OK or not probe.chain or name == self._first_name[ip]:
            return probe
        per_name = await self._per_name_sni.get(ip, lambda: self._decide(ip, name, probe))
        if not per_name:
            return probe
        return (await self._by_name.get((ip, name), lambda: self._attempt(ip, name))).probe

    async def _probe_base(self, ip: str, name: str) -> Attempted:
        self._first_name[ip] = name
        attempted = await self._attempt(ip, name, record=True)
        if self.enumerator is not None and attempted.connections:
            attempted.enumeration = await self.enumerator.run(attempted.probe,
                                                              attempted.connections)
            attempted.connections += attempted.enumeration.connections
        if self.on_base is not None:
            self.on_base(attempted)
        attempted.probe = trimmed(attempted.probe)
        attempted.attempts = []
        return attempted

    async def _decide(self, ip: str, name: str, base: SmtpProbe) -> bool:
        """Does this server choose its certificate by SNI? One probe with another name."""
        self.sni_probes += 1
        other = await self._by_name.get((ip, name), lambda: self._attempt(ip, name))
        return other.probe.status == HostStatus.OK and other.probe.chain != base.chain

    async def _attempt(self, ip: str, sni: str, record: bool = False) -> Attempted:
        """The probe, retried while it is refused temporarily; ``record``: keep each attempt."""
        policy = self.access.policy
        if policy.check(ip) is not None or policy.out_of_reach(ip) is not None:
            # refused or out of reach: no slot, no wait, no packet
            return Attempted(await self._probe(ip, sni), 0)
        attempts: list[Attempt] = []
        connections = 0
        for attempt in range(self.access.retries + 1):
            if attempt:
                await trio.sleep(self.access.retry_delay * 2 ** (attempt - 1))
            async with self.access.politeness.slot(ip):
                at = datetime.now(UTC)
                probe = await self._probe(ip, sni)
            connections += 1
            if record:
                attempts.append(Attempt(at, probe.step, probe.reply_code, probe.status))
            if not probe.is_retryable:
                break
        return Attempted(probe, connections, attempts=attempts)

    async def _probe(self, ip: str, sni: str) -> SmtpProbe:
        access = self.access
        probe = await probe_starttls(ip, access.port, policy=access.policy,
                                     ehlo_name=access.ehlo_name, sni=sni,
                                     timeouts=access.timeouts, turns=access.turns)
        if probe.chain:
            pool = self._certificates
            probe.chain = [pool.setdefault(der, der) for der in probe.chain]
        return probe


def trimmed(probe: SmtpProbe) -> SmtpProbe:
    """The probe as the mx rows need it once its host row is written.

    Banner, EHLO lines and transcript are in the host row; the chain stays: each mx
    row's DANE verdict matches its TLSA records against it (survey/dane.py).
    """
    return replace(probe, banner=None, ehlo=None, ehlo_tls=None, transcript=[])
