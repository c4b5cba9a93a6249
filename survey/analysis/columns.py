"""The columns of the fact tables, each with its meaning: what a condition can use.

``domain_facts`` (one row per domain of the list), ``host_facts`` (one row
per MX host name) and ``ip_facts`` (one row per server address) are built
by ``facts.py`` from the scan's tables; every metric, breakdown and named
predicate (``where.py``) is a condition or a grouping over their columns.
Find them with ``sa.columns()`` (a DataFrame: table, column, meaning), or
``help(survey.analysis.columns)``, or in docs/analysis.md (generated from
``COLUMNS``; tests/test_analysis_columns.py keeps all three in step with the
tables that ``facts.py`` actually builds).
"""

from __future__ import annotations

import pandas as pd

COLUMNS: dict[str, dict[str, str]] = {
    "domain_facts": {
        "domain": "the domain (lower-case A-label)",
        "rank": "its rank in the list (null for a plain list)",
        "dns_status": "outcome of the MX lookup (docs/schema.md)",
        "mx_kind": "mx, null_mx, implicit or none; null when the lookup failed",
        "tld": "the last label of the domain",
        "accepts_mail": "MX records or an implicit MX: the usual denominator",
        "mx_rows": "(MX host, address) rows of the domain",
        "mx_hosts": "distinct MX host names of the domain",
        "any_offered": "STARTTLS listed by some (MX, address)",
        "all_offered": "STARTTLS listed by every (MX, address); an MX without address fails",
        "primary_offered": "STARTTLS listed by every address of the lowest-preference MX hosts",
        "any_working": "a TLS handshake completed with some (MX, address)",
        "all_working": "a TLS handshake completed with every (MX, address)",
        "primary_working": "a TLS handshake completed with every primary (MX, address)",
        "outcome": "best outcome over the domain's rows (facts.OUTCOMES)",
        "primary_outcome": "best outcome over the primary MX rows",
        "cert_worst": "worst certificate verdict over the rows with a handshake",
        "cert_primary": "worst certificate verdict over the primary MX rows with a handshake",
        "chain_primary": "self_signed, broken or valid_chain (primary MX; Postini's classes)",
        "provider": "mail provider of the primary MX, {self-hosted} or {no MX}",
        "cluster": "the bootstrap's cluster: the provider, or the domain itself",
        "sts_record": "an _mta-sts TXT record set: valid, invalid or several",
        "sts_txt_valid": "exactly one valid _mta-sts TXT record",
        "sts_fetched": "the policy fetch returned a body (valid or not)",
        "sts_policy_valid": "the policy was fetched and is valid",
        "sts_txt_status": "the _mta-sts TXT status as scanned",
        "sts_policy_status": "the policy fetch status as scanned",
        "sts_policy_error": "why the fetch failed or the policy is invalid (a category)",
        "sts_mode": "enforce, testing or none (a valid policy's mode)",
        "sts_verdict": "the scanner's sts_domain_verdict: deliver, fail or no_policy",
        "sts_all_mx_match": "a valid policy whose mx patterns match every MX host",
        "sts_deliver": "mode enforce or testing and sts_verdict deliver",
        "sts_fail": "sts_verdict fail: a sender applying the policy would not deliver",
        "sts_correct": "TXT and policy valid, and (unless mode none) no RFC 8460 failure row",
        "tlsrpt_status": "the _smtp._tls TXT status as scanned",
        "tlsrpt_record": "an _smtp._tls TXT record set: valid, invalid or several",
        "tlsrpt_valid": "exactly one valid _smtp._tls record",
        "tlsrpt_rua": "the record's report URIs",
        "mx_dnssec": "DNSSEC status of the MX lookup (null: the scan did not validate)",
        "mx_secure": "the MX RRset is DNSSEC-signed and validates (mx_dnssec secure)",
        "dane_tlsa": "MX RRset secure and usable TLSA (DANE-TA/EE, secure) on every primary "
                     "(MX, address)",
        "dane_valid": "dane_tlsa and mx.dane valid (a record matches) on every primary row",
        "dane_usages": "DANE-EE, DANE-TA or both among the primary rows' usable TLSA "
                       "(null without dane_tlsa)",
        "dane_311": "dane_tlsa and every primary (MX, address) publishes a `3 1 1` record",
    },
    "host_facts": {
        "mx_host": "the MX host name",
        "provider": "its mail provider (the registrable domain through the provider table)",
        "cluster": "the bootstrap's cluster",
        "domains": "domains of the list that use it",
        "has_address": "it resolved to some address",
        "offered": "STARTTLS listed on some address",
        "tls_ok": "a TLS handshake completed on some address",
        "fs": "forward secrecy negotiated on every address with a handshake",
        "outcome": "best outcome over its addresses",
        "cert_status": "worst certificate verdict over its addresses with a handshake",
    },
    "ip_facts": {
        "ip": "the server address",
        "port": "the SMTP port",
        "status": "the probe's status (docs/schema.md hosts.status)",
        "probe_status": "how far the enumeration got: ok, partial, not_run, failed",
        "starttls_offered": "EHLO listed STARTTLS",
        "tls_version": "the negotiated TLS version",
        "cipher_suite": "the negotiated suite (IANA name)",
        "fs": "the negotiated suite's key exchange is ephemeral",
        "suite_class": "the negotiated suite's NCSC-NL 2025 class",
        "versions_supported": "versions the server accepts (--profile versions, ciphers)",
        "cipher_suites": "suites the server accepts, per version (--profile ciphers)",
        "server_preference": "whether it enforces its suite order, per version (ciphers)",
        "banner": "the greeting as sent (server-chosen text)",
        "outcome": "the address's outcome (facts.OUTCOMES)",
        "leaf": "SHA-256 of the leaf certificate",
        "leaf_self_signed": "the leaf is self-signed",
        "key_type": "the leaf's key type (RSA, EC, ...)",
        "key_bits": "the leaf's key size",
        "issuer": "the leaf's issuer (server-chosen text)",
        "subject": "the leaf's subject (server-chosen text)",
        "not_after": "the leaf's expiry",
        "cluster": "the bootstrap's cluster: the smallest of its MX names'",
    },
}
TABLE_OF = {"domain": "domain_facts", "host": "host_facts", "ip": "ip_facts"}


def columns(table: str | None = None) -> pd.DataFrame:
    """The fact tables' columns with their meaning (``table``: domain, host, ip or a name)."""
    wanted = TABLE_OF.get(table, table) if table else None
    rows = [{"table": t, "column": c, "meaning": m} for t, cols in COLUMNS.items()
            if wanted in (None, t) for c, m in cols.items()]
    if wanted is not None and not rows:
        raise ValueError(f"no fact table {table!r}; one of {', '.join(COLUMNS)}")
    return pd.DataFrame(rows, columns=["table", "column", "meaning"])


def markdown() -> str:
    """docs/analysis.md's column section (what tests/test_analysis_columns.py compares)."""
    lines = []
    for table, cols in COLUMNS.items():
        lines += [f"### `{table}`", "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{c}` | {m.replace('|', '/')} |" for c, m in cols.items()]
        lines.append("")
    return "\n".join(lines)


_LISTING = "\n\nColumns\n-------\n" + "\n".join(
    f"{table}:\n" + "\n".join(f"  {c:20} {m}" for c, m in cols.items())
    for table, cols in COLUMNS.items())
__doc__ = (__doc__ or "") + _LISTING
columns.__doc__ = (columns.__doc__ or "") + _LISTING    # help(sa.columns) lists them
