"""A small hand-built dataset (two scans) whose statistics are worked out by hand.

Written with survey.store.DatasetWriter, like a scan. Used by
tests/test_analysis.py (the expected values are derived there, in comments)
and by tests/test_report.py (the report must escape its hostile banner and
certificate issuer). No tests in this module.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from survey.store import DatasetWriter, write_manifest

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOSTILE_BANNER = "220 mx2.a.example <script>alert('banner')</script> ESMTP \x1b[31mred\x1b[0m"
HOSTILE_ISSUER = "CN=Other CA <script>alert('issuer')</script>"
PORT = 25


def _cert(sha, subject, issuer, key_type, bits, not_after, self_signed=False):
    return {"sha256": sha, "der": b"\x30\x00" + sha.encode(), "subject": subject,
            "issuer": issuer, "san_dns": [subject.removeprefix("CN=")],
            "not_before": T0 - timedelta(days=30), "not_after": not_after,
            "key_type": key_type, "key_bits": bits, "signature_algorithm": "sha256",
            "self_signed": self_signed, "probed_at": T0}


def _host(ip, status, *, offered=None, version=None, suite=None, chain=None, banner=None,
          versions=None, suites=None, preference=None):
    return {"ip": ip, "port": PORT, "status": status, "probe_status": "not_run",
            "banner": banner or f"220 {ip} ESMTP", "starttls_offered": offered,
            "tls_version": version, "cipher_suite": suite, "chain_sha256": chain,
            "versions_supported": versions, "cipher_suites": suites,
            "server_preference": preference, "connections": 1,
            "probed_at": T0}


def _mx(domain, host, pref, ip, host_status=None, *, cert=None, chain=None, match=None,
        verdict="no_policy", rtype=None, mx_status="ok"):
    row = {"domain": domain, "mx_host": host, "preference": pref, "ip": ip,
           "mx_status": mx_status if ip is None else "ok", "sts_mx_match": match,
           "sts_verdict": verdict, "tlsrpt_result_type": rtype, "probed_at": T0}
    if ip is not None:
        row.update(port=PORT, host_status=host_status, sni=host)
        if host_status == "ok":
            c = cert or "valid"
            row.update(cert_status=c, cert_trusted=c not in ("self_signed", "untrusted"),
                       cert_time_valid=c not in ("expired", "not_yet_valid"),
                       cert_name_match=c != "name_mismatch", chain_sha256=chain)
        else:
            row["cert_status"] = "no_cert"
    return row


def _domain(name, rank, *, dns="ok", kind="mx", hosts=(), sts="absent", policy="not_attempted",
            error=None, mode=None, patterns=None, verdict="no_policy", rpt="absent", rua=None):
    return {"domain": name, "input": name, "rank": rank, "dns_status": dns, "mx_kind": kind,
            "mx_hosts": list(hosts) if kind in ("mx", "implicit") else [],
            "mta_sts_txt_status": sts, "mta_sts_policy_status": policy,
            "mta_sts_policy_error": error, "mta_sts_mode": mode,
            "mta_sts_max_age": 86400 if mode else None, "mta_sts_mx_patterns": patterns,
            "sts_domain_verdict": verdict, "tlsrpt_status": rpt, "tlsrpt_rua": rua,
            "probed_at": T0}


def scan_a() -> dict[str, list[dict]]:
    """The earlier scan: 8 domains, 7 server addresses, 5 certificates."""
    certs = [
        _cert("L1", "CN=mx1.a.example", "CN=Test CA", "EC", 256, T0 + timedelta(days=60)),
        _cert("L2", "CN=mx.bigprov.net", "CN=Test CA", "RSA", 2048, T0 + timedelta(days=300)),
        _cert("L3", "CN=mx.google.com", HOSTILE_ISSUER, "RSA", 2048, T0 + timedelta(days=90)),
        _cert("L4", "CN=mx2.h.example", "CN=mx2.h.example", "RSA", 1024,
              T0 + timedelta(days=900), self_signed=True),
        _cert("I1", "CN=Test CA", "CN=Test Root", "RSA", 4096, T0 + timedelta(days=3000)),
    ]
    hosts = [
        _host("192.0.2.1", "ok", offered=True, version="TLSv1.3", suite="TLS_AES_256_GCM_SHA384",
              chain=["L1", "I1"], versions=["TLSv1.2", "TLSv1.3"],
              suites=[{"version": "TLSv1.3", "name": "TLS_AES_256_GCM_SHA384",
                       "preference_order": 1},
                      {"version": "TLSv1.2", "name": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                       "preference_order": 2}],
              preference=[{"version": "TLSv1.2", "enforced": True},
                          {"version": "TLSv1.3", "enforced": None}]),
        _host("192.0.2.2", "no_starttls", offered=False, banner=HOSTILE_BANNER),
        _host("198.51.100.1", "ok", offered=True, version="TLSv1.2",
              suite="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", chain=["L2", "I1"],
              versions=["TLSv1.0", "TLSv1.1", "TLSv1.2"],
              suites=[{"version": "TLSv1.2", "name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                       "preference_order": 1},
                      {"version": "TLSv1.0", "name": "TLS_RSA_WITH_AES_128_CBC_SHA",
                       "preference_order": 2}],
              preference=[{"version": "TLSv1.2", "enforced": False}]),
        _host("203.0.113.5", "rate_limited"),
        _host("203.0.113.9", "ok", offered=True, version="TLSv1.2",
              suite="TLS_RSA_WITH_AES_128_CBC_SHA", chain=["L3"]),
        _host("192.0.2.7", "tls_handshake_failed", offered=True),
        _host("192.0.2.8", "ok", offered=True, version="TLSv1.0",
              suite="TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", chain=["L4"]),
    ]
    mx = [
        _mx("a.example", "mx1.a.example", 10, "192.0.2.1", "ok", chain=["L1", "I1"],
            match=True, verdict="deliver"),
        _mx("a.example", "mx2.a.example", 20, "192.0.2.2", "no_starttls", match=True,
            verdict="fail", rtype="starttls-not-supported"),
        _mx("b.example", "mx.bigprov.net", 10, "198.51.100.1", "ok", chain=["L2", "I1"],
            match=True),
        _mx("c.example", "mx.bigprov.net", 10, "198.51.100.1", "ok", chain=["L2", "I1"]),
        _mx("d.example", "d.example", 0, "203.0.113.5", "rate_limited"),
        _mx("g.org", "aspmx.l.google.com", 1, "203.0.113.9", "ok", cert="name_mismatch",
            chain=["L3"], match=True, verdict="deliver", rtype="certificate-host-mismatch"),
        _mx("g.org", "alt.nohost.g.org", 5, None, match=False, verdict="deliver",
            rtype="validation-failure", mx_status="nxdomain"),
        _mx("h.example", "mx.h.example", 10, "192.0.2.7", "tls_handshake_failed", match=True,
            verdict="fail", rtype="validation-failure"),
        _mx("h.example", "mx2.h.example", 10, "192.0.2.8", "ok", cert="self_signed",
            chain=["L4"], match=True, verdict="fail", rtype="certificate-not-trusted"),
    ]
    domains = [
        _domain("a.example", 1, hosts=["mx1.a.example", "mx2.a.example"], sts="valid",
                policy="ok", mode="enforce", patterns=["mx1.a.example", "mx2.a.example"],
                verdict="deliver", rpt="valid", rua=["mailto:tls@a.example"]),
        _domain("b.example", 500, hosts=["mx.bigprov.net"], sts="valid", policy="ok",
                mode="none", patterns=["mx.bigprov.net"]),
        _domain("c.example", 5000, hosts=["mx.bigprov.net"], sts="invalid", rpt="invalid"),
        _domain("d.example", 50_000, dns="no_data", kind="implicit", hosts=["d.example"]),
        _domain("e.example", None, kind="null_mx", rpt="valid",
                rua=["https://r.e.example/v1"]),
        _domain("f.example", 2_000_000, dns="servfail", kind=None, sts="valid",
                policy="fetch_error", error="dns"),
        _domain("g.org", 20, hosts=["aspmx.l.google.com", "alt.nohost.g.org"], sts="valid",
                policy="ok", mode="testing", patterns=["*.google.com"], verdict="deliver",
                rpt="valid", rua=["https://r.g.org/", "mailto:x@g.org"]),
        _domain("h.example", 3, hosts=["mx.h.example", "mx2.h.example"], sts="valid",
                policy="ok", mode="enforce", patterns=["mx.h.example", "mx2.h.example"],
                verdict="fail"),
    ]
    return {"domains": domains, "mx": mx, "hosts": hosts, "certs": certs}


def scan_b() -> dict[str, list[dict]]:
    """The later scan: a's mode and certificate change, b drops MTA-STS, d adopts it..."""
    rows = copy.deepcopy(scan_a())
    d = {r["domain"]: r for r in rows["domains"]}
    d["a.example"].update(mta_sts_mode="testing")
    d["b.example"].update(mta_sts_txt_status="absent", mta_sts_policy_status="not_attempted",
                          mta_sts_mode=None, mta_sts_mx_patterns=None)
    d["d.example"].update(mta_sts_txt_status="valid", mta_sts_policy_status="ok",
                          mta_sts_mode="enforce", mta_sts_mx_patterns=["d.example"],
                          sts_domain_verdict="deliver")
    d["c.example"].update(tlsrpt_status="valid", tlsrpt_rua=["mailto:r@c.example"])
    d["e.example"].update(tlsrpt_status="absent", tlsrpt_rua=None)
    rows["domains"] = [r for r in rows["domains"] if r["domain"] != "f.example"]
    rows["domains"].append(_domain("new.example", 7, kind="none"))
    hosts = {h["ip"]: h for h in rows["hosts"]}
    hosts["203.0.113.5"].update(status="ok", starttls_offered=True, tls_version="TLSv1.3",
                                cipher_suite="TLS_AES_128_GCM_SHA256", chain_sha256=["L5"])
    hosts["192.0.2.1"].update(chain_sha256=["L1b", "I1"])
    hosts["203.0.113.9"].update(chain_sha256=["L3b"])
    for m in rows["mx"]:
        if m["domain"] == "d.example":
            m.update(host_status="ok", cert_status="valid", cert_trusted=True,
                     cert_time_valid=True, cert_name_match=True, chain_sha256=["L5"],
                     sts_mx_match=True, sts_verdict="deliver")
        if m["mx_host"] == "mx1.a.example":
            m.update(chain_sha256=["L1b", "I1"])
        if m["mx_host"] == "aspmx.l.google.com":
            m.update(chain_sha256=["L3b"])
    rows["certs"] += [
        _cert("L1b", "CN=mx1.a.example", "CN=Test CA", "EC", 256, T0 + timedelta(days=150)),
        _cert("L3b", "CN=mx.google.com", HOSTILE_ISSUER, "RSA", 2048, T0 + timedelta(days=30)),
        _cert("L5", "CN=d.example", "CN=Test CA", "EC", 256, T0 + timedelta(days=90)),
    ]
    return rows


def write_scan(directory: Path, rows: dict[str, list[dict]], *, scan_id: str,
               config: dict | None = None, batch_rows: int = 4,
               started: datetime = T0) -> Path:
    """Write ``rows`` as a scan directory (several batches, like a real scan)."""
    with DatasetWriter(directory, batch_rows=batch_rows) as writer:
        for table in ("certs", "hosts", "mx", "domains"):
            for row in rows[table]:
                writer.write(table, row)
    write_manifest(directory, {
        "scan_id": scan_id, "state": "complete", "started_at": started.isoformat(),
        "ended_at": (started + timedelta(minutes=5)).isoformat(),
        "input": {"name": "fixture.csv", "sha256": "0" * 64, "size": 1},
        "config": {"profile": "ciphers", "limit": None, "shard": None, **(config or {})},
        "counts": {t: len(r) for t, r in rows.items()},
    })
    return directory


def write_fixture(root: Path) -> tuple[Path, Path]:
    """Both scans under ``root``: (earlier, later)."""
    a = write_scan(root / "scan-a", scan_a(), scan_id="fixture-a")
    b = write_scan(root / "scan-b", scan_b(), scan_id="fixture-b",
                   started=T0 + timedelta(days=30))
    return a, b
