"""One row per unit of analysis: the definitions every metric shares, in SQL, once.

Theory of operation
-------------------
The scanner writes rows per (domain), per (domain, MX host, IP), per
(IP, port) and per certificate. Papers count three different things, and a
share means nothing without saying which (Scheitle et al., IMC 2018):

  * ``domain_facts``: one row per domain of the list. ``accepts_mail`` (an
    MX record set, or an implicit MX from A/AAAA) is the usual denominator.
  * ``host_facts``: one row per MX host name (distinct ``mx_host``).
  * ``ip_facts``: one row per server address (``hosts``: ip, port).

Each is a DuckDB table built from the Parquet parts (pyarrow datasets), so a
scan of tens of millions of rows never passes through pandas; metrics are
aggregations over these tables and only their small results become pandas.

Definitions (repeated in the notebooks):

  * A (domain, MX, IP) row's *outcome*, best first: ``starttls_ok`` (handshake
    done), ``starttls_failed`` (offered, then rejected or the handshake failed),
    ``no_starttls`` (EHLO answered without STARTTLS), ``rejected`` (4xx/5xx
    that names no rate limit), ``rate_limited``, ``protocol_error``,
    ``unreachable`` (refused, timed out, reset), ``no_address`` (the MX host
    does not resolve), ``not_scanned`` (blocked by the destination policy or
    not probed). Rate limits and unreachable servers are never "no STARTTLS".
  * *any MX*: some (MX, IP) row of the domain; *all MX*: every row (an MX
    host without an address fails it); *primary MX*: every row of the MX
    hosts with the lowest preference.
  * A row's certificate verdict is ``mx.cert_status`` (docs/design.md); a unit's
    verdict is the worst over its rows that completed a handshake, in the
    order no_cert, self_signed, untrusted, expired, not_yet_valid,
    name_mismatch, valid.
  * Chain classes (for Postini-style splits): ``self_signed``; ``broken``
    (untrusted, expired, not yet valid: CA-signed but no valid path);
    ``valid_chain`` (trusted and in date; the name may still not match).
  * Forward secrecy of a handshake: the negotiated suite's key exchange is
    ephemeral (the registry's flag; every TLS 1.3 suite).
  * MTA-STS: *record* = a ``_mta-sts`` TXT status of valid, invalid or
    multiple; *correct* = TXT valid, policy valid, and either mode ``none``
    or no (MX, IP) row with an RFC 8460 failure type; *misconfigured* =
    record and not correct; *delivery failure* = ``sts_domain_verdict`` fail.
  * DANE (RFC 7672; columns null/false when the scan did not validate DNSSEC,
    see measured.py): a (MX, IP) row has *usable TLSA* when its TLSA lookup is
    secure and some record is DANE-TA(2) or DANE-EE(3) with selector 0/1 and
    matching type 0/1/2 (§3.1.3). A domain *has DANE* (``dane_tlsa``) when its
    MX RRset is secure and every primary (MX, IP) row has usable TLSA; *DANE
    valid* when every primary row's ``mx.dane`` is ``valid`` (a matching
    record: Dukhovni's "correct TLSA at every primary MX").
  * Cluster (for the bootstrap): a domain's provider (from its primary MX);
    a self-hosted domain, or one without MX, is its own cluster. An MX host
    name's cluster is its provider (a self-hosted name: its domain's); an
    address's, the smallest cluster of the MX names that point at it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from survey.vocabulary import (
    CertStatus,
    DaneStatus,
    DnssecStatus,
    HostStatus,
    MxKind,
    PolicyStatus,
    StsMode,
    StsVerdict,
    TxtStatus,
)

OUTCOMES: tuple[str, ...] = ("starttls_ok", "starttls_failed", "no_starttls", "rejected",
                             "rate_limited", "protocol_error", "unreachable", "no_address",
                             "not_scanned")
# Every server status has an outcome (tests/test_analysis.py fails on a status without one,
# and so does importing this module): a new status is never silently "not scanned".
OUTCOME_OF: dict[HostStatus, str] = {
    HostStatus.OK: "starttls_ok",
    HostStatus.TLS_HANDSHAKE_FAILED: "starttls_failed",
    HostStatus.STARTTLS_REJECTED: "starttls_failed",
    HostStatus.NO_STARTTLS: "no_starttls",
    HostStatus.SMTP_REJECT_4XX: "rejected",
    HostStatus.SMTP_REJECT_5XX: "rejected",
    HostStatus.RATE_LIMITED: "rate_limited",
    HostStatus.PROTOCOL_ERROR: "protocol_error",
    HostStatus.CONNECTION_REFUSED: "unreachable",
    HostStatus.CONNECT_TIMEOUT: "unreachable",
    HostStatus.NETWORK_UNREACHABLE: "unreachable",
    HostStatus.RESET: "unreachable",
    HostStatus.READ_TIMEOUT: "unreachable",
    HostStatus.BLOCKED_BY_POLICY: "not_scanned",
    HostStatus.FAMILY_UNREACHABLE: "not_scanned",
    HostStatus.FAMILY_EXCLUDED: "not_scanned",
    HostStatus.CONNECT_ERROR: "unreachable",
}
# worst first: min() over a unit's rows gives its verdict (every CertStatus, once)
CERT_ORDER: tuple[CertStatus, ...] = (
    CertStatus.NO_CERT, CertStatus.SELF_SIGNED, CertStatus.UNTRUSTED, CertStatus.EXPIRED,
    CertStatus.NOT_YET_VALID, CertStatus.NAME_MISMATCH, CertStatus.VALID)
CHAIN_CLASSES: tuple[str, ...] = ("self_signed", "broken", "valid_chain")
# a chain's class from its certificate status (None: no chain)
CHAIN_CLASS_OF: dict[CertStatus, str | None] = {
    CertStatus.NO_CERT: None,
    CertStatus.SELF_SIGNED: "self_signed",
    CertStatus.UNTRUSTED: "broken",
    CertStatus.EXPIRED: "broken",
    CertStatus.NOT_YET_VALID: "broken",
    CertStatus.NAME_MISMATCH: "valid_chain",
    CertStatus.VALID: "valid_chain",
}
ACCEPTS_MAIL = (MxKind.MX, MxKind.IMPLICIT)
TXT_RECORD = (TxtStatus.VALID, TxtStatus.INVALID, TxtStatus.MULTIPLE)   # "has a record"
POLICY_FETCHED = (PolicyStatus.OK, PolicyStatus.INVALID)
STS_ACTIVE = (StsMode.ENFORCE, StsMode.TESTING)
# a usable TLSA record as mx.tlsa_records spells it ("usage selector type hex"), RFC 7672 §3.1.3
USABLE_TLSA = "^[23] [01] [012] "
EHLO_ANSWERED = ("starttls_ok", "starttls_failed", "no_starttls")
RANK_BUCKETS: tuple[tuple[str, int], ...] = (("top 1k", 1_000), ("top 10k", 10_000),
                                             ("top 100k", 100_000), ("top 1M", 1_000_000))


def missing(mapping: Collection[Any], vocabulary: Iterable[str]) -> list[str]:
    """The vocabulary's values the mapping does not cover."""
    return [v for v in vocabulary if v not in mapping]


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _sql_in(values: Iterable[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def outcome_case(status: str, outcome_of: Mapping[HostStatus, str] = OUTCOME_OF,
                 no_address: str | None = None) -> str:
    """SQL: the outcome of a row whose server status is the column ``status``.

    Generated from ``outcome_of``, which must cover every HostStatus; a status it does
    not know (a dataset newer than this code) stops the query with an error instead of
    being counted as anything. A NULL status (an address that was not probed) is
    ``not_scanned``; ``no_address`` is the SQL condition of a row without an address.
    """
    if gaps := missing(outcome_of, HostStatus):
        raise ValueError(f"server statuses without an analysis outcome: {gaps} "
                         "(survey/analysis/facts.py OUTCOME_OF)")
    lines = ["CASE"]
    if no_address is not None:
        lines.append(f"  WHEN {no_address} THEN 'no_address'")
    for outcome in OUTCOMES:
        statuses = [s for s, o in outcome_of.items() if o == outcome]
        if statuses:
            lines.append(f"  WHEN {status} IN {_sql_in(statuses)} THEN '{outcome}'")
    lines += [f"  WHEN {status} IS NULL THEN 'not_scanned'",
              f"  ELSE error('server status ' || {status} || ' has no analysis outcome')",
              "END"]
    return "\n".join(lines)


def chain_class_case(rank: str) -> str:
    """SQL: the chain class of a certificate status given by its rank in CERT_ORDER."""
    if gaps := missing(CHAIN_CLASS_OF, CertStatus):
        raise ValueError(f"certificate statuses without a chain class: {gaps}")
    lines = ["CASE"]
    for position, status in enumerate(CERT_ORDER, start=1):
        chain = CHAIN_CLASS_OF[status]
        lines.append(f"  WHEN {rank} = {position} THEN " + (f"'{chain}'" if chain else "NULL"))
    return "\n".join(lines + ["END"])


def _rank_of(values: tuple[str, ...], expr: str) -> str:
    """1-based position of ``expr`` in ``values`` (NULL when absent)."""
    return f"nullif(list_position({_sql_list(values)}, {expr}), 0)"


def _label_of(values: tuple[str, ...], expr: str) -> str:
    return f"{_sql_list(values)}[{expr}]"


# The Public Suffix List is consulted once per distinct *tail* (the last TAIL_LABELS
# labels), not per name: millions of per-customer MX names under one provider
# (<customer>.mail.protection.outlook.com) share one tail. No ICANN rule has more than
# TAIL_LABELS labels (tests check the shipped list), so a name and its tail match the same
# rules and have the same public suffix; only when the tail *is* a public suffix (a
# 4-label rule such as pvt.k12.ma.us) is the full name needed, and then it is looked up.
TAIL_LABELS = 4
TAIL = ("array_to_string(list_slice(string_split(lower({name}), '.'), "
        f"-{TAIL_LABELS}, -1), '.')")

OUTCOME_CASE = outcome_case("m.host_status", no_address="m.ip IS NULL")
HOST_OUTCOME_CASE = outcome_case("h.status")

# An MX host under the domain's own name (mx.example.com for example.com, or the domain
# itself for an implicit MX) is self-hosted whatever the Public Suffix List says: the
# list is consulted only for the other hosts (providers, shared hosts).
UNDER_DOMAIN = "(m.mx_host = m.domain OR ends_with(m.mx_host, '.' || m.domain))"
DISTINCT_TAILS = (f"SELECT DISTINCT {TAIL.format(name='m.mx_host')} FROM mx m "
                  f"WHERE NOT {UNDER_DOMAIN}")
NAMES_UNDER_TAILS = (f"SELECT DISTINCT lower(m.mx_host) FROM mx m WHERE NOT {UNDER_DOMAIN} "
                     f"AND {TAIL.format(name='m.mx_host')} IN (SELECT tail FROM deep_tails)")

MX_ROWS = f"""
CREATE OR REPLACE TEMP TABLE mx_rows AS
WITH m AS (
  SELECT *, min(preference) OVER (PARTITION BY domain) AS min_preference,
         {UNDER_DOMAIN.replace("m.", "")} AS under_domain
  FROM mx
), joined AS (
  SELECT m.domain, m.mx_host, m.preference, m.ip, m.port, m.host_status, m.cert_status,
         m.cert_trusted, m.cert_time_valid, m.cert_name_match,
         m.chain_sha256[1] AS leaf, m.sts_mx_match, m.sts_verdict, m.tlsrpt_result_type,
         m.dane, m.dane_result_type, m.sender,
         coalesce(m.tlsa_dnssec = '{DnssecStatus.SECURE}' AND len(list_filter(
             m.tlsa_records, lambda r: regexp_matches(r, '{USABLE_TLSA}'))) > 0, false)
             AS tlsa_usable,
         len(list_filter(m.tlsa_records, lambda r: regexp_matches(r, '^3 [01] [012] ')))
             > 0 AS tlsa_ee,
         len(list_filter(m.tlsa_records, lambda r: regexp_matches(r, '^2 [01] [012] ')))
             > 0 AS tlsa_ta,
         list_contains(list_transform(m.tlsa_records, lambda r: left(r, 6)), '3 1 1 ')
             AS tlsa_311,
         h.starttls_offered, h.tls_version, h.cipher_suite,
         s.forward_secrecy AS fs,
         coalesce(m.preference = m.min_preference, true) AS is_primary,
         coalesce(p.registrable, q.registrable) AS mx_registrable,
         coalesce(p.provider, q.provider) AS mx_provider,
         m.under_domain OR coalesce(coalesce(p.registrable, q.registrable) IS NOT NULL
             AND (m.domain = coalesce(p.registrable, q.registrable)
                  OR ends_with(m.domain, '.' || coalesce(p.registrable, q.registrable))),
             false) AS self_hosted,
         {_rank_of(OUTCOMES, OUTCOME_CASE)} AS outcome_rank,
         CASE WHEN m.host_status = '{HostStatus.OK}'
              THEN coalesce({_rank_of(CERT_ORDER, 'm.cert_status')}, 1) END AS cert_rank
  FROM m
  LEFT JOIN hosts_dedup h ON h.ip = m.ip AND h.port = m.port
  LEFT JOIN suites s ON s.iana_name = h.cipher_suite
  LEFT JOIN mx_providers p
         ON NOT m.under_domain AND p.tail = {TAIL.format(name="m.mx_host")}
  LEFT JOIN mx_providers_full q ON q.tail = m.mx_host
)
SELECT *, CASE WHEN self_hosted THEN 'domain:' || domain
               ELSE coalesce(mx_provider, 'host:' || mx_host) END AS cluster_key,
       cluster_key AS cluster
FROM joined
"""

HOSTS_DEDUP = """
CREATE OR REPLACE TEMP TABLE hosts_dedup AS
SELECT * FROM hosts QUALIFY row_number() OVER (PARTITION BY ip, port ORDER BY probed_at DESC) = 1
"""

CERTS_DEDUP = """
CREATE OR REPLACE TEMP TABLE certs_dedup AS
SELECT sha256, any_value(subject) AS subject, any_value(issuer) AS issuer,
       any_value(key_type) AS key_type, any_value(key_bits) AS key_bits,
       any_value(self_signed) AS self_signed, any_value(not_after) AS not_after,
       any_value(signature_algorithm) AS signature_algorithm
FROM certs GROUP BY sha256
"""

_OFFERED = "coalesce(starttls_offered, false)"
_WORKING = f"coalesce(host_status = '{HostStatus.OK}', false)"

DOMAIN_FACTS = f"""
CREATE OR REPLACE TEMP TABLE domain_facts AS
WITH agg AS (
  SELECT domain,
    count(*) AS mx_rows,
    count(DISTINCT mx_host) AS mx_hosts,
    bool_or({_OFFERED}) AS any_offered,
    bool_and({_OFFERED}) AS all_offered,
    bool_and({_OFFERED}) FILTER (WHERE is_primary) AS primary_offered,
    bool_or({_WORKING}) AS any_working,
    bool_and({_WORKING}) AS all_working,
    bool_and({_WORKING}) FILTER (WHERE is_primary) AS primary_working,
    min(outcome_rank) AS best_rank,
    min(outcome_rank) FILTER (WHERE is_primary) AS primary_rank,
    min(cert_rank) AS worst_cert_rank,
    min(cert_rank) FILTER (WHERE is_primary) AS primary_cert_rank,
    arg_min(mx_provider, mx_host) FILTER (WHERE is_primary) AS primary_provider,
    arg_min(self_hosted, mx_host) FILTER (WHERE is_primary) AS primary_self_hosted,
    arg_min(cluster_key, mx_host) FILTER (WHERE is_primary) AS primary_cluster,
    bool_and(coalesce(sts_mx_match, false)) AS all_mx_match,
    count(tlsrpt_result_type) AS sts_failure_rows,
    bool_and(tlsa_usable) FILTER (WHERE is_primary) AS primary_tlsa,
    bool_and(coalesce(dane = '{DaneStatus.VALID}', false)) FILTER (WHERE is_primary)
        AS primary_dane_valid,
    bool_or(tlsa_ee) FILTER (WHERE is_primary AND tlsa_usable) AS primary_ee,
    bool_or(tlsa_ta) FILTER (WHERE is_primary AND tlsa_usable) AS primary_ta,
    bool_and(coalesce(tlsa_311, false)) FILTER (WHERE is_primary) AS primary_311
  FROM mx_rows GROUP BY domain
)
SELECT d.domain, d.rank, d.dns_status, d.mx_kind,
  regexp_extract(d.domain, '[^.]+$') AS tld,
  coalesce(d.mx_kind IN {_sql_in(ACCEPTS_MAIL)}, false) AS accepts_mail,
  coalesce(a.mx_rows, 0) AS mx_rows, coalesce(a.mx_hosts, 0) AS mx_hosts,
  coalesce(a.any_offered, false) AS any_offered,
  coalesce(a.all_offered, false) AS all_offered,
  coalesce(a.primary_offered, false) AS primary_offered,
  coalesce(a.any_working, false) AS any_working,
  coalesce(a.all_working, false) AS all_working,
  coalesce(a.primary_working, false) AS primary_working,
  {_label_of(OUTCOMES, 'a.best_rank')} AS outcome,
  {_label_of(OUTCOMES, 'a.primary_rank')} AS primary_outcome,
  {_label_of(CERT_ORDER, 'a.worst_cert_rank')} AS cert_worst,
  {_label_of(CERT_ORDER, 'a.primary_cert_rank')} AS cert_primary,
  {chain_class_case('a.primary_cert_rank')} AS chain_primary,
  CASE WHEN a.domain IS NULL THEN '{{no_mx}}'
       WHEN a.primary_self_hosted THEN '{{self_hosted}}'
       ELSE coalesce(a.primary_provider, 'unknown') END AS provider,
  CASE WHEN a.domain IS NULL OR a.primary_self_hosted OR a.primary_provider IS NULL
       THEN 'domain:' || d.domain ELSE a.primary_cluster END AS cluster,
  coalesce(d.mta_sts_txt_status IN {_sql_in(TXT_RECORD)}, false) AS sts_record,
  coalesce(d.mta_sts_txt_status = '{TxtStatus.VALID}', false) AS sts_txt_valid,
  coalesce(d.mta_sts_policy_status IN {_sql_in(POLICY_FETCHED)}, false) AS sts_fetched,
  coalesce(d.mta_sts_policy_status = '{PolicyStatus.OK}', false) AS sts_policy_valid,
  d.mta_sts_txt_status AS sts_txt_status,
  d.mta_sts_policy_status AS sts_policy_status,
  d.mta_sts_policy_error AS sts_policy_error,
  d.mta_sts_mode AS sts_mode,
  d.sts_domain_verdict AS sts_verdict,
  coalesce(d.mta_sts_policy_status = '{PolicyStatus.OK}' AND a.all_mx_match, false)
      AS sts_all_mx_match,
  coalesce(d.sts_domain_verdict = '{StsVerdict.DELIVER}'
           AND d.mta_sts_mode IN {_sql_in(STS_ACTIVE)}, false) AS sts_deliver,
  coalesce(d.sts_domain_verdict = '{StsVerdict.FAIL}', false) AS sts_fail,
  coalesce(d.mta_sts_txt_status = '{TxtStatus.VALID}'
           AND d.mta_sts_policy_status = '{PolicyStatus.OK}'
           AND (d.mta_sts_mode = '{StsMode.NONE}' OR coalesce(a.sts_failure_rows, 0) = 0),
           false) AS sts_correct,
  d.mx_dnssec,
  coalesce(d.mx_dnssec = '{DnssecStatus.SECURE}', false) AS mx_secure,
  coalesce(d.mx_dnssec = '{DnssecStatus.SECURE}' AND a.primary_tlsa, false) AS dane_tlsa,
  coalesce(d.mx_dnssec = '{DnssecStatus.SECURE}' AND a.primary_tlsa
           AND a.primary_dane_valid, false) AS dane_valid,
  CASE WHEN d.mx_dnssec = '{DnssecStatus.SECURE}' AND a.primary_tlsa THEN
       CASE WHEN a.primary_ee AND a.primary_ta THEN 'DANE-EE and DANE-TA'
            WHEN a.primary_ee THEN 'DANE-EE' WHEN a.primary_ta THEN 'DANE-TA' END
       END AS dane_usages,
  coalesce(d.mx_dnssec = '{DnssecStatus.SECURE}' AND a.primary_tlsa AND a.primary_311,
           false) AS dane_311,
  d.tlsrpt_status,
  coalesce(d.tlsrpt_status IN {_sql_in(TXT_RECORD)}, false) AS tlsrpt_record,
  coalesce(d.tlsrpt_status = '{TxtStatus.VALID}', false) AS tlsrpt_valid,
  d.tlsrpt_rua
FROM domains d LEFT JOIN agg a USING (domain)
"""

HOST_FACTS = f"""
CREATE OR REPLACE TEMP TABLE host_facts AS
SELECT mx_host,
  any_value(mx_provider) AS provider,
  min(cluster_key) AS cluster,
  count(DISTINCT domain) AS domains,
  bool_or(ip IS NOT NULL) AS has_address,
  bool_or({_OFFERED}) AS offered,
  bool_or({_WORKING}) AS tls_ok,
  bool_and(coalesce(fs, false)) FILTER (WHERE host_status = '{HostStatus.OK}') AS fs,
  {_label_of(OUTCOMES, 'min(outcome_rank)')} AS outcome,
  {_label_of(CERT_ORDER, 'min(cert_rank)')} AS cert_status
FROM mx_rows GROUP BY mx_host
"""

IP_FACTS = f"""
CREATE OR REPLACE TEMP TABLE ip_facts AS
WITH clusters AS (
  SELECT ip, port, min(cluster_key) AS cluster
  FROM mx_rows WHERE ip IS NOT NULL GROUP BY ip, port
)
SELECT h.ip, h.port, h.status, h.probe_status, h.starttls_offered, h.tls_version,
  h.cipher_suite, s.forward_secrecy AS fs, s.ncsc_class AS suite_class,
  h.versions_supported, h.cipher_suites, h.server_preference, h.banner,
  {_label_of(OUTCOMES, _rank_of(OUTCOMES, HOST_OUTCOME_CASE))} AS outcome,
  h.chain_sha256[1] AS leaf, c.self_signed AS leaf_self_signed, c.key_type, c.key_bits,
  c.issuer, c.subject, c.not_after,
  coalesce(k.cluster, 'ip:' || h.ip) AS cluster
FROM hosts_dedup h
LEFT JOIN suites s ON s.iana_name = h.cipher_suite
LEFT JOIN certs_dedup c ON c.sha256 = h.chain_sha256[1]
LEFT JOIN clusters k ON k.ip = h.ip AND k.port = h.port
"""


def domain_facts_sql(no_mx: str, self_hosted: str) -> str:
    return DOMAIN_FACTS.replace("{no_mx}", no_mx).replace("{self_hosted}", self_hosted)
