"""survey's DNSSEC statuses against Unbound's on zones signed by a real signer, served by NSD.

tests/interop/test_dnssec_unbound.py checks zones signed by survey's own on-line signer;
here the zones are signed by ldnsutils' ``ldns-signzone`` (Ed25519 keys from
``ldns-keygen``, NSEC) and served by NSD on loopback (started here, stopped after):

  lab.test            signed; the trust anchor (its DS) for both sides
  good.lab.test       signed, DS in lab.test                       -> secure
  plain.lab.test      unsigned, delegated without DS               -> insecure
  exp.lab.test        signed with ``-i``/``-e`` 40 and 10 days ago  -> bogus (expired)
  alt.lab.test        signed, then its A record changed in the signed file -> bogus

Unbound forwards to NSD and validates from the same anchor: SERVFAIL (and data with
+cd) = bogus, AD = secure, neither = insecure. survey's validator asks NSD directly.

The apex SOA and NS RRsets are compared too: survey's validator once called them bogus
(its reply reader left SOA and NS records out, their names being compressible, so the
answer looked like an unproven denial); a scan never asks for them, but a validator that
fails on a zone's own apex is wrong.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from survey.dnssec import Anchors
from survey.net.dns import Resolver
from survey.net.dnssec import Validator
from tests.interop.dnssec_lab import SOA, start_nsd
from tests.interop.test_dnssec_unbound import _unbound, _unbound_status
from tests.requirements import needs

pytestmark = needs("unbound", "nsd", "ldns-signzone", "ldns-keygen")

CASES = [
    # (name, type, status survey and Unbound must both give)
    ("ns.lab.test", "A", "secure"),               # in the anchor zone itself
    ("lab.test", "SOA", "secure"),                # apex RRsets: names compressed by NSD
    ("lab.test", "NS", "secure"),
    ("good.lab.test", "SOA", "secure"),
    ("good.lab.test", "NS", "secure"),
    ("lab.test", "DNSKEY", "secure"),
    ("lab.test", "TXT", "secure"),                # NODATA at the apex
    ("mx.good.lab.test", "A", "secure"),
    ("good.lab.test", "MX", "secure"),
    ("nope.good.lab.test", "A", "secure"),       # NXDOMAIN proven by ldns' NSEC chain
    ("mx.plain.lab.test", "A", "insecure"),
    ("mx.exp.lab.test", "A", "bogus"),
    ("mx.alt.lab.test", "A", "bogus"),
]


def _sign(d: Path, zone: str, body: str, *, when: tuple[datetime, datetime] | None = None,
          extra: str = "") -> tuple[Path, str]:
    """Write and sign ``zone``; (the signed file, its DS record text)."""
    key = subprocess.run(["ldns-keygen", "-a", "ED25519", "-k", zone], cwd=d, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = d / f"{zone}.zone"
    path.write_text(f"$ORIGIN {zone}.\n$TTL 300\n{SOA}{body}{extra}")
    command = ["ldns-signzone"]
    if when is not None:
        command += ["-i", when[0].strftime("%Y%m%d"), "-e", when[1].strftime("%Y%m%d")]
    subprocess.run(command + [str(path), key], cwd=d, check=True, capture_output=True)
    return d / f"{zone}.zone.signed", (d / f"{key}.ds").read_text().strip()


def _zones(d: Path) -> tuple[dict[str, Path], str]:
    now = datetime.now(UTC)
    good, good_ds = _sign(d, "good.lab.test", "@ IN MX 10 mx\nmx IN A 127.16.9.1\n")
    exp, exp_ds = _sign(d, "exp.lab.test", "mx IN A 127.16.9.2\n",
                        when=(now - timedelta(days=40), now - timedelta(days=10)))
    alt, alt_ds = _sign(d, "alt.lab.test", "mx IN A 127.16.9.3\n")
    signed = alt.read_text()
    assert "127.16.9.3" in signed
    alt.write_text(signed.replace("127.16.9.3", "127.16.9.4"))   # changed after signing
    plain = d / "plain.lab.test.zone"
    plain.write_text(f"$ORIGIN plain.lab.test.\n$TTL 300\n{SOA}mx IN A 127.16.9.5\n")
    delegations = "".join(f"{z} IN NS ns.lab.test.\n" for z in ("good", "exp", "alt", "plain"))
    ds = "".join(f"{r}\n" for r in (good_ds, exp_ds, alt_ds))
    lab, lab_ds = _sign(d, "lab.test", "ns IN A 127.0.0.1\n" + delegations, extra=ds)
    zones = {"lab.test": lab, "good.lab.test": good, "exp.lab.test": exp,
             "alt.lab.test": alt, "plain.lab.test": plain}
    return zones, lab_ds


async def test_survey_and_unbound_agree_on_ldns_signed_zones_served_by_nsd(tmp_path):
    zones, anchor = _zones(tmp_path)
    nsd, nsd_port = start_nsd(tmp_path, zones)
    try:
        (tmp_path / "unbound").mkdir()
        unbound, port = _unbound(tmp_path / "unbound", nsd_port, anchor + "\n")
        try:
            validator = Validator(Resolver([("127.0.0.1", nsd_port)], timeout=1, lifetime=3),
                                  Anchors.from_text(anchor + "\n"))
            table = []
            for name, rdtype, expected in CASES:
                found = await validator.lookup(name, rdtype)
                theirs = await trio.to_thread.run_sync(_unbound_status, port, name, rdtype)
                table.append((name, rdtype, expected, found.dnssec, theirs,
                              found.dnssec_reason))
        finally:
            unbound.terminate()
            unbound.wait(timeout=10)
    finally:
        nsd.terminate()
        nsd.wait(timeout=10)
    print("\nlookup | expected | survey (reason) | unbound")
    for name, rdtype, expected, ours, theirs, reason in table:
        print(f"{name} {rdtype} | {expected} | {ours} ({reason}) | {theirs}")
    assert [(n, t, e, e) for n, t, e, *_ in table] == [(n, t, o, u) for n, t, _e, o, u, _r
                                                       in table]
