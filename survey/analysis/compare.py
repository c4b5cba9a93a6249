"""Two scans of (mostly) the same list, compared domain by domain.

Changes are counted over the domains present in both scans (a list changes
between two downloads: the domains only in one scan are reported, not
compared). Definitions:

  * MTA-STS *adopted*: no valid policy (valid TXT and valid policy) in the
    earlier scan, one in the later; *dropped*: the reverse. Likewise for
    STARTTLS (offered on some MX) and TLSRPT (valid record).
  * *mode change*: a valid policy in both scans with a different mode.
  * *certificates*: per MX host name that completed TLS in both scans, by
    what changed between the newest leaf of each (not by the DER alone: a
    re-issued certificate has a new DER and nothing else new):
    ``unchanged`` (the same leaves); ``re-issued`` (a new certificate whose
    validity period is the same to within a day: a new serial, perhaps a new
    key or issuer, but not a renewal); ``renewed`` (validity ends at least a
    day later and the new certificate is in date when probed); ``replaced``
    (anything else: a shorter validity, an expired certificate replaced by
    another expired one). The key (SHA-256 of the SubjectPublicKeyInfo),
    issuer and validity changes are counted per outcome.
  * *warnings*: a sentence per way the two scans differ beyond time
    (profile, list or part of it, vantage point, EHLO name, tool version,
    testbed world): those changes are partly differences in method.

Both scans are attached to one DuckDB connection of their own; only the
small results become pandas.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import duckdb
import pandas as pd

from survey.analysis.load import Scan
from survey.store import TABLES, open_dataset
from survey.vocabulary import CertChange, HostStatus, PolicyStatus, TxtStatus

_STS_OK = (f"d.mta_sts_txt_status = '{TxtStatus.VALID}' "
           f"AND d.mta_sts_policy_status = '{PolicyStatus.OK}'")

_DOMAIN_STATE = f"""
CREATE OR REPLACE TEMP TABLE {{p}}_state AS
WITH mx AS (
  SELECT m.domain, bool_or(coalesce(h.starttls_offered, false)) AS starttls
  FROM {{p}}_mx m LEFT JOIN {{p}}_hosts h ON h.ip = m.ip AND h.port = m.port
  GROUP BY m.domain
)
SELECT d.domain,
  coalesce({_STS_OK}, false) AS sts,
  CASE WHEN {_STS_OK} THEN d.mta_sts_mode END AS mode,
  coalesce(d.tlsrpt_status = '{TxtStatus.VALID}', false) AS tlsrpt,
  coalesce(mx.starttls, false) AS starttls
FROM (SELECT * FROM {{p}}_domains QUALIFY row_number() OVER (PARTITION BY domain
      ORDER BY probed_at DESC) = 1) d
LEFT JOIN mx USING (domain)
"""

_LEAVES = f"""
CREATE OR REPLACE TEMP TABLE {{p}}_leaves AS
WITH rows AS (
  SELECT m.mx_host, m.chain_sha256[1] AS leaf
  FROM {{p}}_mx m
  WHERE m.host_status = '{HostStatus.OK}' AND m.chain_sha256 IS NOT NULL AND len(m.chain_sha256) > 0
), certs AS (
  SELECT sha256, any_value(der) AS der, any_value(issuer) AS issuer,
         max(not_before) AS not_before, max(not_after) AS not_after,
         max(probed_at) AS probed_at
  FROM {{p}}_certs GROUP BY sha256
)
SELECT r.mx_host, list_sort(list_distinct(list(r.leaf))) AS leaves,
       arg_max(r.leaf, c.not_after) AS newest, max(c.not_after) AS newest_not_after
FROM rows r LEFT JOIN certs c ON c.sha256 = r.leaf
GROUP BY r.mx_host
"""

_NEWEST = """
SELECT l.mx_host, l.newest AS sha256, c.der, c.issuer, c.not_before, c.not_after, c.probed_at
FROM {p}_leaves l
LEFT JOIN (SELECT sha256, any_value(der) AS der, any_value(issuer) AS issuer,
                  max(not_before) AS not_before, max(not_after) AS not_after,
                  max(probed_at) AS probed_at FROM {p}_certs GROUP BY sha256) c
       ON c.sha256 = l.newest
WHERE l.mx_host IN (SELECT a.mx_host FROM a_leaves a JOIN b_leaves b USING (mx_host)
                    WHERE a.leaves <> b.leaves)
"""

# Renewal outcomes (survey.vocabulary.CertChange), in the order of the table
CERT_OUTCOMES = CertChange.values()
SAME_VALIDITY = timedelta(days=1)
# what the manifests of two comparable scans share: (label, path into the manifest)
PROVENANCE = (
    ("profile", ("config", "profile")),
    ("list", ("input", "sha256")),
    ("list part (--limit)", ("config", "limit")),
    ("list part (--shard)", ("config", "shard")),
    ("vantage", ("vantage", "hostname")),
    ("EHLO name", ("vantage", "ehlo_name")),
    ("tool version", ("tool_version",)),
    ("testbed world seed", ("world", "seed")),
)


@dataclass(frozen=True)
class Comparison:
    """The result of ``compare``: small tables, ready to print or plot."""

    earlier: str
    later: str
    domains: pd.DataFrame       # in both / only earlier / only later
    changes: pd.DataFrame       # feature, adopted, dropped, unchanged_with, unchanged_without
    modes: pd.DataFrame         # from_mode, to_mode, domains (changes only)
    certificates: pd.DataFrame  # outcome (CERT_OUTCOMES), mx_hosts, key/issuer/validity changed
    renewed_hosts: pd.DataFrame  # mx_host, outcome, what changed (a sample of rows)
    scans: pd.DataFrame = field(default_factory=pd.DataFrame)  # provenance, side by side
    warnings: tuple[str, ...] = ()   # how the two scans differ beyond time


def _attach(con: duckdb.DuckDBPyConnection, prefix: str, scan: Scan) -> None:
    for table in TABLES:
        con.register(f"{prefix}_{table}", open_dataset(scan.path, table))
    con.execute(_DOMAIN_STATE.format(p=prefix))
    con.execute(_LEAVES.format(p=prefix))


def _get(manifest: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = manifest
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _shown(label: str, value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:16] + "\u2026" if label == "list" and len(text) > 16 else text


def provenance(earlier: Scan, later: Scan) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The two scans' provenance side by side, and a warning per difference beyond time.

    Two scans compare like with like only when they used the same profile
    (a ``starttls`` scan enumerates nothing a ``versions`` scan does), the
    same list (and the same part of it), the same vantage point and the
    same tool version; otherwise part of every change is the difference in
    method.
    """
    rows, warnings = [], []
    for label, path in PROVENANCE:
        a, b = _get(earlier.manifest, path), _get(later.manifest, path)
        rows.append({"": label, "earlier": _shown(label, a), "later": _shown(label, b)})
        if a != b:
            what = {"list": "lists (SHA-256 of the input differs)",
                    "profile": "profiles", "vantage": "vantage points",
                    "tool version": "versions of survey"}.get(label, label + " settings")
            warnings.append(f"The two scans used different {what}: {a!r} then {b!r}. "
                            "Changes below mix what changed on the servers with what "
                            "changed in the measurement.")
    return pd.DataFrame(rows), tuple(warnings)


def _key_id(der: bytes | None, fallback: str) -> str:
    """SHA-256 of the certificate's SubjectPublicKeyInfo (the certificate's own, if unparseable)."""
    if der:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            spki = x509.load_der_x509_certificate(bytes(der)).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return hashlib.sha256(spki).hexdigest()
        except (ValueError, TypeError):
            pass
    return "cert:" + fallback


def _renewals(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per MX host name whose leaves changed: what changed, and the outcome."""
    a = con.execute(_NEWEST.format(p="a")).df().set_index("mx_host")
    b = con.execute(_NEWEST.format(p="b")).df().set_index("mx_host")
    rows = []
    for host in sorted(set(a.index) & set(b.index)):
        old, new = a.loc[host], b.loc[host]
        key_changed = _key_id(old["der"], str(old["sha256"])) != \
            _key_id(new["der"], str(new["sha256"]))
        issuer_changed = old["issuer"] != new["issuer"]
        same_validity = (abs(new["not_after"] - old["not_after"]) < SAME_VALIDITY
                         and abs(new["not_before"] - old["not_before"]) < SAME_VALIDITY)
        in_date = new["not_before"] <= new["probed_at"] <= new["not_after"]
        if same_validity:
            outcome = CertChange.REISSUED
        elif new["not_after"] - old["not_after"] >= SAME_VALIDITY and in_date:
            outcome = CertChange.RENEWED
        else:
            outcome = CertChange.REPLACED
        rows.append({"mx_host": host, "outcome": str(outcome), "key_changed": key_changed,
                     "issuer_changed": issuer_changed, "validity_changed": not same_validity,
                     "earlier_not_after": old["not_after"], "later_not_after": new["not_after"],
                     "later_in_date": in_date})
    return pd.DataFrame(rows, columns=["mx_host", "outcome", "key_changed", "issuer_changed",
                                       "validity_changed", "earlier_not_after",
                                       "later_not_after", "later_in_date"])


def compare(earlier: Scan, later: Scan, *, examples: int = 20) -> Comparison:
    """What changed from ``earlier`` to ``later`` (see the module docstring)."""
    con = duckdb.connect()
    try:
        _attach(con, "a", earlier)
        _attach(con, "b", later)
        counts = con.execute(
            "SELECT count(*) FILTER (WHERE a.domain IS NOT NULL AND b.domain IS NOT NULL), "
            "count(*) FILTER (WHERE b.domain IS NULL), count(*) FILTER (WHERE a.domain IS NULL) "
            "FROM a_state a FULL OUTER JOIN b_state b USING (domain)").fetchone()
        assert counts is not None             # an aggregate without GROUP BY: one row
        domains = pd.DataFrame({"population": ["in both scans", "only in the earlier scan",
                                               "only in the later scan"],
                                "domains": [int(c) for c in counts]})
        rows = []
        for feature, column in (("MTA-STS policy", "sts"), ("TLSRPT record", "tlsrpt"),
                                ("STARTTLS (any MX)", "starttls")):
            found = con.execute(
                f"SELECT count(*) FILTER (WHERE NOT a.{column} AND b.{column}), "
                f"count(*) FILTER (WHERE a.{column} AND NOT b.{column}), "
                f"count(*) FILTER (WHERE a.{column} AND b.{column}), "
                f"count(*) FILTER (WHERE NOT a.{column} AND NOT b.{column}) "
                f"FROM a_state a JOIN b_state b USING (domain)").fetchone()
            assert found is not None
            adopted, dropped, kept, never = found
            rows.append({"feature": feature, "adopted": int(adopted), "dropped": int(dropped),
                         "kept": int(kept), "never": int(never)})
        changes = pd.DataFrame(rows)
        modes = con.execute(
            "SELECT a.mode AS from_mode, b.mode AS to_mode, count(*) AS domains "
            "FROM a_state a JOIN b_state b USING (domain) "
            "WHERE a.mode IS NOT NULL AND b.mode IS NOT NULL AND a.mode <> b.mode "
            "GROUP BY ALL ORDER BY domains DESC, from_mode, to_mode").df()
        same = con.execute(
            "SELECT count(*) FROM a_leaves a JOIN b_leaves b USING (mx_host) "
            "WHERE a.leaves = b.leaves").fetchone()
        assert same is not None                 # an aggregate without GROUP BY: one row
        unchanged = int(same[0])
        changed = _renewals(con)
    finally:
        con.close()
    cert_rows = [{"outcome": str(CertChange.UNCHANGED), "mx_hosts": unchanged, "key_changed": 0,
                  "issuer_changed": 0, "validity_changed": 0}]
    for outcome in CERT_OUTCOMES[1:]:
        part = changed[changed["outcome"] == outcome]
        cert_rows.append({"outcome": str(outcome), "mx_hosts": len(part),
                          "key_changed": int(part["key_changed"].sum()),
                          "issuer_changed": int(part["issuer_changed"].sum()),
                          "validity_changed": int(part["validity_changed"].sum())})
    certificates = pd.DataFrame(cert_rows)
    scans, warnings = provenance(earlier, later)
    return Comparison(earlier.label, later.label, domains, changes, modes, certificates,
                      changed.head(examples).reset_index(drop=True), scans, warnings)
