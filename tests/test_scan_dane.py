"""DANE end to end: a signed world with every DANE behaviour, CNAME'd MX hosts included,
scanned and scored; and the SNI rule of RFC 7672 §8.1 (a DANE sender sends the TLSA base
domain, a CNAME'd MX host's target; a sender without DANE the MX host name).

The world is the default profile with most domains signed and more own CNAME'd MX hosts,
so each kind of survey/testbed/generator.py ``DANE_KINDS`` and ``DANE_CNAME_KINDS`` is
planted. ``ta_sni`` is the case the SNI rule decides: TLSA ``2 1 1`` of the intermediate
at the target, whose server gives a leaf naming the target only for SNI = the target
(any other name, the MX name included, gets a leaf naming neither): DANE-TA is valid only
when the scanner sends the target, while the certificate columns (SNI = the MX name) see
the other leaf.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from survey.net.dns import Lookup
from survey.scan.resolve import DomainDns, MxTarget, TxtResult
from survey.scan.targets import Target
from survey.scan.verdicts import dane_sni, sni_names
from survey.store import open_dataset, read_manifest
from survey.testbed import serve
from survey.testbed.generator import DANE_CNAME_KINDS, DANE_KINDS, load_profile
from survey.testbed.model import World
from survey.testbed.score import score
from survey.vocabulary import DnsStatus, MxKind, TxtStatus
from tests.worlds import SURVEY, served_world

DOMAINS = 200


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dane")
    profile = load_profile("default")
    profile["name"] = "dane-every-kind"
    profile["dnssec"]["signed"] = 0.7
    profile["own"]["host"]["cname"] = 0.3
    # no server whose status is a matter of timeouts (a loaded 2-core machine flaked on
    # them here: host_status, then dane, off by a few rows; and policy fetches that time out);
    # tests/test_scan_e2e.py has them
    for slow in ("slow_banner", "tarpit"):
        profile["own"]["behaviour"][slow] = 0
    for slow in ("slow_body", "slow_headers"):
        profile["mta_sts"]["policy"][slow] = 0
    profile["dnssec"]["dane_cname"] = {"ta_sni": 0.7, "ee": 0.1, "alias": 0.1,
                                       "mismatch": 0.1}
    path = root / "dane.json"
    path.write_text(json.dumps(profile))
    with served_world(root / "world", domains=DOMAINS, seed=5, scale="fast",
                      profile=str(path)) as directory:
        yield directory


def _scan(world, out, *extra: str) -> None:
    done = subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out),
                                    "--profile", "starttls", "--quiet", *extra],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def scanned(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "scan"
    _scan(world, out)
    return out


def _spec(world) -> World:
    return World.load(world / serve.SPEC)


def test_every_dane_kind_scores_100_percent(world, scanned):
    result = score(scanned, world)
    bad = {t: {c: (s.agree, s.total) for c, s in ts.columns.items() if s.agree != s.total}
           for t, ts in result.tables.items()}
    assert result.ok, (bad, result.disagreements[:5])
    for column in ("dane", "tlsa_base", "tlsa_records", "sender"):
        assert result.tables["mx"].columns[column].total > 0
    rows = open_dataset(scanned, "mx").to_table().to_pylist()
    assert {"valid", "no_match", "no_usable_records", "not_applicable"} <= {
        r["dane"] for r in rows}
    planted = {t for d in _spec(world).domains for t in d.traits
               if t.startswith(("dane:", "dane_cname:"))}
    assert {f"dane:{k}" for k in DANE_KINDS if k != "none"} <= planted
    assert {f"dane_cname:{k}" for k in DANE_CNAME_KINDS} <= planted


def test_a_cname_mx_host_is_judged_with_its_target_as_sni(world, scanned):
    """RFC 7672 §8.1: the DANE columns judged the handshake with SNI = the TLSA base domain
    (the target); the certificate columns the one with SNI = the MX name."""
    spec = _spec(world)
    rows = {(r["domain"], r["mx_host"]): r
            for r in open_dataset(scanned, "mx").to_table().to_pylist()}
    decided = 0
    for d in spec.domains:
        if "dane_cname:ta_sni" not in d.traits:
            continue
        host = next(m.host for m in d.mx if spec.mx_hosts[m.host].cname)
        target = spec.mx_hosts[host].cname
        row = rows[(d.name, host)]
        assert row["tlsa_base"] == target and row["tlsa_records"] == ["2 1 1 " + row[
            "tlsa_records"][0].split()[3]]
        if row["host_status"] != "ok":
            continue
        assert row["dane"] == "valid" and row["dane_sni"] == target, row
        assert row["sni"] != target
        names = spec.smtp_servers[row["ip"]].tls.names
        if host not in names:           # the MX name gets the default leaf: the SNI decided
            assert row["cert_name_match"] is False
            assert row["dane_chain_sha256"][0] != row["chain_sha256"][0]
            decided += 1
    assert decided, "no CNAME'd DANE-TA host whose certificate depends on the SNI sent"
    for (_domain, host), row in rows.items():
        if row["tlsa_base"] == host and row["dane"] in ("valid", "no_match"):
            # no CNAME: the one handshake of the MX name serves both
            assert (row["dane_sni"], row["dane_chain_sha256"]) == (row["sni"],
                                                                   row["chain_sha256"])
        if row["dane"] in (None, "not_applicable", "dnssec_bogus", "tlsa_lookup_failed"):
            assert row["dane_sni"] is None and row["dane_chain_sha256"] is None


DANE_COLUMNS = ("tlsa_records", "tlsa_base", "tlsa_dnssec", "dane", "dane_chain_sha256",
                "dane_result_type", "sender", "chain_sha256", "cert_status")


def test_a_dask_scan_asks_the_same_names_and_gives_the_same_dane_rows(world, scanned,
                                                                      tmp_path):
    """The distributed path sends the TLSA base domain too (cluster/tasks.py dns_shard):
    its DANE columns are the single-process scan's, CNAME'd hosts included. Rows where
    either scan met a timeout (a loaded machine: dns_error, read_timeout) are left out;
    tests/test_scan_dask.py compares whole datasets."""
    out = tmp_path / "dask"
    _scan(world, out, "--dask", "local:2")
    key = ("domain", "mx_host", "ip")
    single = {tuple(r[k] for k in key): r for r in open_dataset(scanned, "mx").to_table()
              .to_pylist()}
    dask = {tuple(r[k] for k in key): r for r in open_dataset(out, "mx").to_table()
            .to_pylist()}
    assert abs(len(single) - len(dask)) <= 5
    timed_out = ("dns_error", "read_timeout", "connect_timeout")
    compared = [k for k in single.keys() & dask.keys()
                if not {single[k]["address_dnssec_reason"], dask[k]["address_dnssec_reason"],
                        single[k]["host_status"], dask[k]["host_status"]} & set(timed_out)
                and single[k]["address_dnssec"] == dask[k]["address_dnssec"]]
    assert len(compared) >= 0.95 * len(single)
    differ = [(k, c, single[k][c], dask[k][c]) for k in compared for c in DANE_COLUMNS
              if single[k][c] != dask[k][c]]
    assert not differ, differ[:5]
    # the SNI decided somewhere: a CNAME'd DANE-TA host whose MX name gets another leaf
    assert any(dask[k]["dane"] == "valid" and dask[k]["tlsa_base"] != k[1]
               and dask[k]["dane_chain_sha256"] != dask[k]["chain_sha256"] for k in compared)


def test_each_server_is_probed_once_and_a_second_name_once_more(world, scanned):
    hosts = open_dataset(scanned, "hosts").to_table(columns=["ip"]).to_pylist()
    assert len(hosts) == len({h["ip"] for h in hosts})
    manifest = read_manifest(scanned)
    assert manifest["stats"]["servers"] == manifest["counts"]["hosts"]


def _dns(mx_dnssec: str | None, mx: MxTarget) -> DomainDns:
    txt = TxtResult(TxtStatus.ABSENT, [])
    return DomainDns(Target("a.test", "a.test", 1), DnsStatus.OK, MxKind.MX, (mx,), txt,
                     txt, mx_dnssec)


RECORD = (b"\x03\x01\x01" + b"\x00" * 32,)


@pytest.mark.parametrize("mx_dnssec,tlsa_dnssec,records,base,want", [
    # RFC 7672 §8.1: DANE applies -> SNI = the TLSA base domain, the CNAME target here
    ("secure", "secure", RECORD, "t.b.test", "t.b.test"),
    # TLSA at the MX name itself (§2.2.2 fallback): the MX name
    ("secure", "secure", RECORD, "mx.a.test", "mx.a.test"),
    # an insecure MX RRset: this dataset does not apply DANE (docs/dane.md)
    ("insecure", "secure", RECORD, "t.b.test", None),
    # no TLSA records, an insecure TLSA RRset, a bogus one: no DANE handshake
    ("secure", "secure", (), "t.b.test", None),
    ("secure", "insecure", RECORD, "t.b.test", None),
    ("secure", "bogus", RECORD, "t.b.test", None),
])
def test_the_sni_names_of_an_mx_host_rfc7672_8_1(mx_dnssec, tlsa_dnssec, records, base,
                                                  want):
    lookup = Lookup(DnsStatus.OK if records else DnsStatus.NO_DATA, records,
                    dnssec=tlsa_dnssec)
    mx = MxTarget("mx.a.test", 10, DnsStatus.OK, ("127.0.0.1",), "secure", None, lookup, base)
    dns = _dns(mx_dnssec, mx)
    assert dane_sni(dns, mx) == want
    # the MX name always (certificate columns, MTA-STS), the base too when it differs
    assert sni_names(dns, mx) == ("mx.a.test",) + ((want,) if want not in (None,
                                                                            "mx.a.test")
                                                   else ())


def test_no_dane_sni_without_dnssec_validation():
    mx = MxTarget("mx.a.test", 10, DnsStatus.OK, ("127.0.0.1",), None, None, None, None)
    assert dane_sni(_dns(None, mx), mx) is None
    assert sni_names(_dns(None, mx), mx) == ("mx.a.test",)
