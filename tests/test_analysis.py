"""survey.analysis on a hand-built dataset: every number worked out by hand.

The fixture (tests/test_analysis_fixture.py) has 8 domains:
  a.example  rank 1     MX mx1.a (10, TLS 1.3, valid) + mx2.a (20, no STARTTLS);
                        MTA-STS enforce, TLSRPT mailto
  b.example  rank 500   MX mx.bigprov.net (TLS 1.2, valid); MTA-STS mode none
  c.example  rank 5000  MX mx.bigprov.net (same address); MTA-STS TXT invalid, TLSRPT invalid
  d.example  rank 50k   implicit MX, rate-limited
  e.example  unranked   null MX; TLSRPT https
  f.example  rank 2M    MX lookup SERVFAIL; MTA-STS TXT valid, policy fetch error
  g.org      rank 20    MX aspmx.l.google.com (1, TLS 1.2 RSA kx, name mismatch) +
                        alt.nohost.g.org (5, NXDOMAIN); MTA-STS testing *.google.com;
                        TLSRPT mailto + https
  h.example  rank 3     MX mx.h (10, handshake fails) + mx2.h (10, TLS 1.0, self-signed);
                        MTA-STS enforce (delivery fails)
Accepting mail: a, b, c, d, g, h (6). MX host names: 8. Addresses: 7.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey import analysis as sa
from survey.analysis import metrics as m
from survey.analysis.display import TABLE_MIME
from survey.analysis.providers import ProviderMap, registrable_domain
from tests.test_analysis_fixture import HOSTILE_ISSUER, scan_a, write_fixture, write_scan


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    return write_fixture(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="module")
def a(scans):
    return sa.load(scans[0])


@pytest.fixture(scope="module")
def b(scans):
    return sa.load(scans[1])


def counts(df: pd.DataFrame, key: str = "category") -> dict:
    return {r[key]: (int(r["count"]), int(r["total"])) for r in df.to_dict("records")}


def share_counts(shares) -> dict:
    if isinstance(shares, pd.DataFrame):          # the metrics' one return type
        shares = sa.shares_of(shares)
    return {s.name: (s.count, s.total) for s in shares}


# -- denominators and STARTTLS -----------------------------------------------------------------

def test_denominators(a):
    pops = dict(zip(*m.denominators(a)[["population", "count"]].T.values))
    assert pops[m.DOMAINS] == 8
    assert pops[m.MAIL_DOMAINS] == 6            # a b c d g h (e null MX, f SERVFAIL)
    assert pops["domains whose MX lookup failed"] == 1       # f
    assert pops["domains with a null MX (no mail)"] == 1     # e
    assert pops[m.MX_HOSTS] == 8
    assert pops[m.EHLO_HOSTS] == 6              # all but d.example (rate-limited), alt (no address)
    assert pops[m.IPS] == 7
    assert pops[m.EHLO_IPS] == 6                # all but the rate-limited one
    assert pops[m.TLS_IPS] == 4
    assert pops["distinct certificates"] == 5


def test_starttls_per_domain_any_all_primary(a):
    got = share_counts(m.starttls_domains(a))
    # offered: any = a b c g h; all = b c h (a: mx2 no; g: alt has no address; d: rate-limited);
    # primary = a (mx1) b c g (aspmx) h (both pref 10 offer)
    assert got["STARTTLS offered, any MX"] == (5, 6)
    assert got["STARTTLS offered, all MX"] == (3, 6)
    assert got["STARTTLS offered, primary MX"] == (5, 6)
    # working: any = a b c g h (h: mx2 works); all = b c; primary = a b c g (h: mx.h fails)
    assert got["STARTTLS working, any MX"] == (5, 6)
    assert got["STARTTLS working, all MX"] == (2, 6)
    assert got["STARTTLS working, primary MX"] == (4, 6)
    assert m.starttls_domains(a)["low"].isna().all(), "a census has no interval"
    assert set(m.starttls_domains(a)["interval"]) == {sa.shares.CENSUS}


def test_starttls_per_host_name_and_address(a):
    hosts = share_counts(m.starttls_hosts(a))
    assert hosts["STARTTLS offered"] == (5, 8)   # mx1.a bigprov aspmx mx.h mx2.h
    assert hosts["STARTTLS working"] == (4, 8)   # mx1.a bigprov aspmx mx2.h
    ips = share_counts(m.starttls_ips(a))
    assert ips["STARTTLS offered"] == (5, 7)
    assert ips["STARTTLS working"] == (4, 7)


def test_rate_limited_and_unreachable_are_not_no_starttls(a):
    df = m.outcomes(a)
    by_unit = {u: counts(part) for u, part in df.groupby("unit")}
    assert by_unit[m.MAIL_DOMAINS]["starttls_ok"] == (5, 6)
    assert by_unit[m.MAIL_DOMAINS]["rate_limited"] == (1, 6)     # d
    assert by_unit[m.MAIL_DOMAINS]["no_starttls"] == (0, 6)
    hosts = by_unit[m.MX_HOSTS]
    assert hosts["starttls_ok"] == (4, 8) and hosts["starttls_failed"] == (1, 8)
    assert hosts["no_starttls"] == (1, 8) and hosts["rate_limited"] == (1, 8)
    assert hosts["no_address"] == (1, 8)
    ips = by_unit[m.IPS]
    assert ips["starttls_ok"] == (4, 7) and ips["rate_limited"] == (1, 7)
    assert ips["no_starttls"] == (1, 7) and ips["no_address"] == (0, 7)


# -- TLS ---------------------------------------------------------------------------------------

def test_tls_versions_negotiated_and_supported(a):
    df = m.tls_versions(a)
    neg = counts(df[df["measure"] == "negotiated"])
    assert neg["TLSv1.3"] == (1, 4) and neg["TLSv1.2"] == (2, 4) and neg["TLSv1.0"] == (1, 4)
    assert neg["SSLv3"] == (0, 4)
    sup = counts(df[df["measure"] == "supported"])
    # enumerated on two addresses only: .1 (1.2, 1.3) and bigprov (1.0, 1.1, 1.2)
    assert sup["TLSv1.2"] == (2, 2) and sup["TLSv1.3"] == (1, 2) and sup["TLSv1.0"] == (1, 2)
    assert m.versions_measured(a) == 2


def test_cipher_classes_and_forward_secrecy(a):
    df = m.cipher_classes(a)
    neg = counts(df[df["measure"] == "negotiated"])
    # TLS_AES_256_GCM_SHA384 good; ECDHE-RSA-AES128-GCM sufficient; RSA-AES128-SHA and
    # ECDHE-RSA-AES128-SHA (SHA-1 CBC) insufficient (NCSC-NL 2025)
    assert neg["good"] == (1, 4) and neg["sufficient"] == (1, 4)
    assert neg["insufficient"] == (2, 4)
    worst = counts(df[df["measure"] == "worst offered"])
    assert worst["sufficient"] == (1, 2) and worst["insufficient"] == (1, 2)
    fs = share_counts(m.forward_secrecy(a))
    assert fs["forward secrecy negotiated"] == (3, 4)           # all but .9 (RSA kx)
    assert fs["forward secrecy negotiated (every address)"] == (3, 4)  # aspmx has none
    assert fs["offers a forward-secret suite"] == (2, 2)
    assert fs["offers only forward-secret suites"] == (1, 2)    # bigprov also offers RSA kx
    pref = sa.shares_of(m.server_preference(a))[0]   # measured on .1 (enforced), bigprov (not)
    assert (pref.count, pref.total) == (1, 2)


# -- certificates ----------------------------------------------------------------------------

def test_certificate_verdicts(a):
    df = m.cert_verdicts(a)
    hosts = counts(df[df["unit"] == m.TLS_HOSTS])
    assert hosts["valid"] == (2, 4) and hosts["name_mismatch"] == (1, 4)
    assert hosts["self_signed"] == (1, 4) and hosts["expired"] == (0, 4)
    domains = counts(df[df["unit"] != m.TLS_HOSTS])
    # primary MX with TLS: a b c valid, g name mismatch, h self-signed (mx.h failed TLS)
    assert domains["valid"] == (3, 5) and domains["name_mismatch"] == (1, 5)
    assert domains["self_signed"] == (1, 5)
    chains = counts(m.chain_classes(a))
    assert chains == {"self_signed": (1, 5), "broken": (0, 5), "valid_chain": (4, 5)}


def test_keys_and_issuers(a):
    keys = counts(m.cert_keys(a))
    assert keys == {"RSA 2048": (2, 4), "EC 256": (1, 4), "RSA 1024": (1, 4)}
    issuers = counts(m.top_issuers(a))
    assert issuers["CN=Test CA"] == (2, 4)
    assert issuers[HOSTILE_ISSUER] == (1, 4)       # stored and counted as data, verbatim
    assert issuers[m.SELF_SIGNED_ISSUER] == (1, 4)      # mx2.h's self-signed leaf, grouped
    assert counts(m.top_issuers(a, group_self_signed=False))["CN=mx2.h.example"] == (1, 4)
    assert set(counts(m.top_issuers(a, n=1))) == {"CN=Test CA", "other"}


# -- MTA-STS and TLSRPT ----------------------------------------------------------------------------

def test_mta_sts_funnel(a):
    f = m.mta_sts_funnel(a).set_index("step")
    assert list(f["count"]) == [6, 5, 4, 4, 4, 3, 2]
    # 6 accepting; TXT a b c g h; valid a b g h; fetched and valid a b g h; enforce/testing
    # a g h; the dataset's verdict: deliver a g (g testing), fail h
    assert set(f["total"]) == {6}
    assert f.loc["TXT valid", "of_previous"] == pytest.approx(4 / 5)
    assert list(f["excluded"].iloc[1:]) == [1, 1, 0, 0, 1, 1]
    assert f["excluded_as"].iloc[-1].startswith("a sender would fail")
    verdict = a.scalar("SELECT count(*) FROM domains WHERE sts_domain_verdict = 'deliver'")
    assert f["count"].iloc[-1] == verdict


def test_mta_sts_modes_and_misconfigurations(a):
    assert counts(m.mta_sts_modes(a)) == {"enforce": (2, 4), "testing": (1, 4), "none": (1, 4)}
    mis = counts(m.mta_sts_misconfigurations(a))
    # six domains with a record: a b c f g h
    assert mis["TXT record invalid"] == (1, 6)                 # c
    assert mis["several TXT records"] == (0, 6)
    assert mis["policy fetch failed"] == (1, 6)                # f
    assert mis["policy invalid"] == (0, 6)
    assert mis["an MX not matched by the policy"] == (1, 6)    # g
    assert mis["an MX fails TLS or its certificate"] == (3, 6)  # a (no STARTTLS), g, h
    assert mis["misconfigured (any of the above)"] == (5, 6)   # all but b (mode none)
    assert mis["a sender would fail to deliver"] == (1, 6)     # h
    assert counts(m.mta_sts_policy_errors(a)) == {"dns": (1, 1)}


def test_tlsrpt_result_types(a):
    df = m.tlsrpt_result_types(a).set_index("result_type")
    # sessions of domains with a valid TXT: a(2) b(1) g(2) h(2) = 7; domains a b f g h = 5
    sts = df.drop(index=list(m.DANE_RESULT_TYPES))
    assert set(sts["of_sessions"]) == {7} and set(sts["of_domains"]) == {5}
    # the DANE types are of the rows where DANE applies: none in this fixture
    assert df.loc[["tlsa-invalid", "dnssec-invalid"], "of_sessions"].tolist() == [0, 0]
    assert pd.isna(df.loc["dane-required", "sessions"])       # a sender's setting
    assert df.loc["starttls-not-supported", ["sessions", "domains"]].tolist() == [1, 1]
    assert df.loc["certificate-host-mismatch", ["sessions", "domains"]].tolist() == [1, 1]
    assert df.loc["validation-failure", ["sessions", "domains"]].tolist() == [2, 2]
    assert df.loc["certificate-not-trusted", ["sessions", "domains"]].tolist() == [1, 1]
    assert df.loc["sts-policy-fetch-error", "sessions"] == 0    # f has no MX rows
    assert len(df) == 11                                         # every RFC 8460 type listed


def test_tlsrpt_adoption_and_schemes(a):
    got = share_counts(m.tlsrpt(a))
    assert got["_smtp._tls TXT present"] == (3, 6)   # a c g (e does not accept mail)
    assert got["valid TLSRPT record"] == (2, 6)      # a g
    assert got["valid TLSRPT record (with a valid MTA-STS policy)"] == (2, 4)  # of a b g h
    assert counts(m.tlsrpt_schemes(a)) == {"mailto": (1, 3), "https": (1, 3), "both": (1, 3),
                                           "other": (0, 3)}


# -- breakdowns and providers ------------------------------------------------------------------------

def test_registrable_domains_and_providers():
    assert registrable_domain("alt1.aspmx.l.google.com") == "google.com"
    assert registrable_domain("x.mail.protection.outlook.com") == "outlook.com"
    assert registrable_domain("mx.example.co.uk") == "example.co.uk"
    assert registrable_domain("MX1.Foo12.Test.") == "foo12.test"    # default rule '*'
    assert registrable_domain("com") is None and registrable_domain("") is None
    providers = ProviderMap({"bigprov.net": "Big Provider"})
    assert providers.provider("mx.bigprov.net") == ("bigprov.net", "Big Provider")
    assert providers.provider("aspmx.l.google.com") == ("google.com", "Google")
    assert providers.provider("mx1.unknown-host.net") == ("unknown-host.net",
                                                         "unknown-host.net")


def test_breakdown_by_provider(a):
    df = sa.breakdown(a, "any_offered", by="provider")
    assert counts(df, "provider") == {"bigprov.net": (2, 2), "Google": (1, 1),
                                      "self-hosted": (2, 3)}   # a d h; d is rate-limited


def test_breakdown_by_rank_is_cumulative(a):
    df = sa.breakdown(a, "any_offered", by="rank")
    got = counts(df, "rank")
    # accepting mail by rank: a 1, h 3, g 20, b 500 | c 5000 | d 50,000
    assert got["top 1k"] == (4, 4) and got["top 10k"] == (5, 5)
    assert got["top 100k"] == (5, 6) and got["top 1M"] == (5, 6)
    assert got["all ranked"] == (5, 6)
    assert "unranked" not in got            # e is unranked but accepts no mail
    assert list(df["rank"])[:4] == ["top 1k", "top 10k", "top 100k", "top 1M"]


def test_breakdown_by_tld(a):
    assert counts(sa.breakdown(a, "any_offered", by="tld"), "tld") == {
        "example": (4, 5), "org": (1, 1)}


# -- samples and intervals ---------------------------------------------------------------------

def test_a_limited_scan_is_a_sample_with_intervals(tmp_path):
    path = write_scan(tmp_path / "limited", scan_a(), scan_id="limited",
                      config={"limit": 8})
    scan = sa.load(path)
    assert scan.is_sample and scan.sample_reason == "--limit 8"
    s = m._starttls_domains(scan)[0]             # the Share itself, with its clusters
    assert (s.count, s.total) == (5, 6)
    assert s.low is not None and s.low <= s.value <= s.high <= 1
    # clusters: bigprov (b, c) is one cluster; a d g h are their own
    assert s.clusters == 7      # 8 domains: bigprov.net holds two
    assert sa.load(path, sample=False).is_sample is False
    sharded = write_scan(tmp_path / "shard", scan_a(), scan_id="s", config={"shard": [1, 4]})
    assert sa.load(sharded).sample_reason == "--shard 1/4"


def test_cluster_bootstrap_matches_naive_resampling():
    rng = np.random.default_rng(1)
    num = rng.integers(0, 5, 40)
    den = num + rng.integers(0, 5, 40)
    low, high = sa.cluster_bootstrap(num, den, replicates=4000, seed=2)
    naive = []
    for _ in range(4000):
        pick = rng.integers(0, 40, 40)
        naive.append(num[pick].sum() / den[pick].sum())
    n_low, n_high = np.quantile(naive, [0.025, 0.975])
    assert abs(low - n_low) < 0.02 and abs(high - n_high) < 0.02
    assert low < num.sum() / den.sum() < high


def test_cluster_bootstrap_edges():
    assert sa.cluster_bootstrap([], []) is None
    assert sa.cluster_bootstrap([0, 0], [0, 0]) is None
    low, high = sa.cluster_bootstrap([1, 2, 3], [2, 4, 6])        # every cluster at 50%
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    with pytest.raises(ValueError):
        sa.cluster_bootstrap([1], [1, 2])


def test_wilson_interval():
    low, high = sa.wilson(0, 10)
    assert low == pytest.approx(0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    low, high = sa.wilson(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    assert sa.wilson(1, 0) is None


def test_share_text():
    s = sa.Share("STARTTLS offered", 760, 1000, "MX host names")
    assert str(s) == "STARTTLS offered: 76.0% (760 of 1,000 MX host names)"
    assert math.isnan(sa.Share("x", 0, 0, "domains").value)
    t = sa.Share("x", 1, 4, "domains", 0.1, 0.4)
    assert str(t).endswith("[95% CI 10.0-40.0%]")


# -- published figures -----------------------------------------------------------------------------

def test_published_figures_as_data():
    df = sa.published.figures()
    assert {"id", "source", "citation", "date", "population", "metric", "value",
            "value_text", "kind", "unit", "status", "definition"} <= set(df.columns)
    assert df["id"].is_unique
    assert set(df["status"]) <= set(sa.published.STATUSES)
    computable = set(df[df["status"].isin(["computable", "definition unclear"])]["id"])
    assert computable == set(sa.published.MEASURES)
    missing = set(sa.published.not_computable()["id"])
    assert {"durumeric2015-dmarc", "lee2020-tlsa-unvalidatable"} == missing
    assert (df["value"] > 0).all()


def test_published_side_by_side_on_the_fixture(a, scans):
    side = sa.published.side_by_side(a).set_index("id")
    assert side.loc["facebook2014-starttls", ["count", "total"]].tolist() == [5, 6]
    assert side.loc["mailchannels2015-starttls", ["count", "total"]].tolist() == [5, 6]
    assert side.loc["durumeric2015-encryption", ["count", "total"]].tolist() == [4, 6]
    assert side.loc["facebook2014-pfs", ["count", "total"]].tolist() == [3, 4]
    assert side.loc["postini2008-self-signed", ["count", "total"]].tolist() == [1, 5]
    assert side.loc["postini2008-valid", ["count", "total"]].tolist() == [4, 5]
    assert side.loc["postini2008-valid-name-mismatch", ["count", "total"]].tolist() == [1, 4]
    assert side.loc["mayer2016-self-signed", ["count", "total"]].tolist() == [1, 4]
    assert side.loc["ashiq2025-records", ["measured", "count", "total"]].tolist() == [6, 6, 8]
    assert side.loc["ashiq2025-incorrect", ["count", "total"]].tolist() == [5, 6]
    assert side.loc["ashiq2025-failures", ["count", "total"]].tolist() == [1, 6]
    assert side.loc["uriports2026-policy", ["count", "total"]].tolist() == [4, 8]
    assert side.loc["uriports2026-testing", ["count", "total"]].tolist() == [1, 4]
    assert side.loc["tatang2021-active", ["count", "total"]].tolist() == [3, 8]
    assert pd.isna(side.loc["durumeric2015-dmarc", "measured"])
    # the fixture has the dane column and no secure MX RRset: DANE figures are real zeros
    assert side.loc["dukhovni2023-tlsa", ["count", "total"]].tolist() == [0, 0]
    assert side.loc["zivver2025-dane", ["count", "total"]].tolist() == [0, 6]
    # the same scan with DNSSEC validation off: not measured, with the reason, never 0
    off = sa.load(scans[0])
    off.manifest.setdefault("config", {})["dnssec"] = False
    side = sa.published.side_by_side(off).set_index("id")
    for dane in ("dukhovni2023-tlsa", "lee2020-tlsa-inconsistent", "zivver2025-dane"):
        assert pd.isna(side.loc[dane, "measured"]) and side.loc[dane, "total"] == 0
        assert "DNSSEC validation was off" in side.loc[dane, "not_measured"]
    text = sa.published.table(side.reset_index()).set_index("metric")
    assert text.loc["correct SMTP TLSA at every primary MX", "this scan"].str.startswith(
        "not measured").all()
    assert side.loc["zivver2025-mta-sts", ["count", "total"]].tolist() == [3, 6]


# -- two scans -----------------------------------------------------------------------------------

def test_compare_two_scans(a, b):
    c = sa.compare(a, b)
    assert dict(zip(c.domains["population"], c.domains["domains"])) == {
        "in both scans": 7, "only in the earlier scan": 1, "only in the later scan": 1}
    changes = c.changes.set_index("feature")
    assert changes.loc["MTA-STS policy"].tolist() == [1, 1, 3, 2]    # adopted d, dropped b
    assert changes.loc["TLSRPT record"].tolist() == [1, 1, 2, 3]     # adopted c, dropped e
    assert changes.loc["STARTTLS (any MX)"].tolist() == [1, 0, 5, 1]  # d adopted
    assert c.modes.to_dict("records") == [{"from_mode": "enforce", "to_mode": "testing",
                                          "domains": 1}]
    certs = dict(zip(c.certificates["outcome"], c.certificates["mx_hosts"]))
    # mx1.a: a new leaf valid 90 days longer, in date: renewed; aspmx: the new leaf expires
    # earlier than the old one: replaced, not renewed
    assert certs == {"renewed": 1, "replaced": 1, "re-issued": 0, "unchanged": 2}
    hosts = c.renewed_hosts.set_index("mx_host")
    assert hosts.loc["mx1.a.example", "outcome"] == "renewed"
    assert hosts.loc["aspmx.l.google.com", "outcome"] == "replaced"
    assert c.warnings == ()                       # same profile, list, vantage, version


def test_load_many_orders_by_start(scans):
    loaded = sa.load_many(list(reversed(scans)))
    assert [s.scan_id for s in loaded] == ["fixture-a", "fixture-b"]
    assert [s.scan_id for s in sa.load_many(scans[0].parent)] == ["fixture-a", "fixture-b"]


def test_not_a_scan_directory(tmp_path):
    with pytest.raises(sa.AnalysisError):
        sa.load(tmp_path / "missing")
    with pytest.raises(sa.AnalysisError):
        sa.load(tmp_path)


def test_an_empty_scan_gives_zero_denominators(tmp_path):
    path = write_scan(tmp_path / "empty", {"domains": [], "mx": [], "hosts": [], "certs": []},
                      scan_id="empty")
    scan = sa.load(path)
    assert (m.starttls_domains(scan)["total"] == 0).all()
    assert m.mta_sts_funnel(scan)["count"].sum() == 0
    assert len(sa.published.side_by_side(scan)) == len(sa.published.figures())


# -- display ------------------------------------------------------------------------------------

def test_tables_escape_every_cell(a):
    table = sa.Table(m.top_issuers(a), title="Issuers <b>")
    html = table.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Issuers &lt;b&gt;" in html
    data = table._repr_mimebundle_()[TABLE_MIME]
    assert json.loads(json.dumps(data))["columns"][0] == "category"
    assert any(HOSTILE_ISSUER in row for row in data["rows"])   # raw in JSON, escaped in HTML
    assert "50.0%" in str(table)


def test_no_icann_rule_is_deeper_than_the_tail():
    import publicsuffixlist

    from survey.analysis.facts import TAIL_LABELS

    data = Path(publicsuffixlist.__file__).with_name("public_suffix_list.dat")
    text = data.read_text(encoding="utf-8")
    icann = text.split("===BEGIN ICANN DOMAINS===")[1].split("===END ICANN DOMAINS===")[0]
    rules = [ln.strip() for ln in icann.splitlines() if ln.strip() and not ln.startswith("//")]
    assert max(len(r.lstrip("!").split(".")) for r in rules) <= TAIL_LABELS


def test_a_host_under_a_deep_public_suffix_is_looked_up_whole(tmp_path):
    rows = scan_a()
    for row in rows["mx"]:
        if row["domain"] == "c.example":
            row["mx_host"] = "mx.school.pvt.k12.ma.us"      # pvt.k12.ma.us is a suffix
    scan = sa.load(write_scan(tmp_path / "deep", rows, scan_id="deep"))
    provider = scan.scalar("SELECT provider FROM domain_facts WHERE domain = 'c.example'")
    assert provider == "school.pvt.k12.ma.us"
    assert scan.scalar("SELECT provider FROM domain_facts WHERE domain = 'b.example'") == \
        "bigprov.net"


# -- the outcome mapping comes from the vocabulary -------------------------------------------

def test_every_server_status_has_an_outcome():
    from survey.analysis import facts
    from survey.vocabulary import HostStatus

    assert set(facts.OUTCOME_OF) == set(HostStatus), (
        f"give these statuses an outcome in facts.OUTCOME_OF: "
        f"{facts.missing(facts.OUTCOME_OF, HostStatus)}")
    assert set(facts.OUTCOME_OF.values()) <= set(facts.OUTCOMES)


def test_a_status_without_an_outcome_is_an_error_not_not_scanned():
    import duckdb

    from survey.analysis import facts
    from survey.vocabulary import HostStatus

    partial = {s: o for s, o in facts.OUTCOME_OF.items() if s != HostStatus.RATE_LIMITED}
    with pytest.raises(ValueError, match="rate_limited"):
        facts.outcome_case("s", partial)
    # in SQL: each status its outcome, NULL not scanned, anything else stops the query
    rows = duckdb.sql(f"SELECT s, {facts.outcome_case('s')} FROM (VALUES "
                      + ", ".join(f"('{s}')" for s in HostStatus) + ", (NULL)) t(s)").fetchall()
    assert dict(rows) == {**{str(s): o for s, o in facts.OUTCOME_OF.items()},
                          None: "not_scanned"}
    with pytest.raises(duckdb.Error, match="greylisted"):
        duckdb.sql(f"SELECT {facts.outcome_case('s')} FROM (VALUES ('ok'), ('greylisted')) t(s)"
                   ).fetchall()


def test_certificate_order_and_chain_classes_cover_the_vocabulary():
    from survey.analysis import facts
    from survey.vocabulary import CertStatus

    assert sorted(facts.CERT_ORDER) == sorted(CertStatus) and len(facts.CERT_ORDER) == len(
        CertStatus)
    assert set(facts.CHAIN_CLASS_OF) == set(CertStatus)
    assert set(facts.CHAIN_CLASS_OF.values()) - {None} == set(facts.CHAIN_CLASSES)


def test_the_analysis_sql_lists_no_status_by_hand():
    """Status values in the analysis's SQL come from survey.vocabulary, never literals."""
    import re

    from survey import vocabulary

    values = {v for v in (m for voc in vocabulary.ALL for m in voc.values())}
    analysis = Path(__file__).resolve().parent.parent / "survey" / "analysis"
    spelt = {p.name: sorted(set(re.findall(r"'([A-Za-z_0-9.\-]+)'",
                                           p.read_text(encoding="utf-8"))) & values)
             for p in sorted(analysis.glob("*.py"))}
    assert len(spelt) > 5 and "facts.py" in spelt
    assert {name: found for name, found in spelt.items() if found} == {}
    # the check can fail: a literal status in SQL is found
    assert set(re.findall(r"'([A-Za-z_0-9.\-]+)'", "WHERE status = 'rate_limited'")) & values
