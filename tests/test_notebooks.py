"""Every notebook executes against a testbed scan, and every notebook stays thin.

A small default-profile world (providers, rate limits, every MTA-STS
behaviour) is built, served on loopback and scanned twice with `survey scan
--world`: once whole, once as a shard (a sample, so intervals appear). The
world is then served again (every certificate re-issued) and scanned in part,
for the renewal rule. The notebooks run three ways: with papermill (each
given the shard), with `jupyter nbconvert --execute` on their own defaults
(a copy of the repository layout whose data/scans/latest is the whole scan),
and, in tests/test_report.py, with nbclient as `survey report` runs them.

The report's rules are asserted here on the testbed scans: "not measured" is
not zero, the MTA-STS funnel adds up, one unit per axis, renewal by what
changed, and a warning when two scans differ in profile.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pyarrow.parquet as pq
import pytest

from survey import analysis as sa
from survey.analysis import metrics as m
from survey.analysis import plots
from survey.analysis.display import FIGURE_METADATA, TABLE_MIME, Table
from survey.analysis.shares import BOOTSTRAP, CENSUS
from survey.report import find_notebooks
from tests.worlds import SURVEY, served_world

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ["01-overview", "02-starttls-certificates", "03-tls-versions-ciphers",
            "04-mta-sts-tlsrpt", "05-published-figures", "06-compare-scans"]
DOMAINS = 300
BIN = Path(sys.executable).parent


def _scan(world: Path, out: Path, *extra: str) -> None:
    subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out), "--quiet",
                             *extra], check=True, timeout=300, capture_output=True)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """(whole scan, shard, part of a re-served world) of one default-profile world."""
    world = tmp_path_factory.mktemp("nb-world")
    root = tmp_path_factory.mktemp("nb-scans")
    with served_world(world, domains=DOMAINS, seed=11, scale="fast", profile="default"):
        _scan(world, root / "full")
        _scan(world, root / "shard", "--shard", "1/2")
    # served again: the same world, every certificate issued anew
    with served_world(world, domains=DOMAINS, seed=11, scale="fast", profile="default"):
        _scan(world, root / "again", "--limit", "60")
    return root / "full", root / "shard", root / "again"


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_the_six_notebooks_are_there():
    assert [p.stem for p in find_notebooks(NOTEBOOKS)] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_each_notebook_is_thin_with_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    params = ast.parse(tagged[0].source)
    names = {t.id for node in params.body for t in getattr(node, "targets", [])}
    assert {"scan", "figures", "sample"} <= names
    assert nb.cells[0].cell_type == "markdown" and "Scheitle" in nb.cells[0].source
    for cell in nb.cells:
        assert not cell.get("outputs"), "notebooks are committed without outputs"
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            # logic lives in survey.analysis, where tests reach it
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While,
                                         ast.Lambda)), f"{name}: {cell.source[:60]}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert module.startswith("survey"), f"{name} imports {module}"
        assert len(cell.source.splitlines()) <= 12


def _run_all(commands: list[list[str]], parallel: int = 2) -> None:
    """Run the commands, ``parallel`` at a time; each must succeed."""
    pending = list(commands)
    running: list[tuple[list[str], subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < parallel:
            cmd = pending.pop(0)
            running.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT)))
        cmd, proc = running.pop(0)
        output = proc.communicate(timeout=600)[0].decode(errors="replace")
        assert proc.returncode == 0, f"{' '.join(cmd[:3])}: {output[-3000:]}"


@pytest.mark.timeout(480)       # builds, serves and scans the world (the fixture), then runs
def test_every_notebook_runs_with_papermill(scans, tmp_path):
    full, shard, _ = scans
    assert sa.load(shard).is_sample and not sa.load(full).is_sample
    figures = tmp_path / "figures"
    commands = []
    for path in find_notebooks(NOTEBOOKS):
        params = ["-p", "scan", str(shard), "-p", "figures", str(figures)]
        if path.stem.startswith("06"):
            params += ["-p", "previous", str(full)]
        commands.append([str(BIN / "papermill"), "--no-progress-bar", "--cwd",
                         str(NOTEBOOKS), str(path), str(tmp_path / path.name), *params])
    _run_all(commands)
    executed = {p.stem: nbformat.read(tmp_path / p.name, as_version=4)
                for p in find_notebooks(NOTEBOOKS)}
    for name, nb in executed.items():
        outputs = _outputs(nb)
        assert not [o for o in outputs if o.output_type == "error"], name
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images or name.startswith("06"), f"{name} drew no chart"
        # one unit per axis: a chart of several units names each bar's unit
        for image in images:
            meta = image["metadata"]
            assert meta["caption"] and meta["alt"] and meta[FIGURE_METADATA], name
            assert len(meta["units"]) == 1 or "unit in its label" in \
                meta["caption"], (name, meta["caption"])
            assert f"Scan {sa.load(shard).scan_id}" in meta["caption"]
    pngs = sorted(figures.glob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        assert png.with_suffix(".svg").exists() and png.with_suffix(".pdf").exists()
    # the sample's tables carry intervals (a cluster bootstrap over providers)
    tables = [o["data"][TABLE_MIME] for o in _outputs(executed["01-overview"])
              if TABLE_MIME in o.get("data", {})]
    headline = next(t for t in tables if t["title"] == "Headline shares")
    interval = headline["columns"].index("interval")
    assert all(row[interval].endswith(f"% ({BOOTSTRAP})") for row in headline["rows"])


@pytest.mark.timeout(300)
def test_every_notebook_runs_standalone_with_nbconvert(scans, tmp_path):
    """Each notebook as committed, on its defaults: ../data/scans/latest, no previous scan."""
    full, _, _ = scans
    (tmp_path / "data" / "scans").mkdir(parents=True)
    (tmp_path / "data" / "scans" / "latest").symlink_to(full)
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    paths = sorted((tmp_path / "notebooks").glob("*.ipynb"))
    half = len(paths) // 2
    _run_all([[str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
               "--inplace", *map(str, group)] for group in (paths[:half], paths[half:])])
    for path in paths:
        outputs = _outputs(nbformat.read(path, as_version=4))
        assert outputs and not [o for o in outputs if o.output_type == "error"], path.name
    compare = _outputs(nbformat.read(tmp_path / "notebooks" / "06-compare-scans.ipynb",
                                     as_version=4))
    said = " ".join(o["data"]["text/plain"] for o in compare if "text/plain" in o.get("data", {}))
    assert "set `previous`" in said          # says what to set when no second scan is given


# -- the report's rules, on the testbed scans --------------------------------------------------

def test_not_measured_is_not_zero(scans, tmp_path):
    full, shard, _ = scans
    scan = sa.load(full)                       # --profile starttls (what --world runs)
    classes = m.cipher_classes(scan)
    worst = classes[classes["measure"] == "worst offered"]
    assert worst["count"].isna().all() and worst["share"].isna().all()
    assert worst["not_measured"].str.contains("needs --profile ciphers").all()
    pref = sa.shares_of(m.server_preference(scan))[0]
    assert not pref.measured and "--profile ciphers" in pref.not_measured
    assert "not measured" in str(pref) and "0 of 0" not in str(pref)
    rendered = Table(classes).as_json()
    share = rendered["columns"].index("share")
    assert [r[share] for r in rendered["rows"][-4:]] == ["not measured"] * 4
    assert "not measured because" in rendered["columns"]
    # DANE: measured on this (signed, validated) world; not measured, rather than "0 of
    # 120", when DNSSEC validation was off or the scan predates the dane column
    types = m.tlsrpt_result_types(scan).set_index("result_type")
    observed = ["tlsa-invalid", "dnssec-invalid"]
    assert types.loc[observed, "domains"].notna().all()
    # counted among the rows where DANE applies, not among MTA-STS domains
    rows = scan.df("SELECT dane, dane_result_type, domain FROM mx_rows")
    applies = rows[rows["dane"].notna() & (rows["dane"] != "not_applicable")]
    assert (types.loc[observed, "of_sessions"] == len(applies)).all()
    assert types.loc["tlsa-invalid", "sessions"] == \
        (applies["dane_result_type"] == "tlsa-invalid").sum() > 0
    assert "sender's own setting" in types.loc["dane-required", "not_measured"]
    # DANE adoption: each share's denominator the step it names, all measured here
    dane = sa.shares_of(m.dane(scan))
    assert all(x.measured for x in dane) and dane[0].total > dane[0].count > 0
    secure = scan.df("SELECT domain FROM domain_facts WHERE accepts_mail AND mx_dnssec = "
                     "'secure'")
    assert dane[0].count == dane[1].total == dane[2].total == len(secure)
    assert dane[3].total == dane[4].total == dane[1].count >= dane[2].count == dane[3].count
    usages = m.dane_usages(scan)
    assert usages["count"].sum() == dane[1].count
    together = m.dane_and_mta_sts(scan).set_index("category")
    assert together.loc["DANE and MTA-STS", "count"] == dane[5].count
    assert together["count"].sum() == dane[0].total
    senders = m.sender_verdicts(scan).set_index("category")
    assert senders["count"].sum() == scan.scalar("SELECT count(sender) FROM mx_rows")
    assert senders.loc["dane_deliver", "count"] > 0
    off = tmp_path / "no-dnssec"
    shutil.copytree(full, off)
    manifest = json.loads((off / "manifest.json").read_text())
    manifest["config"]["dnssec"] = False
    (off / "manifest.json").write_text(json.dumps(manifest))
    predates = tmp_path / "no-dane-column"
    shutil.copytree(full, predates)
    for part in (predates / "mx").glob("*.parquet"):
        pq.write_table(pq.read_table(part).drop_columns(["dane"]), part)
    for older, why in ((off, "DNSSEC validation was off"),
                       (predates, "predates the column dane")):
        types = m.tlsrpt_result_types(sa.load(older)).set_index("result_type")
        for kind in m.DANE_RESULT_TYPES:
            assert why in types.loc[kind, "not_measured"], kind
            assert pd.isna(types.loc[kind, "domains"])
        older_scan = sa.load(older)
        for table in (m.dane(older_scan), m.dane_usages(older_scan),
                      m.dane_and_mta_sts(older_scan), m.sender_verdicts(older_scan)):
            assert table["count"].isna().all() and table["share"].isna().all()
            assert table["not_measured"].str.contains(why).all()
    versions = m.tls_versions(scan)
    supported = versions[versions["measure"] == "supported"]
    assert supported["not_measured"].str.contains("needs --profile versions or ciphers").all()
    # the same scan, had it run --profile versions: supported versions are measured (zeros
    # here are real zeros), until the scan predates the column
    old = tmp_path / "old"
    shutil.copytree(full, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["config"]["profile"] = "versions"
    (old / "manifest.json").write_text(json.dumps(manifest))
    versions = m.tls_versions(sa.load(old))
    assert versions[versions["measure"] == "supported"]["count"].notna().all()
    for part in (old / "hosts").glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["versions_supported"]), part)
    why = sa.load(old).not_measured("versions")
    assert why and "predates the column versions_supported" in why
    supported = m.tls_versions(sa.load(old))
    assert supported[supported["measure"] == "supported"]["count"].isna().all()
    # a census says so; a sample names its interval's method
    assert set(m.headline(scan)["interval"]) == {CENSUS}
    assert set(m.headline(sa.load(shard))["interval"]) == {BOOTSTRAP}


def test_the_mta_sts_funnel_adds_up_to_the_dataset_verdict(scans):
    full, _, _ = scans
    scan = sa.load(full)
    f = m.mta_sts_funnel(scan)
    counts = [int(c) for c in f["count"]]
    excluded = [int(e) for e in f["excluded"].iloc[1:]]
    assert all(a == b + e for a, b, e in zip(counts, counts[1:], excluded))
    assert all(f["excluded_as"].iloc[1:].str.len() > 0)
    # the last step is the dataset's own verdict, over the domains accepting mail
    verdicts = dict(scan.rows(
        "SELECT d.sts_domain_verdict, count(*) FROM domains d JOIN domain_facts f "
        "USING (domain) WHERE f.accepts_mail AND d.mta_sts_mode IN ('enforce', 'testing') "
        "GROUP BY ALL"))
    assert counts[-1] == verdicts["deliver"] and excluded[-1] == verdicts["fail"] > 0
    # domains that accept no mail yet carry a verdict are named beside the funnel
    outside = scan.scalar("SELECT count(*) FROM domain_facts WHERE NOT accepts_mail "
                          "AND sts_verdict IN ('deliver', 'fail')")
    assert f.attrs["outside"] == outside


def test_one_unit_per_axis(scans):
    scan = sa.load(scans[0])
    mixed = plots.shares_bar(m.forward_secrecy(scan)[:2], title="Forward secrecy")
    labels = [t.get_text() for t in mixed.axes[0].get_yticklabels()]
    assert "(of IP addresses with a TLS handshake)" in labels[0]
    assert "(of MX host names with a TLS handshake)" in labels[1]
    assert "each bar's unit in its label" in plots.caption_of(mixed)
    single = plots.shares_bar(m.mta_sts_misconfigurations(scan), title="Misconfigured")
    assert plots.units_of(single) == ["domains with an MTA-STS record"]
    assert single.axes[0].get_xlabel() == "share of domains with an MTA-STS record"


def test_renewal_is_defined_by_what_changed(scans):
    full, shard, again = scans
    same = sa.compare(sa.load(full), sa.load(shard)).certificates.set_index("outcome")
    assert same.loc["unchanged", "mx_hosts"] > 0
    assert same.loc[["re-issued", "renewed", "replaced"], "mx_hosts"].sum() == 0
    # served again: every certificate has a new DER (and key), but the same validity
    # period: re-issued, not renewed; an expired one replaced by an expired one is no renewal
    reserved = sa.compare(sa.load(full), sa.load(again))
    certs = reserved.certificates.set_index("outcome")
    assert certs.loc["re-issued", "mx_hosts"] > 0
    assert certs.loc["renewed", "mx_hosts"] == 0
    assert certs.loc["re-issued", "key_changed"] == certs.loc["re-issued", "mx_hosts"]


def test_a_profile_mismatch_is_a_warning(scans, tmp_path):
    full, shard, _ = scans
    other = tmp_path / "starttls-profile"
    shutil.copytree(full, other)
    manifest = json.loads((other / "manifest.json").read_text())
    assert manifest["config"]["profile"] == "starttls"      # what `scan --world` runs
    manifest["config"]["profile"] = "ciphers"
    (other / "manifest.json").write_text(json.dumps(manifest))
    c = sa.compare(sa.load(other), sa.load(full))
    assert any("different profiles: 'ciphers' then 'starttls'" in w for w in c.warnings)
    assert not any("profiles" in w for w in sa.compare(sa.load(full), sa.load(full)).warnings)
    assert any("--shard" in w for w in sa.compare(sa.load(full), sa.load(shard)).warnings)
