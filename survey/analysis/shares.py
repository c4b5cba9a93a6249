"""Shares with explicit denominators, and intervals where the data is a sample.

Every number the analysis reports is a ``Share``: an exact count, an exact
denominator and the unit the denominator counts (domains that accept mail,
MX host names, IP addresses...). A scan of a whole list is a census of that
list: its shares are exact and carry no interval. A scan of part of a list
(``--limit``, ``--shard``, a random subset) is a sample, and then a share
gets a 95% interval.

Theory of operation: the cluster bootstrap
------------------------------------------
Domains are not independent draws: a provider's customers share its servers,
so one provider's configuration moves thousands of domains at once, and an
interval that treats domains as independent is far too narrow. The bootstrap
therefore resamples *clusters* (providers; a self-hosted domain is its own
cluster) with replacement, sums numerators and denominators over the drawn
clusters, and takes the 2.5 and 97.5 percentiles of the ratio.

A census of millions of domains has millions of clusters, but few distinct
(numerator, denominator) pairs: most self-hosted clusters are (0, 1) or
(1, 1). Resampling C clusters with replacement is the same as a multinomial
draw of C over the distinct pairs with probabilities proportional to their
multiplicities, so each replicate costs the number of distinct pairs, not C.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

DEFAULT_REPLICATES = 1000
CONFIDENCE = 0.95


CENSUS = "census: no interval"
BOOTSTRAP = "95% cluster bootstrap over providers"
COLUMNS = ("metric", "count", "total", "share", "low", "high", "unit", "interval",
           "not_measured")


@dataclass(frozen=True)
class Share:
    """``count`` of ``total`` ``unit`` (e.g. 760 of 1,000 MX host names).

    The one type every share of the analysis is: ``frame`` turns a list of
    them into the one table shape (``COLUMNS``). Fields:

      * ``low``/``high``: the interval (fractions), only for a sample;
        ``interval`` names how it was made (``BOOTSTRAP``), or says the scan
        is a census (``CENSUS``: a whole list has no sampling error);
      * ``not_measured``: why the scan cannot say (the profile, a column the
        scan predates, a check survey does not make), or None. A share that
        was not measured is not a zero: its ``value`` is NaN and tables and
        charts say "not measured" with the reason.
    """

    name: str
    count: int
    total: int
    unit: str
    low: float | None = None      # interval bounds (fractions), only for samples
    high: float | None = None
    clusters: int | None = None   # clusters behind the interval
    interval: str | None = None   # CENSUS, BOOTSTRAP, or None (not stated)
    not_measured: str | None = None

    @classmethod
    def missing(cls, name: str, unit: str, reason: str) -> Share:
        """A share the scan did not measure, with the reason."""
        return cls(name, 0, 0, unit, not_measured=reason)

    @property
    def measured(self) -> bool:
        return self.not_measured is None

    @property
    def value(self) -> float:
        return self.count / self.total if self.total and self.measured else math.nan

    @property
    def percent(self) -> float:
        return 100 * self.value

    def __str__(self) -> str:
        if not self.measured:
            return f"{self.name}: {self.not_measured}"
        if not self.total:
            return f"{self.name}: no {self.unit}"
        text = f"{self.name}: {self.percent:.1f}% ({self.count:,} of {self.total:,} {self.unit})"
        if self.low is not None and self.high is not None:
            text += f" [95% CI {100 * self.low:.1f}-{100 * self.high:.1f}%]"
        return text

    def as_row(self) -> dict:
        return {"metric": self.name,
                "count": self.count if self.measured else None,
                "total": self.total if self.measured else None,
                "share": self.value, "low": self.low, "high": self.high, "unit": self.unit,
                "interval": None if not self.measured else self.interval,
                "not_measured": self.not_measured}


def frame(shares: Iterable[Share] | pd.DataFrame, *, index: str = "metric") -> pd.DataFrame:
    """Shares as the one shares table (``COLUMNS``; ``index`` renames ``metric``).

    ``count`` and ``total`` are nullable integers: empty for a share that was
    not measured, never a zero standing in for "unknown".
    """
    if isinstance(shares, pd.DataFrame):       # a shares table already
        return shares if index == "metric" else shares.rename(columns={"metric": index})
    rows = [s.as_row() for s in shares]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("count", "total"):
        df[column] = df[column].astype("Int64")
    df["share"] = df["share"].astype(float)
    if index != "metric":
        df = df.rename(columns={"metric": index})
    return df


def shares_of(df: pd.DataFrame) -> list[Share]:
    """A shares table back into ``Share`` values (the first column is the name)."""
    name = df.columns[0] if df.columns[0] not in COLUMNS[1:] else "metric"
    out = []
    for row in df.to_dict("records"):
        reason = row.get("not_measured")
        reason = None if reason is None or (isinstance(reason, float) and math.isnan(reason)) \
            else str(reason)

        def opt(v: object) -> float | None:
            return None if v is None or pd.isna(v) else float(v)   # type: ignore[arg-type]

        count, total = row.get("count"), row.get("total")
        out.append(Share(str(row[name]), 0 if pd.isna(count) else int(count),
                         0 if pd.isna(total) else int(total), str(row.get("unit") or ""),
                         opt(row.get("low")), opt(row.get("high")),
                         interval=row.get("interval") or None, not_measured=reason))
    return out


def cluster_bootstrap(numerators: ArrayLike, denominators: ArrayLike,
                      weights: ArrayLike | None = None, *,
                      replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                      confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile interval of sum(num)/sum(den) resampling clusters with replacement.

    One entry per cluster, or per distinct (numerator, denominator) pair with
    ``weights`` saying how many clusters have it (what SQL hands over: see
    ``compressed``). None when there is nothing to resample (no cluster with
    a positive denominator).
    """
    num = np.asarray(numerators, dtype=np.int64)
    den = np.asarray(denominators, dtype=np.int64)
    mult = np.ones_like(num) if weights is None else np.asarray(weights, dtype=np.int64)
    if num.shape != den.shape or num.shape != mult.shape:
        raise ValueError("numerators, denominators and weights differ in length")
    keep = mult > 0
    num, den, mult = num[keep], den[keep], mult[keep]
    if num.size == 0 or den.sum() == 0:
        return None
    pairs, inverse = np.unique(np.stack([num, den], axis=1), axis=0, return_inverse=True)
    multiplicity = np.bincount(inverse.ravel(), weights=mult).astype(np.int64)
    clusters = int(multiplicity.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(clusters, multiplicity / clusters, size=replicates)
    sum_num = draws @ pairs[:, 0]
    sum_den = draws @ pairs[:, 1]
    keep = sum_den > 0
    if not keep.any():
        return None
    ratios = sum_num[keep] / sum_den[keep]
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return float(low), float(high)


def wilson(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for independent draws (no clustering)."""
    if total <= 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = count / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)
