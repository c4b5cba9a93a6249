"""`survey scan --dnssec-trust-ad` against the default (validating) scan, end to end.

The generated DNSSEC lab (tests/interop/dnssec_lab.py: ldns-signzone zones under
``lab.test`` served by NSD, a validating Unbound in front) is scanned twice through that
Unbound, once validating in the scanner and once trusting Unbound's AD bit; nothing
listens on the MX hosts' SMTP port, so the scans are about DNS. Every DNSSEC column of
both tables (domains: MX, ``_mta-sts`` and ``_smtp._tls`` TXT; mx: the hosts' addresses
and TLSA), the ``dane`` and ``sender`` verdicts that follow from them must be equal, row by
row; the reasons differ only where AD mode cannot know them (``resolver_bogus``); the
manifest says which mode made each dataset.
"""

from __future__ import annotations

import json
import subprocess
import sys

from survey.store import open_dataset
from tests.interop.dnssec_lab import DnssecLab, build, shapes
from tests.interop.test_dnssec_unbound import _free_port
from tests.requirements import needs

pytestmark = needs("unbound", "nsd", "ldns-signzone", "ldns-keygen")

SURVEY = [sys.executable, "-m", "survey.cli"]
FAST = ["--per-ip-spacing", "0", "--rate", "1000", "--dns-rate", "1000", "--retries", "0",
        "--connect-timeout", "2", "--quiet", "--testbed"]
DOMAIN_COLUMNS = ("mx_dnssec", "mta_sts_txt_dnssec", "tlsrpt_dnssec")
MX_COLUMNS = ("address_dnssec", "tlsa_dnssec", "dane", "sender")


def _scan(tmp_path, name: str, port: int, anchor, *extra: str) -> dict:
    out = tmp_path / name
    done = subprocess.run(SURVEY + ["scan", str(tmp_path / "domains.txt"), "--out", str(out),
                                    "--resolver", f"127.0.0.1:{port}", "--dnssec-anchor",
                                    str(anchor), "--smtp-port", str(_free_port()), *FAST,
                                    *extra],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    domains = {r["domain"]: r for r in open_dataset(out, "domains").to_table().to_pylist()}
    mx = {(r["domain"], r["mx_host"], r["ip"]): r
          for r in open_dataset(out, "mx").to_table().to_pylist()}
    manifest = json.loads((out / "manifest.json").read_text())
    return {"domains": domains, "mx": mx, "manifest": manifest}


def test_trust_ad_scan_agrees_with_the_validating_scan(tmp_path):
    drawn = shapes(1, 18)
    zones, anchor_text = build(tmp_path, drawn)
    anchor = tmp_path / "anchor.zone"
    anchor.write_text(anchor_text + "\n")
    (tmp_path / "domains.txt").write_text("".join(f"{s.zone}\n" for s in drawn))
    with DnssecLab(tmp_path, zones, anchor_text) as lab:
        ours = _scan(tmp_path, "validating", lab.port, anchor)
        theirs = _scan(tmp_path, "trust-ad", lab.port, anchor, "--dnssec-trust-ad")
    assert ours["manifest"]["config"]["dnssec_trust_ad"] is False
    assert theirs["manifest"]["config"]["dnssec_trust_ad"] is True
    assert (ours["manifest"]["dnssec"]["mode"], theirs["manifest"]["dnssec"]["mode"]) == \
        ("validating", "resolver_ad")
    print("\ndomain / mx | column | validating (reason) | trust-ad (reason)")
    compared = 0
    for table, columns in (("domains", DOMAIN_COLUMNS), ("mx", MX_COLUMNS)):
        assert set(ours[table]) == set(theirs[table])
        for key, row in sorted(ours[table].items(), key=str):
            other = theirs[table][key]
            for column in columns:
                mine, yours = row[column], other[column]
                reason = f"{column}_reason"
                print(f"{key} | {column} | {mine} ({row.get(reason)}) | "
                      f"{yours} ({other.get(reason)})")
                assert mine == yours, (key, column)
                compared += 1
                if reason in row and mine == "bogus":
                    assert other[reason] == "resolver_bogus"
                elif reason in row:
                    assert row[reason] == other[reason], (key, column)
    statuses = {r["mx_dnssec"] for r in ours["domains"].values()}
    assert {"secure", "insecure", "bogus"} <= statuses
    print(f"{compared} values compared, all equal")
