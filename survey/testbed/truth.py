"""Ground truth: what a correct scan of a world must report, read off the world spec.

Theory of operation
-------------------
The truth is written from the generator's *labels* and the server specs —
"this server serves an expired leaf", "this policy host answers 404", "this
TXT record was built with a missing id" — never by parsing what the servers
send, and never with survey.proto or a scanner: otherwise a bug in those
would become the truth and the score could not see it. Verdicts follow
docs/design.md "Verdict definitions"; the few readings it leaves open are
fixed in ``CONVENTIONS`` (written into world.json) so a scanner author can
see them.

Tables and keys are the dataset's own (survey.store.schema): ``domains`` by
domain, ``mx`` by (domain, mx_host, ip), ``hosts`` by (ip, port). The
``certs`` table cannot be keyed by the certificate hash (certificate bytes
are not deterministic), so truth ``certs`` rows carry the *leaf served for*
an mx row: ``sha256`` holds ``mx:<domain>|<mx_host>|<ip>`` and the scorer
finds the scan's leaf through that mx row's ``chain_sha256[0]``.

Columns that depend on time (``probed_at``, validity dates) or on bytes
(``chain_sha256``, ``der``, subjects, signature details) are written as
placeholders and left out of the covered columns. Cells whose right value
depends on the scanner's own client (the cipher a client-preference server
picks from several) are listed in ``unknown.json`` and not scored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from survey.store.schema import to_table
from survey.testbed import chains, legacy_tls
from survey.testbed.generator import CIPHERS, TLS13_SUITES
from survey.testbed.model import (
    ALL_TLS_VERSIONS,
    DomainSpec,
    MxHostSpec,
    PolicyHostSpec,
    SmtpServerSpec,
    World,
    paused_gc,
)
from survey.vocabulary import (
    RETRYABLE,
    CertStatus,
    DnsStatus,
    HostStatus,
    PolicyStatus,
    ResultType,
    StsMode,
    StsPolicyError,
    StsVerdict,
    TxtStatus,
    final_status,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

KEYS: dict[str, tuple[str, ...]] = {
    "domains": ("domain",),
    "mx": ("domain", "mx_host", "ip"),
    "hosts": ("ip", "port"),
    "certs": ("sha256",),
}

_DOMAIN_COLUMNS = [
    "domain", "input", "rank", "dns_status", "mx_kind", "mx_hosts", "mta_sts_txt_status",
    "mta_sts_txt", "mta_sts_id", "mta_sts_policy_status", "mta_sts_policy_error",
    "mta_sts_mode", "mta_sts_max_age", "mta_sts_mx_patterns", "sts_domain_verdict",
    "tlsrpt_status", "tlsrpt_txt", "tlsrpt_rua", "mx_dnssec", "mx_dnssec_reason",
    "mta_sts_txt_dnssec", "mta_sts_txt_dnssec_reason", "tlsrpt_dnssec", "tlsrpt_dnssec_reason"]
_MX_COLUMNS = [
    "domain", "mx_host", "preference", "mx_status", "address_dnssec", "address_dnssec_reason",
    "tlsa_records", "tlsa_base", "tlsa_dnssec", "tlsa_dnssec_reason", "dane",
    "dane_result_type", "sender",
    "ip", "port", "host_status",
    "cert_status", "cert_trusted", "cert_time_valid", "cert_name_match",
    "cert_untrusted_reason", "sts_mx_match", "sts_verdict", "tlsrpt_result_type"]
_HOST_COLUMNS = [
    "ip", "port", "status", "banner", "ehlo_capabilities", "ehlo_capabilities_tls",
    "starttls_offered", "tls_version", "cipher_suite"]
_CERT_COLUMNS = ["sha256", "san_dns", "self_signed", "key_bits"]

# Covered columns per scanner profile: the starttls profile measures no
# versions or cipher lists (they stay null = "not measured").
COLUMNS: dict[str, dict[str, list[str]]] = {
    "starttls": {"domains": _DOMAIN_COLUMNS, "mx": _MX_COLUMNS, "hosts": _HOST_COLUMNS,
                 "certs": _CERT_COLUMNS},
    # versions: one hello per version (issue 6) cannot tell a server's preference (that
    # needs its suites, the ciphers profile): the scan leaves server_preference null.
    "versions": {"domains": _DOMAIN_COLUMNS, "mx": _MX_COLUMNS,
                 "hosts": _HOST_COLUMNS + ["versions_supported"],
                 "certs": _CERT_COLUMNS},
    "ciphers": {"domains": _DOMAIN_COLUMNS, "mx": _MX_COLUMNS,
                "hosts": _HOST_COLUMNS + ["versions_supported", "server_preference",
                                          "cipher_suites"],
                "certs": _CERT_COLUMNS},
}

CONVENTIONS: dict[str, str] = {
    "dnssec columns": "null for an unsigned world (no trust anchor: not measured). In a "
                      "signed world, from how it was built: a lookup that fails (servfail, "
                      "refused, timeout fault) is indeterminate/dns_error; otherwise each "
                      "RRset of the answer (CNAME links included) or its denial is insecure "
                      "when a zone on the way from the root is unsigned or has no DS, bogus "
                      "no_matching_dnskey under a ds_mismatch zone, bogus with the planted "
                      "fault's reason (expired -> signature_expired, not_yet_valid -> "
                      "signature_not_yet_valid, altered -> bad_signature, unsigned -> "
                      "no_rrsig), else secure; several parts: the worst (bogus, "
                      "indeterminate, insecure, secure). address_dnssec is the worst of the "
                      "host's A and AAAA lookups",
    "tlsa / dane": "TLSA looked up only when the host's addresses are secure, at the CNAME "
                   "target first then the host (RFC 7672 §2.2.2; tlsa_base is where it was "
                   "found); dane requires a secure MX RRset; planted records name the served "
                   "keys (@leaf-ec, @leaf-rsa, @intermediate), so tlsa_records of those rows "
                   "are in unknown.json; dane judges the leaf served for SNI = tlsa_base "
                   "(RFC 7672 §8.1: a CNAME'd MX host's target), the cert columns the leaf "
                   "served for SNI = mx_host; DANE-EE of the served key matches whatever the "
                   "names and dates, DANE-TA of the intermediate matches a valid leaf "
                   "(valid or sni_dependent kind) that names tlsa_base or the MX host",
    "dns_status": "outcome of the domain's MX query: ok (MX records, null MX included), "
                  "no_data (no MX: implicit or none), nxdomain, servfail, dns_refused, "
                  "dns_timeout",
    "mx_kind": "null when the MX query failed (nxdomain, servfail, refused, timeout)",
    "mx_hosts": "the MX record targets in preference order (ties by name); [] for null MX, "
                "implicit and none; null when the MX query failed",
    "mx rows": "one per (MX host, address); an implicit MX is mx_host = domain, preference "
               "0; a host without addresses is one row with ip null and mx_status saying "
               "why; no rows for null MX, none or a failed MX query",
    "mta_sts_txt / tlsrpt_txt": "every TXT record at the name, character-strings joined, "
                                "sorted; [] when there is none (NXDOMAIN/NODATA); null on a "
                                "DNS error",
    "mta_sts_policy_error": "vector categories (http_status, redirect, content_type, timeout, "
                            "too_large, syntax, invalid_*, missing_*) plus dns (policy host "
                            "does not resolve) and certificate (policy host certificate "
                            "invalid)",
    "banner": "the greeting reply exactly as received (codes, CRLFs), decoded as UTF-8",
    "ehlo_capabilities": "the EHLO reply lines after the first, text after the code, sorted; "
                         "null when EHLO was not answered with 250",
    "host status": "the last attempt's status (survey.vocabulary.FINAL_STATUS_RULE): "
                   "greylisting that clears within the retry budget is ok; a per-IP limit "
                   "above the scanner's per-IP cap is ok; a drop after 220 to STARTTLS is "
                   "tls_handshake_failed",
    "attempts / refused_before_ok": "not scored: a greylisting server refuses only its "
                                    "first `limit` connections since the world started, so "
                                    "they depend on what reached it before (a second scan "
                                    "of a running world meets no refusal), not on how the "
                                    "world was built; host_attempts() gives them for a "
                                    "first contact (tests/test_scan_retries.py)",
    "hostile servers": "endless multi-line greeting sent as fast as it is read -> "
                       "protocol_error (a reply cap trips long before the greeting deadline; "
                       "the slow one, tarpit, is read_timeout); a 10 MB greeting line without "
                       "CRLF -> protocol_error; binary garbage instead of a greeting -> "
                       "protocol_error; a TLS record announcing more than it sends after the "
                       "220 to STARTTLS -> tls_handshake_failed (the TLS deadline ends it); "
                       "their banner is in unknown.json when no greeting completed; HTML and "
                       "terminal escapes in greeting and EHLO lines are data, stored exactly "
                       "as sent; a slowloris policy host (response head dribbled) -> "
                       "fetch_error / timeout",
    "legacy tls": "tlslite-ng servers serve exactly the suites their spec lists per version "
                  "(SSLv3, RC4, 3DES, NULL, restricted TLS 1.3). The starttls columns "
                  "(status, tls_version, cipher_suite) are what the scanner's stated client "
                  "negotiates: Python ssl on this OpenSSL with cipher string "
                  f"'{legacy_tls.STARTTLS_CLIENT_CIPHERS}', TLS 1.0-1.3 (no SSLv3, RC4, 3DES "
                  "or TLS 1.3 CCM): highest common version, then the server's first suite "
                  "the client offers; no common version or suite -> tls_handshake_failed",
    "chain kinds": "a server with cert_kind chain:<kind> serves that kind of "
                   "survey/testbed/chains.py; its cert_trusted, cert_untrusted_reason, "
                   "cert_time_valid and leaf names are what the kind was built to have "
                   "(chains.Kind, from construction), its anchors are in the world's "
                   "ca.pem; a CN-only leaf matches its CN",
    "anonymous suites": "a server that puts anonymous suites first (trait pref:anon, TLS "
                        "1.0-1.2, its order enforced) gets the first suite with a "
                        "certificate from the starttls probe, which offers no aNULL, PSK or "
                        "SRP suite (a verifying sender's offer): its chain is judged as "
                        "any other; the anonymous suites are in cipher_suites",
    "versions_supported / cipher_suites / server_preference": "versions and ciphers "
        "profiles: from the server's TLS spec whenever STARTTLS got a 220 from a server that "
        "speaks TLS, even when the scanner's own client could not complete a handshake "
        "(legacy servers: their hellos are answered); [] for drop_after_starttls (every "
        "hello is answered by a close: measured, none); null when STARTTLS was not reached "
        "and for tls_truncated (no hello can be decided: not measured)",
    "cert columns": "for rows whose host status is ok; cert_status no_cert and null "
                    "booleans for rows with an address and no certificate; all null without "
                    "an address",
    "tlsrpt_result_type": "policy-level types on every row of the domain; mode none -> "
                          "null; MX not matched -> validation-failure (checked first); "
                          "no_starttls or starttls_rejected -> starttls-not-supported; "
                          "tls_handshake_failed -> validation-failure; other non-ok host "
                          "statuses and unresolvable hosts -> null",
    "certs": "truth rows describe the leaf served for an mx row: sha256 = "
             "'mx:<domain>|<mx_host>|<ip>'; the scan's leaf is found via that mx row's "
             "chain_sha256[0]",
    "cipher_suites": "compared as a set of {version, name, preference_order}; "
                     "preference_order 1.. when the server enforces its order and offers "
                     "more than one suite for the version, else null",
}

# behaviours whose greeting never completes (banner null, or in unknown.json)
NO_GREETING = ("reset", "tarpit", "endless_banner", "long_line", "garbage")

_CERT_BOOLS = {  # kind -> (trusted, time_valid)
    "valid": (True, True), "expired": (True, False), "not_yet_valid": (True, False),
    "self_signed": (False, True), "wrong_name": (True, True), "untrusted": (False, True),
    "missing_intermediate": (False, True), "sni_dependent": (True, True),
}
_CERT_REASON = {  # kind -> why untrusted (the testbed's untrusted CA is a self-signed root
    # the server sends; a missing intermediate leaves the leaf's issuer unknown)
    "self_signed": "self_signed", "untrusted": "untrusted_root",
    "missing_intermediate": "unknown_issuer",
}


def name_matches(name: str, pattern: str, *, certificate: bool = False) -> bool:
    """A host name against a certificate name or MTA-STS mx pattern.

    Exact (case-insensitive) or a whole left-most-label wildcard ``*.suffix``
    matching exactly one label. The generator only writes names of these two
    shapes, so nothing richer is needed here. A certificate's wildcard needs two
    labels after the star: OpenSSL's X509_check_host, and so every sender, refuses
    ``*.test`` (RFC 6125 §7.2); an mx pattern needs one (RFC 8461 §4.1).
    """
    name, pattern = name.lower(), pattern.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        suffix = pattern[2:]
        return bool(head) and rest == suffix and (not certificate or "." in suffix)
    return name == pattern


@dataclass(frozen=True)
class HostTruth:
    status: HostStatus
    banner: str | None
    ehlo: list[str] | None
    ehlo_tls: list[str] | None
    starttls_offered: bool | None
    tls_version: str | None
    cipher_suite: str | None
    cipher_known: bool
    versions: list[str] | None
    server_preference: list[dict[str, Any]] | None
    cipher_suites: list[dict[str, Any]] | None


def host_attempts(server: SmtpServerSpec, world: World) -> list[HostStatus]:
    """The statuses of a correct scanner's starttls attempts at ``server``, oldest first.

    For the server's first contact since the world started (a greylisting server
    refuses only its first ``limit`` connections: a later scan meets none). The
    row's status is the last one, ``final_status`` (survey.vocabulary's
    FINAL_STATUS_RULE, which the scanner follows too): retried while refused
    temporarily, ``retries`` times at most.
    """
    s = world.scanner
    b = server.behaviour
    status = {
        "tarpit": HostStatus.READ_TIMEOUT, "banner_421_rate_limit": HostStatus.RATE_LIMITED,
        "banner_421": HostStatus.SMTP_REJECT_4XX, "banner_554": HostStatus.SMTP_REJECT_5XX,
        "ehlo_4xx": HostStatus.SMTP_REJECT_4XX, "starttls_454": HostStatus.STARTTLS_REJECTED,
        "starttls_500": HostStatus.STARTTLS_REJECTED,
        "drop_after_starttls": HostStatus.TLS_HANDSHAKE_FAILED,
        "reset": HostStatus.RESET, "no_starttls": HostStatus.NO_STARTTLS,
        "dead": HostStatus.CONNECT_TIMEOUT,
        "endless_banner": HostStatus.PROTOCOL_ERROR, "long_line": HostStatus.PROTOCOL_ERROR,
        "garbage": HostStatus.PROTOCOL_ERROR, "tls_truncated": HostStatus.TLS_HANDSHAKE_FAILED,
    }.get(b, HostStatus.OK)
    if b == "per_ip_limit" and server.limit < s.per_ip_connections:
        status = HostStatus.RATE_LIMITED    # the scanner's own connections exceed the limit
    if status == HostStatus.OK and server.tls is None:
        status = HostStatus.NO_STARTTLS
    if (status == HostStatus.OK and server.tls is not None and server.tls.engine == "tlslite"
            and legacy_tls.starttls_outcome(server.tls) is None):
        status = HostStatus.TLS_HANDSHAKE_FAILED
    tries = s.retries + 1
    if status in RETRYABLE:                 # refused every time
        return [status] * tries
    if b == "greylist":                     # the refusal names no limit (generator.py)
        refusals = min(server.limit, tries)
        return [HostStatus.SMTP_REJECT_4XX] * refusals + [status] * (refusals < tries)
    return [status]


def host_truth(server: SmtpServerSpec, world: World) -> HostTruth:
    """What a correct starttls probe (+ versions/ciphers) of one server reports."""
    b = server.behaviour
    status = final_status(host_attempts(server, world))
    legacy = None
    # STARTTLS got its 220 from a server that speaks TLS (its handshake may still fail)
    reached_tls = server.tls is not None and (
        status == HostStatus.OK or (status == HostStatus.TLS_HANDSHAKE_FAILED
                                    and b not in ("drop_after_starttls", "tls_truncated")))
    if reached_tls and server.tls is not None and server.tls.engine == "tlslite":
        legacy = legacy_tls.starttls_outcome(server.tls)
    banner = None if b in NO_GREETING or b == "dead" else server.greeting.render()
    ehlo_answered = status in (HostStatus.OK, HostStatus.NO_STARTTLS,
                               HostStatus.STARTTLS_REJECTED, HostStatus.TLS_HANDSHAKE_FAILED)
    ehlo = sorted(server.ehlo) if ehlo_answered else None
    offered = ("STARTTLS" in server.ehlo) if ehlo_answered else None
    tls_ok = status == HostStatus.OK and server.tls is not None
    ehlo_tls = sorted(server.ehlo_tls) if tls_ok else None
    version = cipher = None
    known = True
    versions = pref = suites = None
    if reached_tls:
        tls = server.tls
        assert tls is not None
        versions = [v for v in ALL_TLS_VERSIONS if v in tls.versions]
        if tls.engine == "tlslite":
            per_version = legacy_tls.served_suites(tls)
            if legacy is not None:
                version, cipher = legacy.version, legacy.cipher_suite
                known = cipher is not None
        else:
            per_version = {v: _suites(tls.ciphers, v) for v in versions}
            version = versions[-1]
            # the certificate probe offers no anonymous suite (survey.net.transport)
            offered_suites = [n for n in per_version[version] if "_anon_" not in n]
            if tls.server_preference or len(offered_suites) == 1:
                cipher = offered_suites[0]
            else:
                known = False
        pref = [{"version": v, "enforced": tls.server_preference if len(per_version[v]) > 1
                 else None} for v in versions]
        suites = [{"version": v, "name": n,
                   "preference_order": (i + 1 if tls.server_preference and len(ns) > 1
                                        else None)}
                  for v, ns in per_version.items() for i, n in enumerate(ns)]
    elif b == "drop_after_starttls":
        versions, pref, suites = [], [], []
    return HostTruth(status, banner, ehlo, ehlo_tls, offered, version, cipher, known,
                     versions, pref, suites)


def _suites(cipher_string: str, version: str) -> list[str]:
    """IANA names of the suites a server offers at ``version``, in its order."""
    if version == "TLSv1.3":
        return list(TLS13_SUITES)
    out = []
    for name in cipher_string.split(":"):
        if name in CIPHERS:
            iana, _key, tls12_only = CIPHERS[name]
            if version == "TLSv1.2" or not tls12_only:
                out.append(iana)
    return out


def leaf_names(server: SmtpServerSpec, sni: str) -> list[str]:
    """The SAN dNSNames of the leaf a server sends for ``sni`` (pki's naming rules)."""
    from survey.testbed.pki import sni_default_name, wrong_name_for

    tls = server.tls
    assert tls is not None
    names = list(tls.names)
    if tls.cert_kind.startswith(chains.CHAIN_PREFIX):
        built = chains.for_names(tls.cert_kind.removeprefix(chains.CHAIN_PREFIX), names)
        return sorted(built.leaf.san or ())
    if tls.cert_kind == "wrong_name":
        return [wrong_name_for(names)]
    if tls.cert_kind == "sni_dependent":
        lowered = {n.lower() for n in names}
        return [sni] if sni.lower() in lowered else [sni_default_name(names)]
    return sorted(names)


@dataclass
class Truth:
    rows: dict[str, list[dict[str, Any]]]
    unknown: list[dict[str, Any]] = field(default_factory=list)


def build_truth(world: World) -> Truth:
    """The truth rows of every table for ``world``."""
    with paused_gc():
        return _build_truth(world)


_SECURE = ("secure", None)
_INSECURE = ("insecure", None)
_DNSSEC_FAULT_REASONS = {"expired": "signature_expired",
                         "not_yet_valid": "signature_not_yet_valid",
                         "altered": "bad_signature", "unsigned": "no_rrsig"}
_DNSSEC_RANK = {"secure": 0, "insecure": 1, "indeterminate": 2, "bogus": 3}


def _worst(parts: Iterable[tuple[str, str | None]]) -> tuple[str, str | None]:
    out: tuple[str, str | None] = _SECURE
    for part in parts:
        if _DNSSEC_RANK[part[0]] > _DNSSEC_RANK[out[0]]:
            out = part
    return out


class DnssecTruth:
    """The DNSSEC status of a lookup in a signed world, read off its zones and faults."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.zones = world.zones
        self._zone_states: dict[str, tuple[str, str | None]] = {}
        self._parents: set[str] | None = None

    def zone_of(self, name: str) -> str:
        while name and name not in self.zones:
            name = name.split(".", 1)[1] if "." in name else ""
        return name

    def zone_state(self, zone: str) -> tuple[str, str | None]:
        """How the chain from the root reaches ``zone``: secure, insecure or bogus."""
        state = self._zone_states.get(zone)
        if state is None:
            state = _SECURE
            if zone:
                parent = self.zone_state(self.zone_of(zone.split(".", 1)[1]
                                                      if "." in zone else ""))
                spec = self.zones[zone]
                if parent != _SECURE:
                    state = parent
                elif not spec.signed or not spec.ds:
                    state = _INSECURE
                elif spec.fault == "ds_mismatch":
                    state = ("bogus", "no_matching_dnskey")
            self._zone_states[zone] = state
        return state

    def lookup(self, name: str, rtype: str) -> tuple[str | None, str | None]:
        if not self.zones:
            return None, None
        node = self.world.dns.get(name)
        fault = node.faulty(rtype) if node else None
        if fault in ("servfail", "refused", "timeout"):
            return "indeterminate", "dns_error"
        state = self.zone_state(self.zone_of(name))
        if fault == "nxdomain":       # answered without any DNSSEC record
            return ("bogus", "no_rrsig") if state == _SECURE else state
        parts = []
        current = name
        for _ in range(9):
            node = self.world.dns.get(current)
            state = self.zone_state(self.zone_of(current))
            types = {r.rtype for r in node.records} if node else set()
            if rtype in types or (rtype == "CNAME" and "CNAME" in types):
                parts.append(self._signed(state, node, rtype))
                break
            if node is not None and "CNAME" in types:
                parts.append(self._signed(state, node, "CNAME"))
                current = next(r.value for r in node.records
                               if r.rtype == "CNAME").rstrip(".").lower()
                continue
            parts.append(state)       # a denial, signed as the zone is
            break
        return _worst(parts)

    @staticmethod
    def _signed(state: tuple[str, str | None], node, rtype: str) -> tuple[str, str | None]:
        fault = node.dnssec_faulty(rtype) if node else None
        if state == _SECURE and fault:
            return "bogus", _DNSSEC_FAULT_REASONS[fault]
        return state

    def tlsa(self, spec: MxHostSpec) -> tuple[str, list[str], str, tuple] | None:
        """(base, values, DNS status, DNSSEC status) of the TLSA lookup a scan makes for a
        host: only when its addresses are secure; at the CNAME target first (RFC 7672
        §2.2.2), then at the host name."""
        if not spec.ips or self.addresses(spec.name)[0] != "secure":
            return None
        bases = ([spec.cname] if spec.cname else []) + [spec.name]
        for base in bases:
            name = f"_25._tcp.{base}"
            node = self.world.dns.get(name)
            values = [r.value for r in node.records if r.rtype == "TLSA"] if node else []
            fault = node.faulty("TLSA") if node else None
            status = self.lookup(name, "TLSA")
            if fault in ("servfail", "refused", "timeout"):
                dns_status = {"servfail": "servfail", "refused": "dns_refused",
                              "timeout": "dns_timeout"}[fault]
            elif values:
                dns_status = "ok"
            else:
                dns_status = "no_data" if node is not None or self._ent(name) else "nxdomain"
            if base != spec.name and dns_status in ("no_data", "nxdomain") \
                    and status[0] == "secure":
                continue
            return base, values, dns_status, status
        return None

    def _ent(self, name: str) -> bool:
        """An empty non-terminal: no records, but names below it (NODATA, not NXDOMAIN)."""
        if self._parents is None:
            parents: set[str] = set()
            for owner in self.world.dns:
                labels = owner.split(".")
                parents.update(".".join(labels[i:]) for i in range(1, len(labels)))
            self._parents = parents
        return name in self._parents

    def dane(self, d: DomainSpec, spec: MxHostSpec, ip: str | None, host_status: str | None,
             server: SmtpServerSpec | None, mx_status: tuple) -> dict[str, Any]:
        """The TLSA and DANE columns of an mx row, from how the world was built."""
        row: dict[str, Any] = {"tlsa_records": None, "tlsa_base": None, "tlsa_dnssec": None,
                               "tlsa_dnssec_reason": None, "dane": None}
        if not self.zones:
            return row
        address = self.addresses(spec.name)
        found = self.tlsa(spec)
        if found is not None:
            base, values, dns_status, status = found
            row["tlsa_records"] = (sorted(values) if dns_status in ("ok", "no_data", "nxdomain")
                                   else None)
            row["tlsa_dnssec"], row["tlsa_dnssec_reason"] = status
            row["tlsa_base"] = base
        if ip is None:
            return row
        if "bogus" in (mx_status[0], address[0]):
            row["dane"] = "dnssec_bogus"
        elif mx_status[0] != "secure" or address[0] != "secure" or found is None:
            row["dane"] = "not_applicable"
        elif found[3][0] == "bogus":
            row["dane"] = "dnssec_bogus"
        elif found[2] not in ("ok", "no_data", "nxdomain"):
            row["dane"] = "tlsa_lookup_failed"
        elif found[3][0] != "secure" or not found[1]:
            row["dane"] = "not_applicable"
        elif host_status in ("no_starttls", "starttls_rejected"):
            row["dane"] = "no_starttls"
        elif host_status != "ok":
            row["dane"] = "tls_failed"
        else:
            row["dane"] = _dane_match(found[0], spec.name, found[1], server)
        return row

    def addresses(self, host: str) -> tuple[str | None, str | None]:
        a, aaaa = self.lookup(host, "A"), self.lookup(host, "AAAA")
        if a[0] is None or aaaa[0] is None:
            return None, None
        return _worst([a, aaaa])  # type: ignore[list-item]


def _dane_match(base: str, host: str, values: list[str],
                server: SmtpServerSpec | None) -> str:
    """A planted TLSA RRset against the chain the server serves (by construction) to a
    DANE sender, whose SNI is the TLSA base domain (RFC 7672 §8.1: for a CNAME'd MX host
    the target, not the MX name); the reference identifiers are the base and the MX host
    name (§3.2.3)."""
    usable = [v for v in values if v.split()[0] in ("2", "3") and v.split()[1] in ("0", "1")
              and v.split()[2] in ("0", "1", "2")]
    if not usable:
        return "no_usable_records"
    if server is None or server.tls is None:
        return "no_match"
    tls = server.tls
    own_key = not tls.cert_kind.startswith("chain:")
    if own_key and f"3 1 1 @leaf-{tls.key_type}" in usable:
        return "valid"           # DANE-EE: the served key; names and dates ignored
    if ("2 1 1 @intermediate" in usable and tls.cert_kind in ("valid", "sni_dependent")
            and any(name_matches(ref, n, certificate=True) for ref in (base, host)
                    for n in leaf_names(server, base))):
        return "valid"           # DANE-TA: issued by the intermediate, in date, named
    return "no_match"


def _build_truth(world: World) -> Truth:
    port = world.ports.smtp
    dnssec = DnssecTruth(world)
    hosts: dict[str, HostTruth] = {}
    unknown: list[dict[str, Any]] = []

    def host(ip: str) -> HostTruth:
        ht = hosts.get(ip)
        if ht is None:
            ht = hosts[ip] = host_truth(world.smtp_servers[ip], world)
        return ht

    leaves: dict[tuple[str, str | None], tuple[list[str], list[str]]] = {}

    def leaf(ip: str, server: SmtpServerSpec, sni: str) -> tuple[list[str], bool]:
        """(SAN names of the leaf served for ``sni``, does ``sni`` match them), cached
        per address: a provider's leaf is judged once, not once per customer."""
        assert server.tls is not None
        key = (ip, sni if server.tls.cert_kind == "sni_dependent" else None)
        cached = leaves.get(key)
        if cached is None:
            names = sorted(leaf_names(server, sni))
            matched = names
            kind = server.tls.cert_kind
            if kind.startswith(chains.CHAIN_PREFIX) and not names:
                # a CN-only leaf: its subject CN is the name (RFC 6125 §6.4.4)
                built = chains.for_names(kind.removeprefix(chains.CHAIN_PREFIX),
                                         server.tls.names)
                matched = [built.leaf.name]
            cached = leaves[key] = (names, matched)
        names, matched = cached
        return names, any(name_matches(sni, n, certificate=True) for n in matched)

    domain_rows: list[dict[str, Any]] = []
    mx_rows: list[dict[str, Any]] = []
    cert_rows: list[dict[str, Any]] = []
    for d in world.domains:
        policy = (world.policy_hosts.get(d.name) if d.mta_sts.status == TxtStatus.VALID
                  else None)
        p_status, p_error, mode, max_age, patterns = _policy_truth(d, policy)
        rows = []
        for mx_host, preference in _mx_targets(d):
            spec = world.mx_hosts.get(mx_host) or MxHostSpec(mx_host, (), status="nxdomain")
            for ip in spec.ips or (None,):
                row = _mx_row(world, d, spec, preference, ip, port, host, leaf, p_status,
                              p_error, mode, patterns, policy, cert_rows)
                row["address_dnssec"], row["address_dnssec_reason"] = \
                    dnssec.addresses(spec.name)
                row.update(dnssec.dane(d, spec, ip, row["host_status"],
                                       world.smtp_servers.get(ip) if ip else None,
                                       dnssec.lookup(d.name, "MX")))
                row["dane_result_type"] = {
                    "no_match": "tlsa-invalid", "dnssec_bogus": "dnssec-invalid",
                    "tlsa_lookup_failed": "dnssec-invalid",
                    "no_starttls": "starttls-not-supported",
                    "tls_failed": "validation-failure"}.get(row["dane"] or "")
                row["sender"] = (None if row["dane"] is None else
                                 ("dane_deliver" if row["dane"] in ("valid", "no_usable_records")
                                  else "dane_fail") if row["dane"] != "not_applicable" else
                                 {"deliver": "sts_deliver", "fail": "sts_fail"}.get(
                                     row["sts_verdict"], "opportunistic"))
                if row["tlsa_records"] and any("@" in v for v in row["tlsa_records"]):
                    unknown.append({"table": "mx", "key": [d.name, spec.name, ip],
                                    "column": "tlsa_records",
                                    "why": "the association data names a key made by the "
                                           "serving process (signing.tlsa_placeholders)"})
                rows.append(row)
        mx_rows.extend(rows)
        sessions_ok = [r.pop("_session_ok") for r in rows]
        if p_status == PolicyStatus.OK and mode in (StsMode.ENFORCE, StsMode.TESTING):
            verdict = (StsVerdict.DELIVER if mode == StsMode.TESTING or any(sessions_ok)
                       else StsVerdict.FAIL)
        else:
            verdict = StsVerdict.NO_POLICY
        domain_rows.append({
            "domain": d.name, "input": d.name, "rank": d.rank, "dns_status": d.dns_status,
            "mx_kind": d.mx_kind,
            "mx_hosts": (None if d.mx_kind is None else
                         [m.host for m in sorted(d.mx, key=lambda m: (m.preference, m.host))]),
            "mta_sts_txt_status": d.mta_sts.status,
            "mta_sts_txt": _list(d.mta_sts.txt),
            "mta_sts_id": d.mta_sts.id if d.mta_sts.status == TxtStatus.VALID else None,
            "mta_sts_policy_status": p_status, "mta_sts_policy_error": p_error,
            "mta_sts_mode": mode, "mta_sts_max_age": max_age,
            "mta_sts_mx_patterns": patterns,
            "sts_domain_verdict": verdict,
            "tlsrpt_status": d.tlsrpt.status, "tlsrpt_txt": _list(d.tlsrpt.txt),
            "tlsrpt_rua": _list(d.tlsrpt.rua) if d.tlsrpt.status == TxtStatus.VALID else None,
            "probed_at": EPOCH,
        })
        row = domain_rows[-1]
        row["mx_dnssec"], row["mx_dnssec_reason"] = dnssec.lookup(d.name, "MX")
        row["mta_sts_txt_dnssec"], row["mta_sts_txt_dnssec_reason"] = \
            dnssec.lookup(f"_mta-sts.{d.name}", "TXT")
        row["tlsrpt_dnssec"], row["tlsrpt_dnssec_reason"] = \
            dnssec.lookup(f"_smtp._tls.{d.name}", "TXT")
    host_rows = []
    for ip in sorted(hosts):
        ht = hosts[ip]
        host_rows.append({
            "ip": ip, "port": port, "status": ht.status, "banner": ht.banner,
            "ehlo_capabilities": ht.ehlo, "ehlo_capabilities_tls": ht.ehlo_tls,
            "starttls_offered": ht.starttls_offered, "tls_version": ht.tls_version,
            "cipher_suite": ht.cipher_suite, "versions_supported": ht.versions,
            "server_preference": ht.server_preference, "cipher_suites": ht.cipher_suites,
            "probed_at": EPOCH,
        })
        if not ht.cipher_known:
            unknown.append({"table": "hosts", "key": [ip, port], "column": "cipher_suite",
                            "why": "client-preference server: the choice follows the "
                                   "client's order"})
        if world.smtp_servers[ip].behaviour in NO_GREETING and ht.status != HostStatus.RESET:
            unknown.append({"table": "hosts", "key": [ip, port], "column": "banner",
                            "why": "a never-ending or broken greeting: what part is kept "
                                   "is the scanner's choice"})
    return Truth({"domains": domain_rows, "mx": mx_rows, "hosts": host_rows,
                  "certs": cert_rows}, unknown)


def _list(value: Iterable[str] | None) -> list[str] | None:
    return None if value is None else sorted(value)


def _mx_targets(d: DomainSpec) -> list[tuple[str, int]]:
    if d.mx_kind == "mx":
        return [(m.host, m.preference) for m in d.mx]
    if d.mx_kind == "implicit":
        return [(d.name, 0)]
    return []


def _policy_truth(d: DomainSpec, policy: PolicyHostSpec | None
                  ) -> tuple[str, str | None, str | None, int | None, list[str] | None]:
    if d.mta_sts.status != TxtStatus.VALID:
        return PolicyStatus.NOT_ATTEMPTED, None, None, None, None
    if policy is None:  # a valid record with no host at all: the name does not resolve
        return PolicyStatus.FETCH_ERROR, StsPolicyError.DNS, None, None, None
    if policy.behaviour == "ok":
        assert policy.policy is not None
        p = policy.policy
        return PolicyStatus.OK, None, p.mode, min(p.max_age, 31557600), sorted(p.mx)
    if policy.behaviour.startswith(("invalid_", "missing_")) or policy.behaviour == "syntax":
        return PolicyStatus.INVALID, policy.error, None, None, None
    return PolicyStatus.FETCH_ERROR, policy.error, None, None, None


def _mx_row(world: World, d: DomainSpec, spec: MxHostSpec, preference: int, ip: str | None,
            port: int, host: Any, leaf: Any, p_status: str, p_error: str | None, mode: str | None,
            patterns: list[str] | None, policy: PolicyHostSpec | None,
            cert_rows: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"domain": d.name, "mx_host": spec.name, "preference": preference,
                           "mx_status": spec.status if ip is None else DnsStatus.OK, "ip": ip,
                           "port": None, "host_status": None, "probed_at": EPOCH}
    cert_status = None
    if ip is not None:
        ht = host(ip)
        row.update(port=port, host_status=ht.status)
        if ht.status == HostStatus.OK:
            server = world.smtp_servers[ip]
            assert server.tls is not None
            kind = server.tls.cert_kind
            names, name_match = leaf(ip, server, spec.name)
            key_bits = 2048 if server.tls.key_type == "rsa" else 256
            if kind.startswith(chains.CHAIN_PREFIX):   # its verdicts from construction
                built = chains.for_names(kind.removeprefix(chains.CHAIN_PREFIX),
                                         server.tls.names)
                trusted, time_valid, reason = built.trusted, built.time_valid, built.reason
                time_state, key_bits = built.time_state, built.leaf_key_bits
                self_signed = built.leaf.issuer is None
            else:
                trusted, time_valid = _CERT_BOOLS[kind]
                reason, time_state = _CERT_REASON.get(kind), kind
                self_signed = kind == "self_signed"
            if reason == "self_signed":
                cert_status = CertStatus.SELF_SIGNED
            elif not trusted:
                cert_status = CertStatus.UNTRUSTED
            elif not time_valid:
                cert_status = CertStatus.of(time_state or kind)  # expired / not_yet_valid
            elif not name_match:
                cert_status = CertStatus.NAME_MISMATCH
            else:
                cert_status = CertStatus.VALID
            row.update(cert_status=cert_status, cert_trusted=trusted,
                       cert_time_valid=time_valid, cert_name_match=name_match,
                       cert_untrusted_reason=reason)
            cert_rows.append({
                "sha256": f"mx:{d.name}|{spec.name}|{ip}", "der": b"",
                "san_dns": sorted(names), "self_signed": self_signed,
                "key_bits": key_bits,
                "probed_at": EPOCH})
        else:
            cert_status = CertStatus.NO_CERT
            row.update(cert_status=CertStatus.NO_CERT)
    # MTA-STS (RFC 8461 §4) and TLSRPT (RFC 8460 §4.3)
    mx_match = None
    if p_status == PolicyStatus.OK:
        assert patterns is not None
        mx_match = any(name_matches(spec.name, p) for p in patterns)
    host_status = row["host_status"]
    session_ok = bool(ip is not None and host_status == HostStatus.OK
                      and cert_status == CertStatus.VALID and mx_match)
    if p_status == PolicyStatus.OK and mode in (StsMode.ENFORCE, StsMode.TESTING):
        verdict = (StsVerdict.DELIVER if (session_ok or mode == StsMode.TESTING)
                   else StsVerdict.FAIL)
    else:
        verdict = StsVerdict.NO_POLICY
    rtype: str | None = None
    if d.mta_sts.status == TxtStatus.VALID:
        if p_status == PolicyStatus.FETCH_ERROR:
            rtype = (ResultType.STS_WEBPKI_INVALID if p_error == StsPolicyError.CERTIFICATE
                     else ResultType.STS_POLICY_FETCH_ERROR)
        elif p_status == PolicyStatus.INVALID:
            rtype = ResultType.STS_POLICY_INVALID
        elif mode != StsMode.NONE:
            rtype = _session_type(mx_match, ip, host_status, cert_status)
    row.update(sts_mx_match=mx_match, sts_verdict=verdict, tlsrpt_result_type=rtype,
               _session_ok=session_ok)
    return row


def _session_type(mx_match: bool | None, ip: str | None, host_status: str | None,
                  cert_status: str | None) -> str | None:
    if not mx_match:
        return ResultType.VALIDATION_FAILURE
    if ip is None:
        return None
    if host_status in (HostStatus.NO_STARTTLS, HostStatus.STARTTLS_REJECTED):
        return ResultType.STARTTLS_NOT_SUPPORTED
    if host_status == HostStatus.TLS_HANDSHAKE_FAILED:
        return ResultType.VALIDATION_FAILURE
    if host_status != HostStatus.OK:
        return None
    return {CertStatus.SELF_SIGNED: ResultType.CERTIFICATE_NOT_TRUSTED,
            CertStatus.UNTRUSTED: ResultType.CERTIFICATE_NOT_TRUSTED,
            CertStatus.EXPIRED: ResultType.CERTIFICATE_EXPIRED,
            CertStatus.NOT_YET_VALID: ResultType.CERTIFICATE_EXPIRED,
            CertStatus.NAME_MISMATCH: ResultType.CERTIFICATE_HOST_MISMATCH,
            }.get(CertStatus.of(cert_status)) if cert_status else None


def write_truth(world: World, directory: str | Path) -> dict[str, Any]:
    """Write ``truth/<table>.parquet`` and ``unknown.json``; returns world.json's truth block."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    truth = build_truth(world)
    files = {}
    for table, rows in truth.rows.items():
        path = directory / f"{table}.parquet"
        pq.write_table(to_table(table, rows), path, compression="zstd")
        files[table] = path.name
    (directory / "unknown.json").write_text(json.dumps(truth.unknown, indent=1))
    return {
        "dir": directory.name,
        "files": files,
        "unknown": "unknown.json",
        "keys": {t: list(k) for t, k in KEYS.items()},
        "columns": COLUMNS,
        "profile": world.scanner.profile,
        "rows": {t: len(r) for t, r in truth.rows.items()},
        "conventions": CONVENTIONS,
    }
