"""The dataset contract as Arrow schemas, declared once.

Every table written by the scanner, the testbed's ground truth and the
analysis library uses these schemas; rows are cast to them at the boundary
(``to_table``) instead of trusting type inference, so a missing value stays
null, an empty list stays an empty list, and a typo in a column name fails
loudly. Canonical forms and verdict definitions:
docs/design.md "The dataset contract" and "Verdict definitions".

Conventions: names are lower-case A-labels without the trailing dot, IPv6 in
RFC 5952 text, TLS versions as ``SSLv3`` .. ``TLSv1.3``, cipher suites by IANA
name, set-like lists sorted, null = not measured, [] = measured and none.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from survey.vocabulary import (
    AttemptStep,
    CertReason,
    CertStatus,
    DaneStatus,
    DnssecReason,
    DnssecStatus,
    DnsStatus,
    HostStatus,
    MxKind,
    PolicyStatus,
    ProbeStatus,
    ResultType,
    SenderVerdict,
    StsMode,
    StsPolicyError,
    StsVerdict,
    TlsVersion,
    TxtStatus,
    Vocabulary,
)

SCHEMA_VERSION = "1"
TIMESTAMP = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())

CIPHER_SUITE = pa.struct([
    ("version", pa.string()),
    ("name", pa.string()),
    ("preference_order", pa.int32()),  # 1 = most preferred; null when no order is enforced
])
ATTEMPT = pa.struct([
    ("at", TIMESTAMP),                 # when the attempt's connection was opened
    ("step", pa.string()),
    ("reply_code", pa.int32()),        # null: the server sent no reply
    ("status", pa.string()),
])
SERVER_PREFERENCE = pa.struct([
    ("version", pa.string()),
    ("enforced", pa.bool_()),  # null: undecidable (a single suite)
])


def _schema(table: str, fields: list[tuple[str, pa.DataType]],
            not_null: Iterable[str] = ()) -> pa.Schema:
    required = set(not_null)
    schema = pa.schema([pa.field(n, t, nullable=n not in required) for n, t in fields])
    return schema.with_metadata({"survey.table": table, "survey.schema_version": SCHEMA_VERSION})


DOMAINS = _schema("domains", [
    ("domain", pa.string()),
    ("input", pa.string()),            # the name as it appeared in the input list
    ("rank", pa.int64()),
    ("dns_status", pa.string()),
    ("input_error", pa.string()),      # why the input is not a host name (invalid_input)
    ("mx_kind", pa.string()),
    ("mx_hosts", STRINGS),             # MX targets in preference order
    ("mta_sts_txt_status", pa.string()),
    ("mta_sts_txt", STRINGS),          # the TXT RRset as received (joined strings)
    ("mta_sts_id", pa.string()),
    ("mta_sts_policy_status", pa.string()),
    ("mta_sts_policy_error", pa.string()),
    ("mta_sts_mode", pa.string()),
    ("mta_sts_max_age", pa.int64()),
    ("mta_sts_mx_patterns", STRINGS),
    ("sts_domain_verdict", pa.string()),
    ("tlsrpt_status", pa.string()),
    ("tlsrpt_txt", STRINGS),
    ("tlsrpt_rua", STRINGS),
    ("mx_dnssec", pa.string()),
    ("mx_dnssec_reason", pa.string()),
    ("mta_sts_txt_dnssec", pa.string()),
    ("mta_sts_txt_dnssec_reason", pa.string()),
    ("tlsrpt_dnssec", pa.string()),
    ("tlsrpt_dnssec_reason", pa.string()),
    ("probed_at", TIMESTAMP),
], not_null=("domain", "dns_status", "probed_at"))

MX = _schema("mx", [
    ("domain", pa.string()),
    ("mx_host", pa.string()),
    ("preference", pa.int32()),
    ("mx_status", pa.string()),        # DNS status of the host's A/AAAA lookup
    ("address_dnssec", pa.string()),
    ("address_dnssec_reason", pa.string()),
    ("tlsa_records", STRINGS),
    ("tlsa_base", pa.string()),        # RFC 7672 §2.2.2: where tlsa_records were found
    ("tlsa_dnssec", pa.string()),
    ("tlsa_dnssec_reason", pa.string()),
    ("dane", pa.string()),
    ("dane_sni", pa.string()),         # the SNI of the handshake dane judged (§8.1)
    ("dane_chain_sha256", STRINGS),    # that handshake's chain, leaf first
    ("dane_result_type", pa.string()),
    ("sender", pa.string()),
    ("ip", pa.string()),
    ("port", pa.int32()),
    ("host_status", pa.string()),      # hosts.status of (ip, port), copied for convenience
    ("sni", pa.string()),
    ("cert_status", pa.string()),
    ("cert_trusted", pa.bool_()),
    ("cert_time_valid", pa.bool_()),
    ("cert_name_match", pa.bool_()),
    ("cert_untrusted_reason", pa.string()),
    ("chain_sha256", STRINGS),         # leaf first
    ("sts_mx_match", pa.bool_()),
    ("sts_verdict", pa.string()),
    ("tlsrpt_result_type", pa.string()),
    ("probed_at", TIMESTAMP),
], not_null=("domain", "mx_host", "probed_at"))

HOSTS = _schema("hosts", [
    ("ip", pa.string()),
    ("port", pa.int32()),
    ("status", pa.string()),
    ("status_detail", pa.string()),    # the error text behind a non-ok status
    ("probe_status", pa.string()),
    ("banner", pa.string()),
    ("ehlo_capabilities", STRINGS),
    ("ehlo_capabilities_tls", STRINGS),
    ("starttls_offered", pa.bool_()),
    ("sni", pa.string()),
    ("tls_version", pa.string()),
    ("cipher_suite", pa.string()),
    ("chain_sha256", STRINGS),
    ("versions_supported", STRINGS),
    ("cipher_suites", pa.list_(CIPHER_SUITE)),
    ("server_preference", pa.list_(SERVER_PREFERENCE)),
    ("connections", pa.int32()),
    ("transcript", pa.string()),
    ("probed_at", TIMESTAMP),
    ("attempts", pa.list_(ATTEMPT)),   # null in scans written before attempts were recorded
    ("refused_before_ok", pa.bool_()),
], not_null=("ip", "port", "status", "probed_at"))

CERTS = _schema("certs", [
    ("sha256", pa.string()),
    ("der", pa.binary()),
    ("subject", pa.string()),
    ("issuer", pa.string()),
    ("san_dns", STRINGS),
    ("not_before", TIMESTAMP),
    ("not_after", TIMESTAMP),
    ("key_type", pa.string()),
    ("key_bits", pa.int32()),
    ("signature_algorithm", pa.string()),
    ("self_signed", pa.bool_()),
    ("probed_at", TIMESTAMP),
], not_null=("sha256", "der", "probed_at"))

SCHEMAS: dict[str, pa.Schema] = {"domains": DOMAINS, "mx": MX, "hosts": HOSTS, "certs": CERTS}
TABLES = tuple(SCHEMAS)

# The vocabulary (survey/vocabulary.py) of each column that holds one: ``to_table``
# refuses any other value. A list column's items are checked; ``column.field`` names a
# field of a list of structs.
VOCABULARIES: dict[str, dict[str, type[Vocabulary]]] = {
    "domains": {
        "dns_status": DnsStatus, "mx_kind": MxKind, "mta_sts_txt_status": TxtStatus,
        "mta_sts_policy_status": PolicyStatus, "mta_sts_policy_error": StsPolicyError,
        "mta_sts_mode": StsMode, "sts_domain_verdict": StsVerdict, "tlsrpt_status": TxtStatus,
        "mx_dnssec": DnssecStatus, "mx_dnssec_reason": DnssecReason,
        "mta_sts_txt_dnssec": DnssecStatus, "mta_sts_txt_dnssec_reason": DnssecReason,
        "tlsrpt_dnssec": DnssecStatus, "tlsrpt_dnssec_reason": DnssecReason,
    },
    "mx": {
        "mx_status": DnsStatus, "host_status": HostStatus, "cert_status": CertStatus,
        "cert_untrusted_reason": CertReason,
        "address_dnssec": DnssecStatus, "address_dnssec_reason": DnssecReason,
        "tlsa_dnssec": DnssecStatus, "tlsa_dnssec_reason": DnssecReason, "dane": DaneStatus,
        "sender": SenderVerdict, "dane_result_type": ResultType,
        "sts_verdict": StsVerdict, "tlsrpt_result_type": ResultType,
    },
    "hosts": {
        "status": HostStatus, "probe_status": ProbeStatus, "tls_version": TlsVersion,
        "versions_supported": TlsVersion, "cipher_suites.version": TlsVersion,
        "server_preference.version": TlsVersion, "attempts.step": AttemptStep,
        "attempts.status": HostStatus,
    },
    "certs": {},
}


@functools.cache
def _allowed(vocabulary: type[Vocabulary]) -> pa.Array:
    """A vocabulary's values as an Arrow array, built at its first check, not at import:
    converting Python objects is what loads pandas into pyarrow (writer.pandas_unloaded)."""
    return pa.array(vocabulary.values(), pa.string())


# What each table's row is, and one line per column: the source of docs/schema.md
# (survey/store/schemadoc.py; a test keeps the two equal and every column described).
TABLE_DOCS: dict[str, str] = {
    "domains": "one row per input domain (invalid names included, as `invalid_input`)",
    "mx": "one row per (domain, MX host, IP address); a host without addresses has one "
          "row with `ip` null",
    "hosts": "one row per mail server (IP, port), probed once however many domains use it",
    "certs": "one row per distinct certificate seen (leaf or chain), keyed by SHA-256",
}

COLUMN_DOCS: dict[str, dict[str, str]] = {
    "domains": {
        "domain": "the name as a lower-case A-label without the trailing dot "
                  "(IDNA2008, UTS-46 mapping)",
        "input": "the name as it appeared in the input list",
        "rank": "rank from a `rank,domain` list (Tranco); null for a plain list",
        "dns_status": "outcome of the MX lookup: `DnsStatus`",
        "input_error": "why the input line is not a host name (IDNA2008/UTS-46 or RFC 1035 "
                       "rule it breaks); null unless `dns_status` is `invalid_input`",
        "mx_kind": "how the domain receives mail: `MxKind`; null when the MX lookup failed",
        "mx_hosts": "MX targets in preference order ([] for `null_mx` and `none`)",
        "mta_sts_txt_status": "the `_mta-sts` TXT record set: `TxtStatus`",
        "mta_sts_txt": "the `_mta-sts` TXT RRset as received (each record's strings joined)",
        "mta_sts_id": "the record's `id=` when the record set is valid",
        "mta_sts_policy_status": "policy fetch from `mta-sts.<domain>`: `PolicyStatus` "
                                 "(`not_attempted` without a valid TXT record set)",
        "mta_sts_policy_error": "why the fetch failed or the policy is invalid: "
                                "`StsPolicyError`",
        "mta_sts_mode": "the valid policy's mode: `StsMode`; null without a valid policy",
        "mta_sts_max_age": "the valid policy's `max_age` in seconds",
        "mta_sts_mx_patterns": "the valid policy's `mx` patterns, sorted",
        "sts_domain_verdict": "would a sender with no cached policy deliver through some MX "
                              "(RFC 8461 §5): `StsVerdict`",
        "tlsrpt_status": "the `_smtp._tls` TXT record set: `TxtStatus`",
        "tlsrpt_txt": "the `_smtp._tls` TXT RRset as received (each record's strings joined)",
        "tlsrpt_rua": "the valid record's `rua` URIs, sorted",
        "mx_dnssec": "DNSSEC status of the MX lookup (RFC 4035 §4.3, validated by the scanner "
                     "from its trust anchor; NXDOMAIN/NODATA by their NSEC/NSEC3 proof): "
                     "`DnssecStatus`; null when the scan did not validate (`--no-dnssec`, "
                     "an unsigned testbed world, scans made before DNSSEC was measured)",
        "mx_dnssec_reason": "why `mx_dnssec` is `bogus` or `indeterminate`: `DnssecReason`",
        "mta_sts_txt_dnssec": "DNSSEC status of the `_mta-sts` TXT lookup: `DnssecStatus`",
        "mta_sts_txt_dnssec_reason": "why it is `bogus` or `indeterminate`: `DnssecReason`",
        "tlsrpt_dnssec": "DNSSEC status of the `_smtp._tls` TXT lookup: `DnssecStatus`",
        "tlsrpt_dnssec_reason": "why it is `bogus` or `indeterminate`: `DnssecReason`",
        "probed_at": "when the domain was measured (UTC)",
    },
    "mx": {
        "domain": "the domain (as in `domains.domain`)",
        "mx_host": "the MX host name as in the MX record (for `implicit`, the domain itself)",
        "preference": "the MX preference (0 for `implicit`)",
        "mx_status": "the host's A/AAAA lookup: `ok`, or why it has no address "
                     "(`DnsStatus`)",
        "address_dnssec": "DNSSEC status of the host's A and AAAA lookups together (the worst "
                          "of the two; CNAMEs followed count): `DnssecStatus`; null when "
                          "not validated",
        "address_dnssec_reason": "why `address_dnssec` is `bogus` or `indeterminate`: "
                                 "`DnssecReason`",
        "tlsa_records": "the TLSA RRset at `_25._tcp.<base>` as published (`usage selector "
                        "type hex`, sorted; base: the target of a secure CNAME, else the MX "
                        "host, RFC 7672 §2.2.2); looked up only when the host's addresses are "
                        "secure; [] when none; null when not looked up",
        "tlsa_base": "the TLSA base domain (RFC 7672 §2.2.2): the target of the MX host's "
                     "secure CNAME when that target has TLSA records or their lookup did "
                     "not securely deny them, else the MX host; a DANE sender sends it as "
                     "SNI (§8.1) and accepts it as a reference identifier (§3.2.3); null "
                     "when TLSA was not looked up",
        "tlsa_dnssec": "DNSSEC status of that TLSA lookup: `DnssecStatus`",
        "tlsa_dnssec_reason": "why `tlsa_dnssec` is `bogus` or `indeterminate`: "
                              "`DnssecReason`",
        "dane_result_type": "the RFC 8460 result type (`ResultType`) a DANE sender reports "
                            "for this (MX, IP) when DANE applies and fails: `tlsa-invalid`, "
                            "`dnssec-invalid`, `starttls-not-supported` or "
                            "`validation-failure`; null otherwise",
        "sender": "what a sender supporting both DANE and MTA-STS does (RFC 8461 §2: DANE "
                  "first, then MTA-STS, then opportunistic TLS): `SenderVerdict`; null when "
                  "DNSSEC was not validated or the host has no address",
        "dane": "what a DANE sender (RFC 7672) finds for this (MX, IP): `DaneStatus`; this "
                "dataset requires a secure MX RRset (Postfix 3.6+ also applies DANE to "
                "secure hosts under an insecure MX RRset); null when DNSSEC was not "
                "validated or the host has no address",
        "dane_sni": "the server name sent in the handshake whose chain `dane` judged: "
                    "`tlsa_base`, as a DANE sender sends it (RFC 7672 §8.1; for a CNAME'd MX "
                    "host the target, not `mx_host`); for a server found to ignore SNI, the "
                    "name its one probe sent (`hosts.sni`); null when `dane` judged no "
                    "handshake (DANE does not apply, or DNSSEC was not validated)",
        "dane_chain_sha256": "SHA-256 of each certificate of that handshake, leaf first "
                             "(keys of `certs`; the same as `chain_sha256` unless the server "
                             "chooses its certificate by SNI and `dane_sni` differs from "
                             "`sni`); null when `dane` judged no chain",
        "ip": "an address of the host, one row per address (IPv6 in RFC 5952 text); null "
              "when none resolved",
        "port": "the SMTP port probed (25 on the Internet)",
        "host_status": "`hosts.status` of (ip, port), copied for convenience",
        "sni": "the server name sent in the TLS handshake whose certificate the `cert_*` "
               "columns judged: `mx_host`, as a sender without DANE (MTA-STS, RFC 8461 "
               "§4.2; opportunistic TLS) sends it, also for a CNAME'd MX host; for a server "
               "found to ignore SNI, the name its one probe sent (`hosts.sni`). The DANE "
               "columns judged their own handshake (`dane_sni`)",
        "cert_status": "`valid`, or the first failing check: `CertStatus` (`no_cert` "
                       "when no handshake completed)",
        "cert_trusted": "the served chain passes path validation as a sending MTA's "
                        "OpenSSL does it for a TLS client (purpose sslserver, security level "
                        "2, trust store first, no AIA fetching; docs/certificates.md), time "
                        "aside",
        "cert_time_valid": "every certificate on the path that validation built is valid at "
                           "`probed_at` (OpenSSL's rule: the top of an untrusted path only "
                           "when self-signed)",
        "cert_name_match": "the MX host name (`mx_host`, never its CNAME target: RFC 8461 "
                           "§4.2) matches a SAN dNSName (RFC 6125 §6.4 as profiled by RFC "
                           "7817; the subject CN only without dNSName SANs)",
        "cert_untrusted_reason": "why `cert_trusted` is false: the first failure, "
                                 "`CertReason`; null when trusted or not judged",
        "chain_sha256": "SHA-256 of each certificate served, leaf first (keys of `certs`)",
        "sts_mx_match": "the MX host matches the valid policy's `mx` patterns (RFC 8461 "
                        "§4.1); null without a valid policy",
        "sts_verdict": "a sender applying the policy to this (MX, IP): `StsVerdict` "
                       "(`deliver` also when mode is `testing`)",
        "tlsrpt_result_type": "the RFC 8460 result type a sender would report for this "
                              "(MX, IP) under the domain's MTA-STS policy: `ResultType`; "
                              "null when the session succeeds or no valid `_mta-sts` record "
                              "exists",
        "probed_at": "when the row was measured (UTC)",
    },
    "hosts": {
        "ip": "the server's address (IPv6 in RFC 5952 text)",
        "port": "the SMTP port",
        "status": "outcome of the STARTTLS dialogue: `HostStatus`",
        "status_detail": "the error text behind a non-`ok` status",
        "probe_status": "the versions/ciphers enumeration: `ProbeStatus` (`not_run` "
                        "with the starttls profile)",
        "banner": "the SMTP greeting (all lines), as received",
        "ehlo_capabilities": "EHLO keywords before STARTTLS",
        "ehlo_capabilities_tls": "EHLO keywords after STARTTLS (RFC 3207 §4.2)",
        "starttls_offered": "EHLO advertised STARTTLS; null when EHLO was never answered",
        "sni": "the server name sent in this row's handshake (the first MX name seen)",
        "tls_version": "version negotiated by the STARTTLS handshake: `TlsVersion`",
        "cipher_suite": "suite negotiated by that handshake (IANA name)",
        "chain_sha256": "SHA-256 of each certificate served, leaf first (keys of `certs`)",
        "versions_supported": "TLS versions the server accepts (`TlsVersion`; versions and "
                              "ciphers profiles), sorted (oldest first); null when not measured",
        "cipher_suites": "every accepted (version, suite) pair (ciphers profile); "
                         "`preference_order` 1 = most preferred, null when the server "
                         "enforces no order",
        "server_preference": "per version: does the server enforce its own suite order "
                             "(`enforced` null: undecidable, a single suite)",
        "connections": "TCP connections this row cost: the starttls probe, its retries and "
                       "the profile's hellos (a second SNI name's probes are counted in the "
                       "manifest's stats)",
        "transcript": "the SMTP dialogue, one `C:`/`S:` line per step (capped at 64 KiB)",
        "probed_at": "when the server was probed (UTC)",
        "attempts": "every STARTTLS attempt, oldest first (temporary refusals are retried; "
                    "the rule for `status`: [HostStatus](#hoststatus)): `at` (UTC), `step` "
                    "reached (`AttemptStep`), the last `reply_code` (null: none), its "
                    "`status`; [] when never contacted (`blocked_by_policy`); null in scans "
                    "written before attempts were recorded",
        "refused_before_ok": "`status` is `ok` after at least one temporary refusal in "
                             "`attempts` (a limit or greylisting that cleared on a retry); "
                             "null when `attempts` is",
    },
    "certs": {
        "sha256": "SHA-256 of the DER encoding, lower-case hex",
        "der": "the certificate as served (DER)",
        "subject": "subject distinguished name (RFC 4514 text)",
        "issuer": "issuer distinguished name (RFC 4514 text)",
        "san_dns": "subjectAltName dNSName entries",
        "not_before": "start of validity (UTC)",
        "not_after": "end of validity (UTC)",
        "key_type": "public key algorithm (`RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`)",
        "key_bits": "key size in bits (the curve size for EC)",
        "signature_algorithm": "the signature algorithm (OpenSSL-style name, else the OID)",
        "self_signed": "the certificate verifies under its own key",
        "probed_at": "when the certificate was first seen in this scan (UTC)",
    },
}


class SchemaError(ValueError):
    """Rows that do not fit the declared schema (our bug, not the peer's)."""


def to_table(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) -> an Arrow table of the declared schema.

    Missing keys become null; unknown keys, values of the wrong type and values
    outside a column's vocabulary (``VOCABULARIES``) raise SchemaError, so a
    misspelt column or status cannot silently vanish.
    """
    try:
        schema = SCHEMAS[table]
    except KeyError:
        raise SchemaError(f"unknown table {table!r}; tables are {', '.join(TABLES)}") from None
    rows = list(rows)
    names = set(schema.names)
    for row in rows:
        if extra := set(row) - names:
            raise SchemaError(f"{table}: unknown column(s) {sorted(extra)}")
    try:
        arrow = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SchemaError(f"{table}: {exc}") from exc
    for field in schema:
        if not field.nullable and arrow.column(field.name).null_count:
            raise SchemaError(f"{table}: column {field.name!r} may not be null")
    check_vocabularies(table, arrow)
    return arrow


def check_vocabularies(table: str, arrow: pa.Table) -> None:
    """SchemaError naming the column and the value when a value is outside its vocabulary.

    Checked on each column's distinct values (Arrow compute, no Python loop over rows).
    """
    for column, vocabulary in VOCABULARIES[table].items():
        name, _, field = column.partition(".")
        values: Any = arrow.column(name)
        if pa.types.is_list(values.type):
            values = pc.list_flatten(values)
        if field:
            values = pc.struct_field(values, field)
        distinct = pc.unique(values).drop_null()
        if len(distinct) == 0:
            continue
        outside = distinct.filter(pc.invert(pc.is_in(distinct, value_set=_allowed(vocabulary))))
        if len(outside):
            raise SchemaError(
                f"{table}: column {column!r} holds {outside[0].as_py()!r}, which is not in its "
                f"vocabulary {vocabulary.__name__} ({', '.join(vocabulary.values())}; "
                "survey/vocabulary.py)")
