"""A domain-level share split by rank bucket, TLD or mail provider.

Top lists over-estimate adoption compared with the general population, often
by an order of magnitude (Scheitle et al., IMC 2018): a rank breakdown shows
how much. Rank buckets are cumulative (``top 10k`` includes ``top 1k``), as
papers report them, up to the list's length (``rank_buckets``); ``all ranked``
and ``unranked`` follow. Providers are the
largest ``top`` by domain count; ``self-hosted`` and ``other`` collect the rest.
"""

from __future__ import annotations

import pandas as pd

from survey.analysis.facts import RANK_BUCKETS
from survey.analysis.load import Scan
from survey.analysis.metrics import MAIL_DOMAINS
from survey.analysis.providers import NO_MX, SELF_HOSTED
from survey.analysis.shares import BOOTSTRAP, CENSUS, Share, cluster_bootstrap, frame

DIMENSIONS = ("rank", "tld", "provider")


def rank_buckets(largest_rank: int | None) -> tuple[tuple[str, int], ...]:
    """The cumulative buckets worth showing for a list whose largest rank is given.

    A bucket at least as large as the list holds every ranked domain: it is
    ``all ranked`` again, so it is left out (a 2,000-domain list has
    ``top 1k`` and ``all ranked``, not four identical buckets).
    """
    if largest_rank is None:
        return ()
    return tuple((label, limit) for label, limit in RANK_BUCKETS if limit < largest_rank)


def _groups_sql(by: str, top: int, min_domains: int = 1,
                buckets: tuple[tuple[str, int], ...] = RANK_BUCKETS) -> str:
    """SQL yielding (grp, cluster, domain facts...) rows; a domain may be in several groups."""
    if by == "rank":
        parts = [f"SELECT '{label}' AS grp, {i} AS ord, * FROM domain_facts WHERE rank <= {limit}"
                 for i, (label, limit) in enumerate(buckets)]
        parts.append(f"SELECT 'all ranked' AS grp, {len(RANK_BUCKETS)} AS ord, * "
                     "FROM domain_facts WHERE rank IS NOT NULL")
        parts.append(f"SELECT 'unranked' AS grp, {len(RANK_BUCKETS) + 1} AS ord, * "
                     "FROM domain_facts WHERE rank IS NULL")
        return " UNION ALL ".join(parts)
    if by == "tld":
        return ("SELECT tld AS grp, 0 AS ord, * FROM domain_facts")
    if by == "provider":
        keep = (f"SELECT provider FROM domain_facts WHERE provider NOT IN "
                f"('{SELF_HOSTED}', '{NO_MX}') GROUP BY provider "
                f"HAVING count(*) >= {int(min_domains)} "
                f"ORDER BY count(*) DESC, provider LIMIT {int(top)}")
        return (f"SELECT CASE WHEN provider IN ({keep}) THEN provider "
                f"WHEN provider IN ('{SELF_HOSTED}', '{NO_MX}') THEN provider "
                f"ELSE 'other' END AS grp, 0 AS ord, * FROM domain_facts")
    raise ValueError(f"unknown breakdown {by!r}; one of {', '.join(DIMENSIONS)}")


def breakdown(scan: Scan, numerator: str, denominator: str = "accepts_mail", *, by: str,
              name: str = "", unit: str = MAIL_DOMAINS, top: int = 10,
              min_domains: int = 1, min_total: int = 1) -> pd.DataFrame:
    """The share ``numerator`` of ``denominator`` (SQL over ``domain_facts``) per group.

    Providers: the ``top`` largest with at least ``min_domains`` domains each;
    the others are ``other``. Groups with fewer than ``min_total`` domains in
    the denominator are left out. Samples get a cluster bootstrap per group.
    """
    scan.facts()
    buckets = rank_buckets(scan.scalar("SELECT max(rank) FROM domain_facts")) \
        if by == "rank" else RANK_BUCKETS
    source = _groups_sql(by, top, min_domains, buckets)
    name = name or getattr(numerator, "name", "")
    # per group: distinct (k, n) pairs of its clusters, with multiplicities (shares.py)
    rows = scan.df(
        f"SELECT grp, min(ord) AS ord, k, n, count(*) AS m FROM ("
        f"SELECT grp, min(ord) AS ord, cluster, "
        f"count(*) FILTER (WHERE ({denominator}) AND ({numerator})) AS k, "
        f"count(*) FILTER (WHERE {denominator}) AS n FROM ({source}) GROUP BY grp, cluster"
        f") GROUP BY grp, k, n")
    shares = []
    order = []
    for grp, part in rows.groupby("grp", sort=False):
        n = int((part["n"] * part["m"]).sum())
        if n < min_total:
            continue
        k = int((part["k"] * part["m"]).sum())
        low = high = None
        if scan.is_sample:
            interval = cluster_bootstrap(part["k"], part["n"], part["m"],
                                         replicates=scan.replicates, seed=scan.seed)
            low, high = interval if interval else (None, None)
        shares.append(Share(str(grp), k, n, unit, low, high,
                            interval=BOOTSTRAP if scan.is_sample else CENSUS))
        order.append((int(part["ord"].min()), -n, str(grp)))
    ranked = [s for _, s in sorted(zip(order, shares), key=lambda t: t[0])]
    df = frame(ranked, index=by)
    df.attrs["metric"] = name
    return df
