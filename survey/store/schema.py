"""The dataset contract as Arrow schemas, declared once.

Every table written by the scanner, the testbed's ground truth and the
analysis library uses these schemas; rows are cast to them at the boundary
(``to_table``) instead of trusting type inference, so a missing value stays
null, an empty list stays an empty list, and a typo in a column name fails
loudly. Canonical forms and verdict definitions: shared DESIGN.md.

Conventions: names are lower-case A-labels without the trailing dot, IPv6 in
RFC 5952 text, TLS versions as ``SSLv3`` .. ``TLSv1.3``, cipher suites by IANA
name, set-like lists sorted, null = not measured, [] = measured and none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1"
TIMESTAMP = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())

# Value vocabularies (DESIGN.md "Outcomes" and "Dataset contract").
DNS_STATUSES = ("ok", "nxdomain", "no_data", "servfail", "dns_refused", "dns_timeout",
                "invalid_input")
MX_KINDS = ("mx", "null_mx", "implicit", "none")
TXT_STATUSES = ("absent", "valid", "invalid", "multiple", "dns_error")
POLICY_STATUSES = ("ok", "fetch_error", "invalid", "not_attempted")
STS_MODES = ("enforce", "testing", "none")
STS_VERDICTS = ("deliver", "fail", "no_policy")
SERVER_STATUSES = ("ok", "connection_refused", "connect_timeout", "network_unreachable",
                   "reset", "read_timeout", "protocol_error", "smtp_reject_4xx",
                   "smtp_reject_5xx", "rate_limited", "no_starttls", "starttls_rejected",
                   "tls_handshake_failed", "blocked_by_policy")
PROBE_STATUSES = ("ok", "partial", "not_run", "failed")
CERT_STATUSES = ("valid", "no_cert", "self_signed", "untrusted", "expired", "not_yet_valid",
                 "name_mismatch")
TLS_VERSIONS = ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

CIPHER_SUITE = pa.struct([
    ("version", pa.string()),
    ("name", pa.string()),
    ("preference_order", pa.int32()),  # 1 = most preferred; null when no order is enforced
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
    ("probed_at", TIMESTAMP),
], not_null=("domain", "dns_status", "probed_at"))

MX = _schema("mx", [
    ("domain", pa.string()),
    ("mx_host", pa.string()),
    ("preference", pa.int32()),
    ("mx_status", pa.string()),        # DNS status of the host's A/AAAA lookup
    ("ip", pa.string()),
    ("port", pa.int32()),
    ("host_status", pa.string()),      # hosts.status of (ip, port), copied for convenience
    ("sni", pa.string()),
    ("cert_status", pa.string()),
    ("cert_trusted", pa.bool_()),
    ("cert_time_valid", pa.bool_()),
    ("cert_name_match", pa.bool_()),
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


class SchemaError(ValueError):
    """Rows that do not fit the declared schema (our bug, not the peer's)."""


def to_table(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) -> an Arrow table of the declared schema.

    Missing keys become null; unknown keys and values of the wrong type raise
    SchemaError, so a misspelt column cannot silently vanish.
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
    return arrow
