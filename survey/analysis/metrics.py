"""The statistics a paper reports, each with its denominator said out loud.

Every share function takes a ``Scan`` and returns one type: a shares table
(``shares.frame``: a row per share with name, count, total, share, low,
high, unit, interval, not_measured; ``shares_of`` turns it back into
``Share`` values). Counts that are not shares say so in their name
(``versions_measured``, ``denominators``, ``tlsrpt_result_types``). The
units of analysis and their definitions live in ``facts.py``; this module
only aggregates. Intervals appear when the scan is a sample (see
``shares.py``: cluster bootstrap by provider).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from survey.analysis.facts import (
    CERT_ORDER,
    CHAIN_CLASSES,
    EHLO_ANSWERED,
    OUTCOMES,
    STS_ACTIVE,
)
from survey.analysis.load import Scan
from survey.analysis.shares import BOOTSTRAP, CENSUS, Share, cluster_bootstrap, frame
from survey.proto.ciphers import SECURITY_CLASSES, VERSIONS
from survey.vocabulary import (
    CertStatus,
    DaneStatus,
    DnsStatus,
    HostStatus,
    MxKind,
    PolicyStatus,
    ProbeStatus,
    ResultType,
    SenderVerdict,
    StsMode,
    StsVerdict,
    TxtStatus,
)

# Units (denominator names), one spelling each.
DOMAINS = "domains in the list"
MAIL_DOMAINS = "domains accepting mail"
MX_HOSTS = "MX host names"
IPS = "IP addresses"
TLS_HOSTS = "MX host names with a TLS handshake"
TLS_IPS = "IP addresses with a TLS handshake"
EHLO_IPS = "IP addresses answering EHLO"
EHLO_HOSTS = "MX host names answering EHLO"
ENUMERATED_SUITES = "IP addresses with enumerated suites"

_TABLE = {"domain": "domain_facts", "host": "host_facts", "ip": "ip_facts", "row": "mx_rows"}


_TLS_OK = f"status = '{HostStatus.OK}'"       # an ip_facts row whose STARTTLS worked


def _in(values: Iterable[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def share(scan: Scan, unit_table: str, numerator: str, denominator: str = "true", *,
          name: str, unit: str) -> Share:
    """count(numerator AND denominator) / count(denominator) over one fact table.

    ``unit_table``: ``domain``, ``host``, ``ip`` or ``row`` (a (domain, MX, IP) row
    of ``mx_rows``); the conditions are SQL over
    its columns (facts.py). A sample gets a cluster-bootstrap interval.
    """
    table = _TABLE[unit_table]
    scan.facts()
    if not scan.is_sample:
        k, n = scan.rows(f"SELECT count(*) FILTER (WHERE ({denominator}) AND ({numerator})), "
                         f"count(*) FILTER (WHERE {denominator}) FROM {table}")[0]
        return Share(name, int(k), int(n), unit, interval=CENSUS)
    # one row per distinct (k, n) pair of a cluster, with how many clusters have it
    rows = scan.rows(f"SELECT k, n, count(*) FROM (SELECT "
                     f"count(*) FILTER (WHERE ({denominator}) AND ({numerator})) AS k, "
                     f"count(*) FILTER (WHERE {denominator}) AS n FROM {table} "
                     f"GROUP BY cluster) GROUP BY k, n")
    num, den, mult = (np.array([r[i] for r in rows], dtype=np.int64) for i in range(3))
    interval = cluster_bootstrap(num, den, mult, replicates=scan.replicates, seed=scan.seed)
    low, high = interval if interval else (None, None)
    return Share(name, int(num @ mult), int(den @ mult), unit, low, high, int(mult.sum()),
                 interval=BOOTSTRAP)


def distribution(scan: Scan, unit_table: str, category: str, denominator: str = "true", *,
                 unit: str, categories: Sequence[str] | None = None,
                 include_null: str | None = None, top: int | None = None) -> pd.DataFrame:
    """Shares of each value of ``category`` (an SQL expression) among ``denominator`` rows.

    ``categories`` fixes the order (and lists zero counts); ``include_null``
    names the category of NULL values (dropped otherwise, and then not in the
    total either); ``top`` keeps the largest N and folds the rest into "other".
    """
    table = _TABLE[unit_table]
    scan.facts()
    where = f"({denominator})" + ("" if include_null else f" AND ({category}) IS NOT NULL")
    expr = f"coalesce(CAST(({category}) AS VARCHAR), '{include_null}')" if include_null \
        else f"CAST(({category}) AS VARCHAR)"
    totals = dict(scan.rows(f"SELECT {expr} AS category, count(*) FROM {table} WHERE {where} "
                            "GROUP BY ALL"))
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    order = list(categories) + [c for c in ranked if c not in categories] if categories \
        else ranked
    folded = {}
    if top is not None and len(order) > top:
        folded = {c: "other" for c in order[top:]}
        order = order[:top] + ["other"]
    counts = {c: 0 for c in order}
    for c, n in totals.items():
        counts[folded.get(c, c)] += int(n)
    total = sum(counts.values())
    intervals = _category_intervals(scan, table, expr, where, folded) if scan.is_sample else {}

    def interval(c: str) -> tuple[float | None, float | None]:
        if c in intervals:
            return intervals[c]
        if scan.is_sample and total and not counts[c]:
            return 0.0, 0.0      # nobody has it: zero in every resample
        return None, None

    method = BOOTSTRAP if scan.is_sample else CENSUS
    out = [Share(str(c), counts[c], total, unit, *interval(c), interval=method)
           for c in order]
    return frame(out, index="category")


def _category_intervals(scan: Scan, table: str, expr: str, where: str,
                        folded: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Cluster-bootstrap interval of each category's share (compressed in SQL, see shares.py).

    Per category, a cluster contributes (its rows of that category, all its
    rows); clusters without the category contribute (0, n). Only distinct
    pairs with their multiplicities leave DuckDB.
    """
    fold = "CASE " + " ".join(f"WHEN c = '{k.replace(chr(39), chr(39) * 2)}' THEN 'other'"
                              for k in folded) + " ELSE c END" if folded else "c"
    rows = scan.rows(f"""
        WITH c AS (SELECT cluster, {fold} AS category, count(*) AS k FROM
                   (SELECT cluster, {expr} AS c FROM {table} WHERE {where}) GROUP BY ALL),
        n AS (SELECT cluster, sum(k) AS n FROM c GROUP BY cluster),
        cats AS (SELECT DISTINCT category FROM c),
        present AS (SELECT category, k, n.n AS n, count(*) AS m FROM c JOIN n USING (cluster)
                    GROUP BY ALL),
        everyone AS (SELECT n, count(*) AS m FROM n GROUP BY n),
        having_cat AS (SELECT category, n, sum(m) AS m FROM present GROUP BY ALL)
        SELECT category, k, n, m FROM present
        UNION ALL
        SELECT cats.category, 0, e.n, e.m - coalesce(h.m, 0)
        FROM cats CROSS JOIN everyone e
        LEFT JOIN having_cat h ON h.category = cats.category AND h.n = e.n
        WHERE e.m - coalesce(h.m, 0) > 0""")
    by_category: dict[str, list[tuple[int, int, int]]] = {}
    for cat, k, n, m in rows:
        by_category.setdefault(cat, []).append((k, n, m))
    out = {}
    for cat, triples in by_category.items():
        k, n, m = (np.array([t[i] for t in triples], dtype=np.int64) for i in range(3))
        interval = cluster_bootstrap(k, n, m, replicates=scan.replicates, seed=scan.seed)
        if interval:
            out[cat] = interval
    return out


# -- STARTTLS --------------------------------------------------------------------------

def _starttls_domains(scan: Scan) -> list[Share]:
    """STARTTLS offered / working on any MX, all MX, the primary MX (domains accepting mail)."""
    out = []
    for scope in ("any", "all", "primary"):
        for what, label in (("offered", "offered"), ("working", "working")):
            out.append(share(scan, "domain", f"{scope}_{what}", "accepts_mail",
                             name=f"STARTTLS {label}, {scope} MX", unit=MAIL_DOMAINS))
    return out


def _starttls_hosts(scan: Scan) -> list[Share]:
    """STARTTLS offered / working per MX host name (any of its addresses)."""
    return [share(scan, "host", "offered", name="STARTTLS offered", unit=MX_HOSTS),
            share(scan, "host", "tls_ok", name="STARTTLS working", unit=MX_HOSTS)]


def _starttls_ips(scan: Scan) -> list[Share]:
    """STARTTLS offered / working per server address that was scanned."""
    den = "outcome <> 'not_scanned'"
    return [share(scan, "ip", "coalesce(starttls_offered, false)", den,
                  name="STARTTLS offered", unit=IPS + " scanned"),
            share(scan, "ip", _TLS_OK, den, name="STARTTLS working",
                  unit=IPS + " scanned")]


def starttls(scan: Scan) -> pd.DataFrame:
    """Every STARTTLS share, one table (the three denominators apart)."""
    return frame([*_starttls_domains(scan), *_starttls_hosts(scan), *_starttls_ips(scan)])


def outcomes(scan: Scan) -> pd.DataFrame:
    """What happened when we tried: domains (best MX), MX host names, addresses.

    Rate-limited, rejected and unreachable servers are their own categories,
    never counted as "no STARTTLS".
    """
    parts = []
    for unit_table, denominator, unit, column in (
            ("domain", "accepts_mail", MAIL_DOMAINS, "coalesce(outcome, 'no_address')"),
            ("host", "true", MX_HOSTS, "outcome"),
            ("ip", "true", IPS, "outcome")):
        parts.append(distribution(scan, unit_table, column, denominator, unit=unit,
                                  categories=OUTCOMES))
    return pd.concat(parts, ignore_index=True)


# -- TLS versions, cipher suites, forward secrecy ----------------------------------------

def tls_versions(scan: Scan) -> pd.DataFrame:
    """Negotiated version per address with a handshake; supported versions where enumerated.

    ``measure`` says which: ``negotiated`` (the starttls probe: the best the
    server and our client share) or ``supported`` (the versions profile;
    shares do not add up to 1: a server supports several). Addresses whose
    enumeration did not run (null ``versions_supported``), or whose handshakes never
    complete (``probe_status`` ``no_handshake``), are not in the supported denominator.
    """
    negotiated = distribution(scan, "ip", "tls_version", _TLS_OK, unit=TLS_IPS,
                              categories=VERSIONS)
    negotiated.insert(0, "measure", "negotiated")
    # no_handshake: versions a server announces in ServerHellos but never completes a
    # handshake with -- no sender can use them, so they are no supported versions
    den = ("versions_supported IS NOT NULL AND probe_status IS DISTINCT FROM "
           f"'{ProbeStatus.NO_HANDSHAKE}'")
    enumerated_unit = "IP addresses with enumerated versions"
    why = scan.not_measured("versions")
    supported = frame([Share.missing(v, enumerated_unit, why) if why else
                       share(scan, "ip", f"list_contains(versions_supported, '{v}')", den,
                             name=v, unit=enumerated_unit) for v in VERSIONS],
                      index="category")
    supported.insert(0, "measure", "supported")
    return pd.concat([negotiated, supported], ignore_index=True)


def versions_measured(scan: Scan) -> int:
    """Addresses whose versions were enumerated (0: the scan ran the starttls profile only)."""
    return int(scan.scalar("SELECT count(*) FROM ip_facts WHERE versions_supported IS NOT NULL"))


def cipher_classes(scan: Scan) -> pd.DataFrame:
    """Security class (NCSC-NL 2025, the registry's) of the negotiated suite and of offers.

    ``negotiated``: per address with a handshake. ``worst offered``: per
    address whose suites were enumerated, the weakest class it accepts.
    """
    negotiated = distribution(scan, "ip", "suite_class", _TLS_OK, unit=TLS_IPS,
                              categories=SECURITY_CLASSES, include_null="unknown suite")
    negotiated.insert(0, "measure", "negotiated")
    worst = ("(SELECT max(list_position(['good','sufficient','phase-out','insufficient'], "
             "s.ncsc_class)) FROM (SELECT unnest(cipher_suites).name AS n) u "
             "JOIN suites s ON s.iana_name = u.n)")
    why = scan.not_measured("cipher_suites")
    if why:
        offered = frame([Share.missing(c, ENUMERATED_SUITES, why) for c in SECURITY_CLASSES],
                        index="category")
    else:
        offered = distribution(
            scan, "ip", f"['good','sufficient','phase-out','insufficient'][{worst}]",
            "cipher_suites IS NOT NULL AND len(cipher_suites) > 0",
            unit=ENUMERATED_SUITES, categories=SECURITY_CLASSES)
    offered.insert(0, "measure", "worst offered")
    return pd.concat([negotiated, offered], ignore_index=True)


def _forward_secrecy(scan: Scan) -> list[Share]:
    """Forward secrecy of what was negotiated, per address and per MX host name."""
    out = [share(scan, "ip", "coalesce(fs, false)", _TLS_OK,
                 name="forward secrecy negotiated", unit=TLS_IPS),
           share(scan, "host", "coalesce(fs, false)", "tls_ok",
                 name="forward secrecy negotiated (every address)", unit=TLS_HOSTS)]
    enumerated = "cipher_suites IS NOT NULL AND len(cipher_suites) > 0"
    fs_any = ("(SELECT bool_or(s.forward_secrecy) FROM (SELECT unnest(cipher_suites).name AS n)"
              " u JOIN suites s ON s.iana_name = u.n)")
    fs_all = fs_any.replace("bool_or", "bool_and")
    why = scan.not_measured("cipher_suites")
    if why:
        return out + [Share.missing("offers a forward-secret suite", ENUMERATED_SUITES, why),
                      Share.missing("offers only forward-secret suites", ENUMERATED_SUITES,
                                    why)]
    out += [share(scan, "ip", f"coalesce({fs_any}, false)", enumerated,
                  name="offers a forward-secret suite", unit=ENUMERATED_SUITES),
            share(scan, "ip", f"coalesce({fs_all}, false)", enumerated,
                  name="offers only forward-secret suites", unit=ENUMERATED_SUITES)]
    return out


def server_preference(scan: Scan) -> pd.DataFrame:
    """Addresses that enforce their own suite order in some version (where it was measured)."""
    return frame([_server_preference(scan)])


def _server_preference(scan: Scan) -> Share:
    name, unit = "server enforces its suite order", "IP addresses with a measured preference"
    why = scan.not_measured("server_preference")
    if why:
        return Share.missing(name, unit, why)
    enforced = ("coalesce((SELECT bool_or(p.enforced) FROM "
                "(SELECT unnest(server_preference) AS p)), false)")
    return share(scan, "ip", enforced,
                 "server_preference IS NOT NULL AND len(server_preference) > 0",
                 name=name, unit=unit)


# -- certificates --------------------------------------------------------------------------

def cert_verdicts(scan: Scan) -> pd.DataFrame:
    """Certificate verdicts (docs/design.md) per MX host name and per domain (primary MX)."""
    hosts = distribution(scan, "host", "cert_status", "tls_ok", unit=TLS_HOSTS,
                         categories=CERT_ORDER[::-1])
    domains = distribution(scan, "domain", "cert_primary",
                           "accepts_mail AND cert_primary IS NOT NULL",
                           unit="domains whose primary MX completed TLS",
                           categories=CERT_ORDER[::-1])
    return pd.concat([hosts, domains], ignore_index=True)


def chain_classes(scan: Scan) -> pd.DataFrame:
    """Self-signed / CA-signed but broken / valid chain, per domain (primary MX with TLS)."""
    return distribution(scan, "domain", "chain_primary",
                        "accepts_mail AND chain_primary IS NOT NULL",
                        unit="domains whose primary MX completed TLS",
                        categories=CHAIN_CLASSES)


def cert_keys(scan: Scan) -> pd.DataFrame:
    """Leaf key type and size, per address with a handshake (e.g. ``RSA 2048``)."""
    return distribution(scan, "ip", "key_type || ' ' || CAST(key_bits AS VARCHAR)",
                        f"{_TLS_OK} AND leaf IS NOT NULL", unit=TLS_IPS)


SELF_SIGNED_ISSUER = "self-signed (issuer names itself)"


def top_issuers(scan: Scan, n: int = 10, *, group_self_signed: bool = True) -> pd.DataFrame:
    """The issuers of leaf certificates, per address with a handshake (top ``n``).

    Self-signed leaves name themselves as issuer: one name per server, which
    would swamp the list with one-off names. They are one group,
    ``SELF_SIGNED_ISSUER`` (``group_self_signed=False`` keeps them apart).
    """
    issuer = (f"CASE WHEN coalesce(leaf_self_signed, false) THEN '{SELF_SIGNED_ISSUER}' "
              "ELSE issuer END") if group_self_signed else "issuer"
    return distribution(scan, "ip", issuer, f"{_TLS_OK} AND leaf IS NOT NULL",
                        unit=TLS_IPS, top=n)


def top_banners(scan: Scan, n: int = 10, width: int = 80) -> pd.DataFrame:
    """The most common greeting lines, per address: what servers say they run.

    The first line, its first ``width`` characters, with the host name after
    the reply code replaced by ``[host]`` so that one software groups
    together. Server-supplied text, counted as data: shown escaped, never
    interpreted.
    """
    line = "split_part(replace(banner, chr(13), ''), chr(10), 1)"
    first = (f"left(regexp_replace({line}, '^([0-9][0-9][0-9][ -])[^ ]+', '\\1[host]'), "
             f"{int(width)})")
    scan.facts()
    greeted = OUTCOMES[:OUTCOMES.index("rate_limited") + 1]   # these sent a greeting
    return distribution(scan, "ip", first, f"outcome IN {_in(greeted)}",
                        unit="IP addresses that sent a greeting", top=n)


# -- MTA-STS and TLSRPT --------------------------------------------------------------------

_VALID_POLICY = "sts_txt_valid AND sts_policy_valid"
# the session failures of an MX that matched the policy (RFC 8460 §4.3.1), validation-failure
# aside (it also means "MX not matched")
_SESSION_FAILURES = (ResultType.STARTTLS_NOT_SUPPORTED, ResultType.CERTIFICATE_HOST_MISMATCH,
                     ResultType.CERTIFICATE_EXPIRED, ResultType.CERTIFICATE_NOT_TRUSTED)
_ACTIVE = f"{_VALID_POLICY} AND sts_mode IN {_in(STS_ACTIVE)}"
# (step, condition, the group the step leaves out of the previous one); each condition
# implies the previous, so every step's count is the previous one's minus its excluded
FUNNEL = (
    ("domains accepting mail", "true", ""),
    ("_mta-sts TXT present", "sts_record", "no _mta-sts TXT record"),
    ("TXT valid", "sts_txt_valid", "TXT invalid, or several records"),
    ("policy fetched", "sts_txt_valid AND sts_fetched", "policy fetch failed"),
    ("policy valid", _VALID_POLICY, "policy invalid"),
    ("mode enforce or testing", _ACTIVE, "mode none"),
    ("a sender would deliver", f"{_ACTIVE} AND sts_deliver",
     "a sender would fail (sts_domain_verdict fail)"),
)


def mta_sts_funnel(scan: Scan) -> pd.DataFrame:
    """From domains accepting mail to a policy under which a sender would deliver.

    The last step is the dataset's own verdict (``sts_domain_verdict`` =
    ``deliver``, what the scanner decided a sender without a cached policy
    would do), so the funnel agrees with the dataset. Each step's share is of
    the domains accepting mail; ``excluded`` counts the domains of the
    previous step that this one leaves out, and ``excluded_as`` names them:
    every step's count is the previous count minus its excluded.
    """
    shares = [share(scan, "domain", cond, "accepts_mail", name=step, unit=MAIL_DOMAINS)
              for step, cond, _ in FUNNEL]
    df = frame(shares, index="step")
    previous = df["count"].shift(1)
    df["of_previous"] = (df["count"] / previous).where(previous > 0).astype(float)
    df["excluded"] = (previous - df["count"]).astype("Int64")
    df["excluded_as"] = [why for _, _, why in FUNNEL]
    last = f"{_ACTIVE} AND sts_fail"
    fails = share(scan, "domain", last, "accepts_mail", name="fail", unit=MAIL_DOMAINS).count
    unexplained = int(df["excluded"].iloc[-1]) - fails
    # domains that accept no mail (MX lookup failed, null MX) may still carry a verdict
    df.attrs["outside"] = int(scan.scalar(
        "SELECT count(*) FROM domain_facts WHERE NOT accepts_mail "
        f"AND sts_verdict IN {_in((StsVerdict.DELIVER, StsVerdict.FAIL))}"))
    if unexplained:      # an active policy without a verdict (an older scan)
        df.loc[df.index[-1], "excluded_as"] = (
            f"a sender would fail ({fails:,}); no verdict recorded ({unexplained:,})")
    return df


def mta_sts_modes(scan: Scan) -> pd.DataFrame:
    """Policy mode among domains with a valid TXT record and a valid policy."""
    return distribution(scan, "domain", "sts_mode", "sts_txt_valid AND sts_policy_valid",
                        unit="domains with a valid MTA-STS policy",
                        categories=tuple(StsMode))


def mta_sts_misconfigurations(scan: Scan) -> pd.DataFrame:
    """What is wrong, per domain with an ``_mta-sts`` record (a domain may have several)."""
    categories = [
        ("TXT record invalid", f"sts_txt_status = '{TxtStatus.INVALID}'"),
        ("several TXT records", f"sts_txt_status = '{TxtStatus.MULTIPLE}'"),
        ("policy fetch failed",
         f"sts_txt_valid AND sts_policy_status = '{PolicyStatus.FETCH_ERROR}'"),
        ("policy invalid", f"sts_txt_valid AND sts_policy_status = '{PolicyStatus.INVALID}'"),
        ("an MX not matched by the policy",
         f"sts_policy_valid AND sts_mode <> '{StsMode.NONE}' AND NOT sts_all_mx_match"),
        ("an MX fails TLS or its certificate",
         (f"sts_policy_valid AND sts_mode <> '{StsMode.NONE}' AND domain IN (SELECT domain "
          f"FROM mx_rows WHERE tlsrpt_result_type IN {_in(_SESSION_FAILURES)} "
          f"OR (tlsrpt_result_type = '{ResultType.VALIDATION_FAILURE}' AND sts_mx_match))")),
        ("misconfigured (any of the above)", "NOT sts_correct"),
        ("a sender would fail to deliver", "sts_fail"),
    ]
    unit = "domains with an MTA-STS record"
    return frame([share(scan, "domain", cond, "sts_record", name=name, unit=unit)
                  for name, cond in categories], index="category")


def mta_sts_policy_errors(scan: Scan) -> pd.DataFrame:
    """The category of each failed or invalid policy fetch (``mta_sts_policy_error``)."""
    return distribution(scan, "domain", "sts_policy_error",
                        "sts_txt_valid AND sts_policy_status IN "
                        f"{_in((PolicyStatus.FETCH_ERROR, PolicyStatus.INVALID))}",
                        unit="domains whose policy fetch failed or was invalid",
                        include_null="unspecified")


TLSRPT_RESULT_TYPES = (
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid")
# the result types only a sender that checks DANE reports (RFC 8460 §4.3.1)
DANE_RESULT_TYPES = ("tlsa-invalid", "dnssec-invalid", "dane-required")


def _measured_type(kind: str, counted: dict[str, tuple[int, int]], sessions: int,
                   domains: int) -> dict:
    """One measured result type's row: its sessions and domains over their denominators."""
    s, d = counted.get(kind, (0, 0))
    return {"result_type": kind, "sessions": s, "of_sessions": sessions,
            "domains": d, "of_domains": domains,
            "share_of_domains": d / domains if domains else float("nan"),
            "not_measured": None}


def tlsrpt_result_types(scan: Scan) -> pd.DataFrame:
    """RFC 8460 result types a sender applying the policy would report.

    MTA-STS types: ``sessions`` are (domain, MX, IP) rows of domains with a
    valid ``_mta-sts`` record; ``domains``: those with at least one row of the
    type. DANE types (``tlsa-invalid``, ``dnssec-invalid``): what a DANE sender
    reports (``mx.dane_result_type``) over the rows where DANE applies (``mx.dane``
    other than ``not_applicable``) and their domains; not measured (never 0)
    when the scan did not validate DNSSEC. ``dane-required`` is a sender's own
    setting (require DANE for a destination), which no scan can observe.
    """
    scan.facts()
    rows = scan.rows("SELECT tlsrpt_result_type, count(*), count(DISTINCT domain) FROM mx_rows "
                     "WHERE tlsrpt_result_type IS NOT NULL GROUP BY ALL")
    counted = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    sessions = int(scan.scalar(
        "SELECT count(*) FROM mx_rows m JOIN domain_facts d USING (domain) "
        "WHERE d.sts_txt_valid"))
    domains = int(scan.scalar("SELECT count(*) FROM domain_facts WHERE sts_txt_valid"))
    dane = scan.not_measured("dane")
    dane_counted: dict[str, tuple[int, int]] = {}
    dane_sessions = dane_domains = 0
    if not dane:
        applies = f"dane IS NOT NULL AND dane <> '{DaneStatus.NOT_APPLICABLE}'"
        dane_counted = {r[0]: (int(r[1]), int(r[2])) for r in scan.rows(
            "SELECT dane_result_type, count(*), count(DISTINCT domain) FROM mx_rows "
            f"WHERE {applies} AND dane_result_type IS NOT NULL GROUP BY ALL")}
        dane_sessions, dane_domains = (int(v) for v in scan.rows(
            f"SELECT count(*), count(DISTINCT domain) FROM mx_rows WHERE {applies}")[0])
    out = []
    for kind in [*TLSRPT_RESULT_TYPES, *sorted(set(counted) - set(TLSRPT_RESULT_TYPES))]:
        if kind in DANE_RESULT_TYPES:
            why = dane or (None if kind != ResultType.DANE_REQUIRED else
                           "not measured: a sender's own setting (require DANE for a "
                           "destination), not observable by a scan")
            if why:
                out.append({"result_type": kind, "sessions": None,
                            "of_sessions": None if dane else dane_sessions,
                            "domains": None, "of_domains": None if dane else dane_domains,
                            "share_of_domains": float("nan"), "not_measured": why})
                continue
            out.append(_measured_type(kind, dane_counted, dane_sessions, dane_domains))
            continue
        out.append(_measured_type(kind, counted, sessions, domains))
    df = pd.DataFrame(out)
    for column in ("sessions", "domains", "of_sessions", "of_domains"):
        df[column] = df[column].astype("Int64")
    return df


# -- DANE (RFC 7672) ----------------------------------------------------------------------

SECURE_MX = "domains accepting mail with a DNSSEC-signed (secure) MX RRset"
DANE_DOMAINS = "domains with usable TLSA on every primary MX"
DANE_ROWS = "(domain, MX, IP) rows with a sender verdict"
DANE_PROTECTION = ("DANE and MTA-STS", "DANE only", "MTA-STS only", "neither")


def _dane(scan: Scan) -> list[Share]:
    """DANE adoption, each step of the one before (facts.py defines the columns)."""
    steps = (
        ("MX RRset DNSSEC-signed (secure)", "mx_secure", "accepts_mail", MAIL_DOMAINS),
        ("usable TLSA on every primary MX", "dane_tlsa", "accepts_mail AND mx_secure",
         SECURE_MX),
        ("TLSA matches on every primary MX (DANE valid)", "dane_valid",
         "accepts_mail AND mx_secure", SECURE_MX),
        ("of those with usable TLSA: TLSA matches", "dane_valid", "dane_tlsa",
         DANE_DOMAINS),
        ("a `3 1 1` record on every primary MX", "dane_311", "dane_tlsa", DANE_DOMAINS),
        ("DANE and an active MTA-STS policy", f"dane_tlsa AND {_ACTIVE}", "accepts_mail",
         MAIL_DOMAINS),
    )
    why = scan.not_measured("dane")
    if why:
        return [Share.missing(name, unit, why) for name, _, _, unit in steps]
    return [share(scan, "domain", num, den, name=name, unit=unit)
            for name, num, den, unit in steps]


def dane(scan: Scan) -> pd.DataFrame:
    """DANE adoption with its denominators: secure MX RRset, usable TLSA, matching TLSA.

    Not measured (never 0) when the scan did not validate DNSSEC or predates DANE.
    """
    return frame(_dane(scan))


def _dane_distribution(scan: Scan, unit_table: str, category: str, denominator: str, *,
                       unit: str, categories: Sequence[str]) -> pd.DataFrame:
    why = scan.not_measured("dane")
    if why:
        return frame([Share.missing(c, unit, why) for c in categories], index="category")
    return distribution(scan, unit_table, category, denominator, unit=unit,
                        categories=categories)


def dane_usages(scan: Scan) -> pd.DataFrame:
    """DANE-EE(3) vs DANE-TA(2) among the domains with usable TLSA on every primary MX."""
    return _dane_distribution(scan, "domain", "dane_usages", "dane_tlsa", unit=DANE_DOMAINS,
                              categories=("DANE-EE", "DANE-TA", "DANE-EE and DANE-TA"))


def dane_and_mta_sts(scan: Scan) -> pd.DataFrame:
    """DANE (usable TLSA on every primary MX) and an active MTA-STS policy, per mail domain."""
    expr = (f"CASE WHEN dane_tlsa AND {_ACTIVE} THEN '{DANE_PROTECTION[0]}' "
            f"WHEN dane_tlsa THEN '{DANE_PROTECTION[1]}' "
            f"WHEN {_ACTIVE} THEN '{DANE_PROTECTION[2]}' ELSE '{DANE_PROTECTION[3]}' END")
    return _dane_distribution(scan, "domain", expr, "accepts_mail", unit=MAIL_DOMAINS,
                              categories=DANE_PROTECTION)


def sender_verdicts(scan: Scan) -> pd.DataFrame:
    """What a sender supporting DANE and MTA-STS does, per (domain, MX, IP) (``mx.sender``)."""
    return _dane_distribution(scan, "row", "sender", "sender IS NOT NULL", unit=DANE_ROWS,
                              categories=tuple(SenderVerdict))


def dane_statuses(scan: Scan) -> pd.DataFrame:
    """``mx.dane`` per (domain, MX, IP) row with a verdict (DaneStatus)."""
    return _dane_distribution(scan, "row", "dane", "dane IS NOT NULL",
                              unit="(domain, MX, IP) rows with a DANE verdict",
                              categories=tuple(DaneStatus))


def _tlsrpt(scan: Scan) -> list[Share]:
    """TLSRPT adoption among domains accepting mail."""
    return [share(scan, "domain", "tlsrpt_record", "accepts_mail",
                  name="_smtp._tls TXT present", unit=MAIL_DOMAINS),
            share(scan, "domain", "tlsrpt_valid", "accepts_mail",
                  name="valid TLSRPT record", unit=MAIL_DOMAINS),
            share(scan, "domain", "tlsrpt_valid", "accepts_mail AND sts_policy_valid",
                  name="valid TLSRPT record (with a valid MTA-STS policy)",
                  unit="domains accepting mail with a valid MTA-STS policy")]


def tlsrpt_schemes(scan: Scan) -> pd.DataFrame:
    """Report URI schemes per domain with a valid TLSRPT record: mailto, https or both."""
    def has(prefix: str) -> str:
        return (f"coalesce((SELECT bool_or(lower(u) LIKE '{prefix}%') "
                f"FROM (SELECT unnest(tlsrpt_rua) AS u)), false)")

    scheme = (f"CASE WHEN {has('mailto:')} AND {has('https:')} THEN 'both' "
              f"WHEN {has('mailto:')} THEN 'mailto' WHEN {has('https:')} THEN 'https' "
              "ELSE 'other' END")
    return distribution(scan, "domain", scheme, "tlsrpt_valid",
                        unit="domains with a valid TLSRPT record",
                        categories=("mailto", "https", "both", "other"))


# -- overview ----------------------------------------------------------------------------------

def denominators(scan: Scan) -> pd.DataFrame:
    """The populations every share is of, as exact counts."""
    scan.facts()
    q = {
        DOMAINS: "SELECT count(*) FROM domain_facts",
        "domains whose MX lookup failed": "SELECT count(*) FROM domain_facts WHERE dns_status "
                                          f"NOT IN {_in((DnsStatus.OK, DnsStatus.NO_DATA))}",
        MAIL_DOMAINS: "SELECT count(*) FROM domain_facts WHERE accepts_mail",
        "domains with a null MX (no mail)": "SELECT count(*) FROM domain_facts "
                                            f"WHERE mx_kind = '{MxKind.NULL_MX}'",
        MX_HOSTS: "SELECT count(*) FROM host_facts",
        EHLO_HOSTS: f"SELECT count(*) FROM host_facts WHERE outcome IN {_in(EHLO_ANSWERED)}",
        IPS: "SELECT count(*) FROM ip_facts",
        EHLO_IPS: f"SELECT count(*) FROM ip_facts WHERE outcome IN {_in(EHLO_ANSWERED)}",
        TLS_IPS: f"SELECT count(*) FROM ip_facts WHERE status = '{HostStatus.OK}'",
        "distinct certificates": "SELECT count(*) FROM certs_dedup",
    }
    return pd.DataFrame([{"population": k, "count": int(scan.scalar(v))} for k, v in q.items()])


def headline(scan: Scan) -> pd.DataFrame:
    """A handful of numbers for the first page."""
    d = _starttls_domains(scan)
    fs = _forward_secrecy(scan)
    return frame([
        d[0], d[3], *_starttls_hosts(scan), *_starttls_ips(scan), fs[0],
        share(scan, "host", f"cert_status = '{CertStatus.VALID}'", "tls_ok",
              name="valid certificate", unit=TLS_HOSTS),
        share(scan, "domain", "sts_txt_valid AND sts_policy_valid", "accepts_mail",
              name="valid MTA-STS policy", unit=MAIL_DOMAINS),
        share(scan, "domain", "tlsrpt_valid", "accepts_mail", name="valid TLSRPT record",
              unit=MAIL_DOMAINS),
    ])


# -- the public shares: every one a shares table (shares.COLUMNS) -----------------------------

def starttls_domains(scan: Scan) -> pd.DataFrame:
    """STARTTLS offered / working on any MX, all MX, the primary MX (domains accepting mail)."""
    return frame(_starttls_domains(scan))


def starttls_hosts(scan: Scan) -> pd.DataFrame:
    """STARTTLS offered / working per MX host name (any of its addresses)."""
    return frame(_starttls_hosts(scan))


def starttls_ips(scan: Scan) -> pd.DataFrame:
    """STARTTLS offered / working per server address that was scanned."""
    return frame(_starttls_ips(scan))


def forward_secrecy(scan: Scan) -> pd.DataFrame:
    """Forward secrecy negotiated (per address, per MX host name) and offered (ciphers)."""
    return frame(_forward_secrecy(scan))


def tlsrpt(scan: Scan) -> pd.DataFrame:
    """TLSRPT adoption among domains accepting mail (and among those with an MTA-STS policy)."""
    return frame(_tlsrpt(scan))
