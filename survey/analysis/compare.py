"""Two scans of (mostly) the same list, compared domain by domain.

Changes are counted over the domains present in both scans (a list changes
between two downloads: the domains only in one scan are reported, not
compared). Definitions:

  * MTA-STS *adopted*: no valid policy (valid TXT and valid policy) in the
    earlier scan, one in the later; *dropped*: the reverse. Likewise for
    STARTTLS (offered on some MX) and TLSRPT (valid record).
  * *mode change*: a valid policy in both scans with a different mode.
  * *certificate renewal*: an MX host name that completed TLS in both scans
    and presented a different set of leaf certificates; ``renewed`` when the
    newest leaf of the later scan expires after the newest of the earlier one,
    ``replaced`` otherwise (e.g. a different, shorter-lived certificate).

Both scans are attached to one DuckDB connection of their own; only the
small results become pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from survey.analysis.load import Scan
from survey.store import TABLES, open_dataset

_DOMAIN_STATE = """
CREATE OR REPLACE TEMP TABLE {p}_state AS
WITH mx AS (
  SELECT m.domain, bool_or(coalesce(h.starttls_offered, false)) AS starttls
  FROM {p}_mx m LEFT JOIN {p}_hosts h ON h.ip = m.ip AND h.port = m.port
  GROUP BY m.domain
)
SELECT d.domain,
  coalesce(d.mta_sts_txt_status = 'valid' AND d.mta_sts_policy_status = 'ok', false) AS sts,
  CASE WHEN d.mta_sts_txt_status = 'valid' AND d.mta_sts_policy_status = 'ok'
       THEN d.mta_sts_mode END AS mode,
  coalesce(d.tlsrpt_status = 'valid', false) AS tlsrpt,
  coalesce(mx.starttls, false) AS starttls
FROM (SELECT * FROM {p}_domains QUALIFY row_number() OVER (PARTITION BY domain
      ORDER BY probed_at DESC) = 1) d
LEFT JOIN mx USING (domain)
"""

_LEAVES = """
CREATE OR REPLACE TEMP TABLE {p}_leaves AS
SELECT m.mx_host, list_sort(list_distinct(list(m.chain_sha256[1]))) AS leaves,
       max(c.not_after) AS newest_not_after
FROM {p}_mx m LEFT JOIN (SELECT sha256, max(not_after) AS not_after FROM {p}_certs
                         GROUP BY sha256) c ON c.sha256 = m.chain_sha256[1]
WHERE m.host_status = 'ok' AND m.chain_sha256 IS NOT NULL AND len(m.chain_sha256) > 0
GROUP BY m.mx_host
"""


@dataclass(frozen=True)
class Comparison:
    """The result of ``compare``: small tables, ready to print or plot."""

    earlier: str
    later: str
    domains: pd.DataFrame       # in both / only earlier / only later
    changes: pd.DataFrame       # feature, adopted, dropped, unchanged_with, unchanged_without
    modes: pd.DataFrame         # from_mode, to_mode, domains (changes only)
    certificates: pd.DataFrame  # outcome (renewed, replaced, unchanged), mx_hosts
    renewed_hosts: pd.DataFrame  # mx_host, earlier/later newest not_after (a sample of rows)


def _attach(con: duckdb.DuckDBPyConnection, prefix: str, scan: Scan) -> None:
    for table in TABLES:
        con.register(f"{prefix}_{table}", open_dataset(scan.path, table))
    con.execute(_DOMAIN_STATE.format(p=prefix))
    con.execute(_LEAVES.format(p=prefix))


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
        domains = pd.DataFrame({"population": ["in both scans", "only in the earlier scan",
                                               "only in the later scan"],
                                "domains": [int(c) for c in counts]})
        rows = []
        for feature, column in (("MTA-STS policy", "sts"), ("TLSRPT record", "tlsrpt"),
                                ("STARTTLS (any MX)", "starttls")):
            adopted, dropped, kept, never = con.execute(
                f"SELECT count(*) FILTER (WHERE NOT a.{column} AND b.{column}), "
                f"count(*) FILTER (WHERE a.{column} AND NOT b.{column}), "
                f"count(*) FILTER (WHERE a.{column} AND b.{column}), "
                f"count(*) FILTER (WHERE NOT a.{column} AND NOT b.{column}) "
                f"FROM a_state a JOIN b_state b USING (domain)").fetchone()
            rows.append({"feature": feature, "adopted": int(adopted), "dropped": int(dropped),
                         "kept": int(kept), "never": int(never)})
        changes = pd.DataFrame(rows)
        modes = con.execute(
            "SELECT a.mode AS from_mode, b.mode AS to_mode, count(*) AS domains "
            "FROM a_state a JOIN b_state b USING (domain) "
            "WHERE a.mode IS NOT NULL AND b.mode IS NOT NULL AND a.mode <> b.mode "
            "GROUP BY ALL ORDER BY domains DESC, from_mode, to_mode").df()
        cert_rows = con.execute(
            "SELECT CASE WHEN a.leaves = b.leaves THEN 'unchanged' "
            "WHEN b.newest_not_after > a.newest_not_after THEN 'renewed' "
            "ELSE 'replaced' END AS outcome, count(*) AS mx_hosts "
            "FROM a_leaves a JOIN b_leaves b USING (mx_host) GROUP BY ALL").fetchall()
        found = {r[0]: int(r[1]) for r in cert_rows}
        certificates = pd.DataFrame({"outcome": ["renewed", "replaced", "unchanged"],
                                     "mx_hosts": [found.get(k, 0) for k in
                                                  ("renewed", "replaced", "unchanged")]})
        renewed_hosts = con.execute(
            "SELECT mx_host, a.newest_not_after AS earlier_not_after, "
            "b.newest_not_after AS later_not_after FROM a_leaves a JOIN b_leaves b "
            "USING (mx_host) WHERE a.leaves <> b.leaves ORDER BY mx_host LIMIT ?",
            [examples]).df()
    finally:
        con.close()
    return Comparison(earlier.label, later.label, domains, changes, modes, certificates,
                      renewed_hosts)
