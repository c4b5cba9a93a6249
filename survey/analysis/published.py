"""Published figures as data, and the same definitions computed on a scan, side by side.

``data/published_figures.csv`` holds one row per published number: source,
citation, date, population, metric, value (a fraction, or a count when
``kind`` is ``count``), the text as published, the unit it counts, a
``status`` and our ``definition``:

  * ``computable``: the function registered under the row's id computes it on
    any scan with that definition;
  * ``definition unclear``: computable with the reading stated in
    ``definition``; the source leaves room;
  * ``volume``: a share of messages, which a domain scan cannot compute;
  * ``not computable yet``: needs data the scanner does not collect (yet)
    (DMARC records; TLSA records in zones a DANE sender never asks).

DANE figures are not measured (never 0) on a scan without DNSSEC validation
(``measured.py``): their share says so, with the reason.

On a real scan the comparison is a reproduction (same definitions, different
list and year: discuss the differences). On a testbed world calibrated to
these figures (the ``published`` profile) it checks that the pipeline
measures what the world contains.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

import pandas as pd

from survey.analysis.facts import EHLO_ANSWERED, STS_ACTIVE
from survey.analysis.load import Scan
from survey.analysis.metrics import (
    DOMAINS,
    EHLO_HOSTS,
    EHLO_IPS,
    MAIL_DOMAINS,
    SECURE_MX,
    TLS_HOSTS,
    TLS_IPS,
    share,
)
from survey.analysis.shares import Share
from survey.vocabulary import Calibration, CertStatus, DaneStatus, HostStatus, StsMode

STATUSES = ("computable", "definition unclear", "volume", "not computable yet")
_EHLO = "(" + ", ".join(f"'{o}'" for o in EHLO_ANSWERED) + ")"
_ACTIVE = "(" + ", ".join(f"'{m}'" for m in STS_ACTIVE) + ")"
CLAIMING_TLS = "domains whose primary MX completed TLS"
STS_RECORDS = "domains with an MTA-STS record"
STS_POLICIES = "domains with a valid MTA-STS policy"


@lru_cache(maxsize=1)
def _figures_text() -> str:
    return resources.files("survey.analysis").joinpath(
        "data/published_figures.csv").read_text("utf-8")


def figures() -> pd.DataFrame:
    """Every published figure (a fresh copy)."""
    rows = list(csv.DictReader(io.StringIO(_figures_text())))
    df = pd.DataFrame(rows)
    df["value"] = df["value"].astype(float)
    return df


# -- one function per computable figure -------------------------------------------------------

def _postini(chain: str, name: str) -> Callable[[Scan], Share]:
    def measure(scan: Scan) -> Share:
        return share(scan, "domain", f"chain_primary = '{chain}'",
                     "accepts_mail AND chain_primary IS NOT NULL", name=name,
                     unit=CLAIMING_TLS)
    return measure


def _uriports(scan: Scan) -> Share:
    return share(scan, "domain", "sts_txt_valid AND sts_policy_valid",
                 name="valid MTA-STS policy", unit=DOMAINS)


def _dane(numerator: str, denominator: str, *, name: str,
          unit: str) -> Callable[[Scan], Share]:
    """A DANE figure: not measured (with the reason) when the scan has no DANE verdicts."""
    def measure(scan: Scan) -> Share:
        why = scan.not_measured("dane")
        if why:
            return Share.missing(name, unit, why)
        return share(scan, "domain", numerator, denominator, name=name, unit=unit)
    return measure


_DUKHOVNI = _dane("dane_valid", "accepts_mail AND mx_secure",
                  name="matching TLSA at every primary MX", unit=SECURE_MX)
_SOME_USABLE = "domain IN (SELECT domain FROM mx_rows WHERE tlsa_usable)"


MEASURES: dict[str, Callable[[Scan], Share]] = {
    "dukhovni2023-tlsa": _DUKHOVNI,
    "dukhovni2020-tlsa": _DUKHOVNI,
    "lee2020-tlsa-inconsistent": _dane(
        f"domain IN (SELECT domain FROM mx_rows WHERE dane = '{DaneStatus.NO_MATCH}')",
        f"accepts_mail AND mx_secure AND {_SOME_USABLE}",
        name="TLSA matches nothing on some MX",
        unit="domains with a secure MX RRset and usable TLSA on some MX"),
    "forumstandaardisatie2019-dane": _dane("dane_valid", "accepts_mail",
                                           name="DANE valid on every primary MX",
                                           unit=MAIL_DOMAINS),
    "zivver2025-dane": _dane("dane_tlsa", "accepts_mail",
                             name="usable TLSA on every primary MX", unit=MAIL_DOMAINS),
    "zivver2025-mta-sts": lambda scan: share(
        scan, "domain", f"sts_txt_valid AND sts_policy_valid AND sts_mode IN {_ACTIVE}",
        "accepts_mail", name="MTA-STS active", unit=MAIL_DOMAINS),
    "durumeric2015-encryption": lambda scan: share(
        scan, "ip", f"status = '{HostStatus.OK}'", f"outcome IN {_EHLO}",
        name="STARTTLS handshake completed", unit=EHLO_IPS),
    "facebook2014-starttls": lambda scan: share(
        scan, "host", "offered", f"outcome IN {_EHLO}", name="STARTTLS offered",
        unit=EHLO_HOSTS),
    "facebook2014-cert-valid": lambda scan: share(
        scan, "host", f"cert_status = '{CertStatus.VALID}'", "tls_ok", name="certificate valid",
        unit=TLS_HOSTS),
    "facebook2014-pfs": lambda scan: share(
        scan, "host", "coalesce(fs, false)", "tls_ok", name="forward secrecy",
        unit=TLS_HOSTS),
    "mailchannels2015-starttls": lambda scan: share(
        scan, "ip", "coalesce(starttls_offered, false)", f"outcome IN {_EHLO}",
        name="STARTTLS advertised", unit=EHLO_IPS),
    "postini2008-self-signed": _postini("self_signed", "self-signed"),
    "postini2008-broken": _postini("broken", "CA-signed but broken"),
    "postini2008-valid": _postini("valid_chain", "valid chain"),
    "postini2008-valid-name-mismatch": lambda scan: share(
        scan, "domain", f"cert_primary = '{CertStatus.NAME_MISMATCH}'",
        "accepts_mail AND chain_primary = 'valid_chain'", name="name does not match",
        unit="domains with a valid chain"),
    "mayer2016-self-signed": lambda scan: share(
        scan, "ip", "coalesce(leaf_self_signed, false)",
        f"status = '{HostStatus.OK}' AND leaf IS NOT NULL",
        name="self-signed leaf", unit=TLS_IPS),
    "tatang2021-active": lambda scan: share(
        scan, "domain", f"sts_txt_valid AND sts_policy_valid AND sts_mode IN {_ACTIVE}",
        name="MTA-STS active", unit=DOMAINS),
    "ashiq2025-records": lambda scan: share(
        scan, "domain", "sts_record", name="MTA-STS record", unit=DOMAINS),
    "ashiq2025-incorrect": lambda scan: share(
        scan, "domain", "NOT sts_correct", "sts_record", name="incorrectly configured",
        unit=STS_RECORDS),
    "ashiq2025-failures": lambda scan: share(
        scan, "domain", "sts_fail", "sts_record", name="delivery would fail",
        unit=STS_RECORDS),
    "uriports2024-policy": _uriports,
    "uriports2025-policy": _uriports,
    "uriports2026-policy": _uriports,
    "uriports2026-testing": lambda scan: share(
        scan, "domain", f"sts_mode = '{StsMode.TESTING}'", "sts_txt_valid AND sts_policy_valid",
        name="mode testing", unit=STS_POLICIES),
}


def measure(scan: Scan, figure_id: str) -> Share | None:
    """The figure's metric computed on ``scan`` (None when it cannot be computed)."""
    fn = MEASURES.get(figure_id)
    return fn(scan) if fn else None


CALIBRATED = str(Calibration.CALIBRATED)
NOT_CALIBRATED = str(Calibration.NOT_CALIBRATED)
UNCLEAR = str(Calibration.UNCLEAR)


def calibrated_figures(profile: str = "published") -> dict[str, str]:
    """The figures a testbed profile is built to hold exactly: id -> the quota's note."""
    from survey.testbed.generator import ProfileError, load_profile
    from survey.testbed.quotas import quotas

    try:
        return {q["figure"]: q["note"] for q in quotas(load_profile(profile))}
    except (ProfileError, OSError, KeyError):
        return {}


def calibration(scan: Scan) -> dict[str, str] | None:
    """Each computable figure's calibration on a testbed scan (None: not a testbed scan).

    ``calibrated``: the world's profile states the figure as an exact quota,
    so the scan must equal it (tests/test_analysis_published.py checks that);
    ``definition unclear``: not calibrated, and the source leaves the
    definition open; ``not calibrated``: the profile cannot hold it as well,
    because published figures contradict each other (e.g. 76% of MX host
    names offer STARTTLS, yet 35% of servers configure encryption).
    """
    world = scan.manifest.get("world") or {}
    if not world:
        return None
    profile = str(world.get("profile") or "")
    quota = calibrated_figures(profile) if profile else {}
    out = {}
    for row in figures().to_dict("records"):
        if row["id"] not in MEASURES:
            continue
        out[row["id"]] = CALIBRATED if row["id"] in quota else \
            UNCLEAR if row["status"] == "definition unclear" else NOT_CALIBRATED
    return out


def side_by_side(scan: Scan) -> pd.DataFrame:
    """Every published figure next to the same metric on ``scan``.

    Columns: the figure's (id, source, date, population, metric, published,
    published_value, kind, status, definition, citation) and the scan's
    (measured, count, total, unit, low, high, not_measured, calibration).
    ``measured`` is a fraction, or the count for ``kind == count``; empty when
    not computable, or not measured (``not_measured`` says why: a DANE figure
    on a scan without DNSSEC validation).
    ``calibration`` (testbed scans only, ``calibration``): calibrated, not
    calibrated, or definition unclear.
    """
    out = []
    marks = calibration(scan)
    for row in figures().to_dict("records"):
        result = measure(scan, row["id"])
        entry = {"id": row["id"], "source": row["source"], "date": row["date"],
                 "population": row["population"], "metric": row["metric"],
                 "published": row["value_text"], "published_value": row["value"],
                 "kind": row["kind"], "status": row["status"],
                 "definition": row["definition"], "citation": row["citation"],
                 "measured": None, "count": None, "total": None, "unit": None,
                 "low": None, "high": None, "not_measured": None,
                 "calibration": (marks or {}).get(row["id"]) if marks is not None else None}
        if result is not None:
            entry.update(measured=result.count if row["kind"] == "count" else result.value,
                         count=result.count, total=result.total, unit=result.unit,
                         low=result.low, high=result.high,
                         not_measured=result.not_measured)
        out.append(entry)
    return pd.DataFrame(out)


def _measured_text(row: dict) -> str:
    if row.get("not_measured"):
        return str(row["not_measured"])
    if row["measured"] is None or pd.isna(row["measured"]):
        return row["status"]
    if row["kind"] == "count":
        if not row["total"]:
            return f"{int(row['count']):,}"
        share = 100 * row["count"] / row["total"]
        return f"{int(row['count']):,} ({share:.3g}% of {int(row['total']):,})"
    pct = 100 * row["measured"]
    text = f"{pct:.3g}% ({int(row['count']):,}/{int(row['total']):,})"
    if row["low"] is not None and not pd.isna(row["low"]):
        text += f" [{100 * row['low']:.3g}-{100 * row['high']:.3g}%]"
    return text


def table(side: pd.DataFrame) -> pd.DataFrame:
    """``side_by_side`` as text columns for reading: published next to measured."""
    rows = []
    for row in side.to_dict("records"):
        entry = {"source": row["source"], "date": row["date"], "metric": row["metric"],
                 "published": row["published"], "population": row["population"],
                 "this scan": _measured_text(row), "of": row["unit"] or "",
                 "status": row["status"]}
        if side["calibration"].notna().any():
            entry["testbed"] = row["calibration"] or ""
        rows.append(entry)
    return pd.DataFrame(rows)


def definitions(side: pd.DataFrame) -> pd.DataFrame:
    """Each figure's definition as computed here (and why a definition is unclear)."""
    return side[["source", "metric", "status", "definition"]].reset_index(drop=True)


def not_computable(scan: Scan | None = None) -> pd.DataFrame:
    """The figures a domain scan cannot compute (yet), with the reason."""
    df = figures()
    return df[df["status"].isin(["volume", "not computable yet"])][
        ["id", "source", "metric", "value_text", "status", "definition"]].reset_index(drop=True)
