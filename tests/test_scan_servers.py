"""scan/servers.py's one trim rule: what a probe keeps once its host row is written."""

from __future__ import annotations

from survey.net.smtp import SmtpProbe
from survey.scan.servers import trimmed


def probe() -> SmtpProbe:
    return SmtpProbe("127.16.0.1", 25, "ok", "after TLS: no reply", banner="220 mx ESMTP",
                     ehlo=["PIPELINING", "STARTTLS"], ehlo_tls=["PIPELINING"],
                     starttls_offered=True, sni="mx.example.test", tls_version="TLSv1.3",
                     cipher_suite="TLS_AES_128_GCM_SHA256", chain=[b"leaf", b"ca"],
                     transcript=["S: 220 mx ESMTP", "C: EHLO scanner.test"])


def test_the_mx_rows_fields_stay_the_host_rows_go():
    full = probe()
    kept = trimmed(full)
    assert (kept.banner, kept.ehlo, kept.ehlo_tls, kept.transcript) == (None, None, None, [])
    for name in ("ip", "port", "status", "detail", "starttls_offered", "sni", "tls_version",
                 "cipher_suite", "chain"):
        assert getattr(kept, name) == getattr(full, name), name
    assert full == probe()   # the written probe itself is not changed
