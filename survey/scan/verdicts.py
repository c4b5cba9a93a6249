"""Rows of the dataset from what a scan learnt: docs/design.md "Verdict definitions", once.

Pure functions: DNS results, server probes, certificate judgements and the
MTA-STS policy fetch in; dicts in the store's schemas out. The testbed's truth
is written independently from how the world was built; ``survey score``
compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from survey import dane
from survey.certs import Verdict
from survey.net.https import PolicyFetch
from survey.net.smtp import SmtpProbe
from survey.proto.mtasts import Policy, policy_matches, sts_domain_verdict, sts_verdict
from survey.scan.enumeration import NOT_RUN, Enumeration
from survey.scan.resolve import DomainDns, MxTarget
from survey.scan.servers import Attempt
from survey.vocabulary import (
    CertStatus,
    DnsStatus,
    HostStatus,
    PolicyStatus,
    ResultType,
    StsMode,
    StsPolicyError,
    TxtStatus,
    refused_before_ok,
)

STARTTLS_NOT_SUPPORTED = (HostStatus.NO_STARTTLS, HostStatus.STARTTLS_REJECTED)
CERT_RESULT_TYPES: dict[str, ResultType] = {
    CertStatus.SELF_SIGNED: ResultType.CERTIFICATE_NOT_TRUSTED,
    CertStatus.UNTRUSTED: ResultType.CERTIFICATE_NOT_TRUSTED,
    CertStatus.EXPIRED: ResultType.CERTIFICATE_EXPIRED,
    CertStatus.NOT_YET_VALID: ResultType.CERTIFICATE_EXPIRED,
    CertStatus.NAME_MISMATCH: ResultType.CERTIFICATE_HOST_MISMATCH,
}


def policy_of(fetch: PolicyFetch | None) -> Policy | None:
    return fetch.result.policy if fetch is not None and fetch.result.valid else None


def session_result_type(mx_match: bool | None, host_status: str | None,
                        cert_status: str | None, has_ip: bool) -> str | None:
    """RFC 8460 §4.3 type a sender applying a valid policy reports for one (MX, IP)."""
    if not mx_match:
        return ResultType.VALIDATION_FAILURE       # §4.3.1: MX not matched by the policy
    if not has_ip:
        return None
    if host_status in STARTTLS_NOT_SUPPORTED:
        return ResultType.STARTTLS_NOT_SUPPORTED
    if host_status == HostStatus.TLS_HANDSHAKE_FAILED:
        return ResultType.VALIDATION_FAILURE
    if host_status != HostStatus.OK:
        return None                                 # never reached TLS: nothing to report
    return CERT_RESULT_TYPES.get(cert_status or "")


def tlsrpt_result_type(dns: DomainDns, fetch: PolicyFetch | None, mx_match: bool | None,
                       host_status: str | None, cert_status: str | None,
                       has_ip: bool) -> str | None:
    if dns.mta_sts.status != TxtStatus.VALID:
        return None
    if fetch is None or fetch.status == PolicyStatus.FETCH_ERROR:
        if fetch is not None and fetch.error == StsPolicyError.CERTIFICATE:
            return ResultType.STS_WEBPKI_INVALID
        return ResultType.STS_POLICY_FETCH_ERROR
    if fetch.status == PolicyStatus.INVALID:
        return ResultType.STS_POLICY_INVALID
    policy = policy_of(fetch)
    if policy is None or policy.mode == StsMode.NONE:
        return None
    return session_result_type(mx_match, host_status, cert_status, has_ip)


def mx_row(dns: DomainDns, mx_host: str, preference: int, mx_status: str, ip: str | None,
           port: int, probe: SmtpProbe | None, verdict: Verdict | None,
           chain_sha256: list[str] | None, fetch: PolicyFetch | None,
           probed_at: datetime, *, address_dnssec: str | None = None,
           address_dnssec_reason: str | None = None) -> tuple[dict, bool]:
    """(the mx row, did a sender's session to this (MX, IP) succeed under the policy)."""
    row = {"domain": dns.target.domain, "mx_host": mx_host, "preference": preference,
           "mx_status": mx_status if ip is None else DnsStatus.OK, "ip": ip,
           "address_dnssec": address_dnssec, "address_dnssec_reason": address_dnssec_reason,
           "probed_at": probed_at}
    cert_status = None
    host_status = None
    if ip is not None and probe is not None:
        host_status = probe.status
        row.update(port=port, host_status=probe.status, sni=probe.sni)
        if probe.status == HostStatus.OK and verdict is not None:
            cert_status = verdict.status
            row.update(cert_status=verdict.status, cert_trusted=verdict.trusted,
                       cert_time_valid=verdict.time_valid, cert_name_match=verdict.name_match,
                       cert_untrusted_reason=verdict.reason,
                       chain_sha256=chain_sha256)
        else:
            cert_status = CertStatus.NO_CERT
            row.update(cert_status=CertStatus.NO_CERT)
    policy = policy_of(fetch)
    mx_match = policy_matches(policy, mx_host) if policy is not None else None
    session_ok = bool(ip is not None and host_status == HostStatus.OK
                      and cert_status == CertStatus.VALID and mx_match)
    row.update(sts_mx_match=mx_match,
               sts_verdict=sts_verdict(policy.mode if policy else None, session_ok),
               tlsrpt_result_type=tlsrpt_result_type(dns, fetch, mx_match, host_status,
                                                     cert_status, ip is not None))
    return row, session_ok


def dane_sni(dns: DomainDns, mx: MxTarget) -> str | None:
    """The server name a DANE sender sends to this host's addresses, when DANE applies by
    its DNS alone (secure MX RRset and addresses, a secure non-empty TLSA RRset): the TLSA
    base domain (RFC 7672 §8.1; the target of a secure CNAME when TLSA is published there,
    §2.2.2, as Postfix does). None when DANE does not apply: a sender without DANE
    (MTA-STS, opportunistic TLS) sends the MX host name, the row's ``sni``."""
    tlsa = mx.tlsa
    if dns.mx_dnssec is None or mx.dnssec is None or tlsa is None or not mx.tlsa_base:
        return None
    if dane.applicability(dns.mx_dnssec, mx.dnssec, tlsa.dnssec, tlsa.status,
                          bool(mx.tlsa_records)) is not None:
        return None
    return mx.tlsa_base


def sni_names(dns: DomainDns, mx: MxTarget) -> tuple[str, ...]:
    """The names a scan sends as SNI to ``mx``'s addresses: the MX host name (the
    certificate columns, MTA-STS and opportunistic senders) and, when DANE applies and its
    TLSA base domain is another name (a CNAME'd MX host), that name too (the DANE
    columns). The server prober makes one probe per address and one more per extra name
    only when the server chooses its certificate by SNI (scan/servers.py)."""
    base = dane_sni(dns, mx)
    return (mx.host,) if base is None or base == mx.host else (mx.host, base)


def dane_columns(dns: DomainDns, mx: MxTarget, ip: str | None,
                 probe: SmtpProbe | None, at: datetime,
                 chain_sha256: list[str] | None = None) -> dict:
    """The TLSA and DANE columns of one mx row (RFC 7672; survey/dane.py). ``probe`` is the
    handshake a DANE sender makes: SNI = ``dane_sni`` (the TLSA base domain) when DANE
    applies, with ``chain_sha256`` its chain's hashes."""
    records = mx.tlsa_records
    tlsa = mx.tlsa
    row: dict = {"tlsa_records": sorted(r.text() for r in records) if records is not None
                 else None,
                 "tlsa_base": mx.tlsa_base if tlsa is not None else None,
                 "tlsa_dnssec": tlsa.dnssec if tlsa is not None else None,
                 "tlsa_dnssec_reason": tlsa.dnssec_reason if tlsa is not None else None,
                 "dane": None, "dane_sni": None, "dane_chain_sha256": None}
    if dns.mx_dnssec is None or mx.dnssec is None or ip is None:
        return row          # DNSSEC not validated, or no address to talk to
    status = dane.applicability(dns.mx_dnssec, mx.dnssec,
                                tlsa.dnssec if tlsa is not None else None,
                                tlsa.status if tlsa is not None else None, bool(records))
    if status is None and probe is not None:
        # the handshake judged: its SNI (the TLSA base domain, or the name of the one probe
        # of a server that ignores SNI) and its chain
        row["dane_sni"] = probe.sni
        row["dane_chain_sha256"] = chain_sha256 if probe.status == HostStatus.OK else None
    if status is None:
        status = dane.session_status(probe.status if probe is not None else None)
    if status is None:
        assert probe is not None and records
        names = list(dict.fromkeys(n for n in (mx.tlsa_base, mx.host) if n))
        status = dane.verdict(records, probe.chain or [], names, at)
    row["dane"] = status
    return row


def domain_row(dns: DomainDns, fetch: PolicyFetch | None, sessions_ok: list[bool],
               probed_at: datetime) -> dict:
    target = dns.target
    sts, rpt = dns.mta_sts, dns.tlsrpt
    policy = policy_of(fetch)
    row = {
        "domain": target.domain, "input": target.input, "rank": target.rank,
        "dns_status": dns.dns_status, "mx_kind": dns.mx_kind, "mx_hosts": dns.mx_hosts,
        "mta_sts_txt_status": sts.status, "mta_sts_txt": sts.texts,
        "mta_sts_id": sts.sts.id if sts.sts is not None and sts.sts.valid else None,
        "mta_sts_policy_status": PolicyStatus.NOT_ATTEMPTED if fetch is None else fetch.status,
        "mta_sts_policy_error": None if fetch is None else fetch.error,
        "mta_sts_mode": policy.mode if policy else None,
        "mta_sts_max_age": policy.max_age if policy else None,
        "mta_sts_mx_patterns": sorted(policy.mx) if policy else None,
        "sts_domain_verdict": sts_domain_verdict(policy.mode if policy else None, sessions_ok),
        "tlsrpt_status": rpt.status, "tlsrpt_txt": rpt.texts,
        "tlsrpt_rua": (sorted(rpt.tlsrpt.rua) if rpt.tlsrpt is not None and rpt.tlsrpt.valid
                       else None),
        "mx_dnssec": dns.mx_dnssec, "mx_dnssec_reason": dns.mx_dnssec_reason,
        "mta_sts_txt_dnssec": sts.dnssec, "mta_sts_txt_dnssec_reason": sts.dnssec_reason,
        "tlsrpt_dnssec": rpt.dnssec, "tlsrpt_dnssec_reason": rpt.dnssec_reason,
        "probed_at": probed_at,
    }
    return row


def invalid_input_row(target, probed_at: datetime) -> dict:
    return {"domain": target.domain, "input": target.input, "rank": target.rank,
            "dns_status": DnsStatus.INVALID_INPUT, "input_error": target.error,
            "probed_at": probed_at}


def host_row(probe: SmtpProbe, connections: int, chain_sha256: list[str] | None,
             probed_at: datetime, enumeration: Enumeration = NOT_RUN,
             attempts: Sequence[Attempt] | None = None) -> dict:
    """The server's row: its starttls probe (every attempt of it), and the profile's
    enumeration columns. ``attempts`` None: not recorded (the columns stay null)."""
    return {
        "ip": probe.ip, "port": probe.port, "status": probe.status,
        "status_detail": probe.detail, **enumeration.columns(), "banner": probe.banner,
        "ehlo_capabilities": probe.ehlo, "ehlo_capabilities_tls": probe.ehlo_tls,
        "starttls_offered": probe.starttls_offered, "sni": probe.sni,
        "tls_version": probe.tls_version, "cipher_suite": probe.cipher_suite,
        "chain_sha256": chain_sha256, "connections": connections,
        "transcript": "\n".join(probe.transcript + _enumeration_note(enumeration)),
        "probed_at": probed_at,
        "attempts": None if attempts is None else [a._asdict() for a in attempts],
        "refused_before_ok": (None if attempts is None
                              else refused_before_ok([a.status for a in attempts])),
    }


def _enumeration_note(enumeration: Enumeration) -> list[str]:
    """Why an enumeration is partial or failed, as the transcript's last line."""
    if enumeration.detail is None:
        return []
    note = (f"# {enumeration.probe_status} enumeration "
            f"({enumeration.connections} hellos): {enumeration.detail}")
    return [note]
