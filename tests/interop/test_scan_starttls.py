"""`survey scan --testbed --profile starttls` against real Postfix, Unbound and nginx.

Each expectation is what the lab was configured to do (tests/interop/lab.py),
never what our scanner said last time.
"""

from __future__ import annotations

import hashlib
import shlex

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.lab import (
    BY_LABEL,
    LAB_CHECK_AGENT,
    MODERN_MX,
    NEEDS_LAB,
    SCAN_DOMAINS,
    ZONE,
)

pytestmark = [pytest.mark.interop, NEEDS_LAB]


def d(label: str) -> str:
    return f"{label}.{ZONE}"


def leaf_sha256s(lab, label: str) -> set[str]:
    """sha256 of the leaf certificate(s) the listener was given."""
    shas = set()
    for path in lab.pki.directory.glob(f"{label}-*.pem"):
        if path.name.endswith(".combined.pem"):
            continue
        leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
        shas.add(hashlib.sha256(leaf.public_bytes(Encoding.DER))
                 .hexdigest())
    return shas


# domain label -> columns of its domains row
DOMAINS = {
    "missing": {"dns_status": "nxdomain", "mta_sts_policy_status": "not_attempted"},
    "plain": {"dns_status": "ok", "mx_kind": "mx", "mx_hosts": [BY_LABEL["plain"].host],
              "mta_sts_txt_status": "absent", "mta_sts_policy_status": "not_attempted",
              "sts_domain_verdict": "no_policy", "tlsrpt_status": "absent"},
    "nullmx": {"dns_status": "ok", "mx_kind": "null_mx"},
    "implicit": {"dns_status": "no_data", "mx_kind": "implicit", "mx_hosts": []},
    "legacy": {"mta_sts_txt_status": "invalid", "mta_sts_id": None,
               "mta_sts_policy_status": "not_attempted", "sts_domain_verdict": "no_policy"},
    "modern": {"mta_sts_txt_status": "valid", "mta_sts_id": "20260101T000000",
               "mta_sts_policy_status": "ok", "mta_sts_policy_error": None,
               "mta_sts_mode": "enforce", "mta_sts_max_age": 86400,
               "mta_sts_mx_patterns": [MODERN_MX], "sts_domain_verdict": "deliver",
               "tlsrpt_status": "valid", "tlsrpt_rua": [f"mailto:tlsrpt@{ZONE}"]},
    "split": {"mta_sts_txt_status": "valid", "mta_sts_id": "split2026",
              "mta_sts_policy_status": "ok", "mta_sts_mode": "enforce",
              "mta_sts_mx_patterns": [f"*.mx.{ZONE}"], "sts_domain_verdict": "deliver",
              "mta_sts_txt": ["v=STSv1; id=split2026;"],      # RFC 8461 §3.1: joined
              "tlsrpt_status": "valid",
              "tlsrpt_rua": [f"https://tlsrpt.{ZONE}/v1", f"mailto:reports@{ZONE}"]},
    "testing": {"mta_sts_policy_status": "ok", "mta_sts_mode": "testing",
                "sts_domain_verdict": "deliver", "tlsrpt_status": "multiple",
                "tlsrpt_rua": None},
    "invalid": {"mta_sts_txt_status": "valid", "mta_sts_policy_status": "invalid",
                "mta_sts_policy_error": "invalid_version", "mta_sts_mode": None,
                "sts_domain_verdict": "no_policy", "tlsrpt_status": "invalid",
                "tlsrpt_txt": ["v=TLSRPTv1;", "v=TLSRPTv2; rua=mailto:x@interop.test"]},
    "notfound": {"mta_sts_policy_status": "fetch_error", "mta_sts_policy_error": "http_status"},
    "redirect": {"mta_sts_policy_status": "fetch_error", "mta_sts_policy_error": "redirect"},
    "html": {"mta_sts_policy_status": "fetch_error", "mta_sts_policy_error": "content_type"},
    "wrongcert": {"mta_sts_policy_status": "fetch_error",
                  "mta_sts_policy_error": "certificate"},
    "nomatch": {"mta_sts_policy_status": "ok", "mta_sts_mode": "enforce",
                "mta_sts_mx_patterns": ["mail.elsewhere.test"], "sts_domain_verdict": "fail"},
    "selfsigned": {"mta_sts_mode": "enforce", "sts_domain_verdict": "fail"},
    "expired": {"mta_sts_mode": "testing", "sts_domain_verdict": "deliver"},
    "untrusted": {"mta_sts_mode": "enforce", "sts_domain_verdict": "fail"},
    "reject": {"mx_kind": "mx", "mta_sts_txt_status": "absent"},
    "restricted": {"mx_kind": "mx", "tlsrpt_status": "absent"},
    "alias": {"mx_kind": "mx", "mx_hosts": [f"alias.mx.{ZONE}"]},
}

VALID = {"cert_status": "valid", "cert_trusted": True, "cert_time_valid": True,
         "cert_name_match": True}
# (domain label, MX host) -> columns of its mx row
MX = {
    ("plain", BY_LABEL["plain"].host): {"ip": "127.77.1.1", "host_status": "no_starttls",
                                         "cert_status": "no_cert", "sts_verdict": "no_policy",
                                         "tlsrpt_result_type": None},
    ("reject", BY_LABEL["reject"].host): {"host_status": "smtp_reject_5xx",
                                           "cert_status": "no_cert"},
    ("modern", MODERN_MX): {"ip": "127.77.1.2", "host_status": "ok", **VALID,
                            "sts_mx_match": True, "sts_verdict": "deliver",
                            "tlsrpt_result_type": None},
    ("legacy", BY_LABEL["legacy"].host): {"host_status": "ok", **VALID,
                                          "sts_verdict": "no_policy"},
    ("restricted", BY_LABEL["restricted"].host): {"host_status": "ok", **VALID},
    # prefers anonymous suites: the certificate probe offers none and sees the chain
    ("anon", BY_LABEL["anon"].host): {"host_status": "ok", **VALID},
    ("implicit", d("implicit")): {"ip": "127.77.1.2", "preference": 0, **VALID},
    ("alias", f"alias.mx.{ZONE}"): {"ip": "127.77.1.2", "cert_status": "name_mismatch",
                                    "cert_trusted": True, "cert_name_match": False},
    ("selfsigned", BY_LABEL["selfsigned"].host): {
        "cert_status": "self_signed", "cert_trusted": False, "cert_name_match": True,
        "sts_mx_match": True, "sts_verdict": "fail",
        "tlsrpt_result_type": "certificate-not-trusted"},
    ("expired", BY_LABEL["expired"].host): {
        "cert_status": "expired", "cert_trusted": True, "cert_time_valid": False,
        "sts_verdict": "deliver", "tlsrpt_result_type": "certificate-expired"},
    ("untrusted", BY_LABEL["untrusted"].host): {
        "cert_status": "untrusted", "cert_trusted": False, "cert_time_valid": True,
        "sts_verdict": "fail", "tlsrpt_result_type": "certificate-not-trusted"},
    ("split", MODERN_MX): {**VALID, "sts_mx_match": True, "sts_verdict": "deliver"},
    ("testing", MODERN_MX): {**VALID, "sts_verdict": "deliver", "tlsrpt_result_type": None},
    ("nomatch", MODERN_MX): {**VALID, "sts_mx_match": False, "sts_verdict": "fail",
                             "tlsrpt_result_type": "validation-failure"},
    ("invalid", MODERN_MX): {"sts_verdict": "no_policy",
                             "tlsrpt_result_type": "sts-policy-invalid"},
    ("notfound", MODERN_MX): {"sts_verdict": "no_policy",
                              "tlsrpt_result_type": "sts-policy-fetch-error"},
    ("redirect", MODERN_MX): {"tlsrpt_result_type": "sts-policy-fetch-error"},
    ("html", MODERN_MX): {"tlsrpt_result_type": "sts-policy-fetch-error"},
    ("wrongcert", MODERN_MX): {"sts_verdict": "no_policy",
                               "tlsrpt_result_type": "sts-webpki-invalid"},
}


def test_every_domain_has_a_row(starttls_scan):
    assert sorted(starttls_scan.domains) == sorted(d(label) for label in SCAN_DOMAINS)


@pytest.mark.parametrize("label", sorted(DOMAINS))
def test_domain_row(starttls_scan, label):
    row = starttls_scan.domains[d(label)]
    got = {column: row[column] for column in DOMAINS[label]}
    assert got == DOMAINS[label]


def test_mx_rows_exactly_where_expected(starttls_scan):
    assert set(starttls_scan.mx) == {(d(label), host) for label, host in MX}
    assert not [key for key in starttls_scan.mx if key[0] == d("nullmx")]


@pytest.mark.parametrize("key", sorted(MX), ids=lambda key: key[0])
def test_mx_row(starttls_scan, key):
    row = starttls_scan.mx[(d(key[0]), key[1])]
    got = {column: row[column] for column in MX[key]}
    assert got == MX[key]


@pytest.mark.parametrize("label", sorted(BY_LABEL))
def test_host_row(lab, starttls_scan, label):
    listener = BY_LABEL[label]
    row = starttls_scan.hosts[listener.ip]
    assert row["port"] == lab.smtp_port
    assert row["probe_status"] == "not_run"         # the starttls profile enumerates nothing
    assert row["connections"] >= 1
    if listener.tls == "reject":
        assert row["status"] == "smtp_reject_5xx" and row["banner"].startswith("554")
        return
    assert row["banner"].startswith("220 mx.interop.test ESMTP")
    if listener.tls == "none":
        assert row["status"] == "no_starttls" and row["starttls_offered"] is False
        assert "STARTTLS" not in row["ehlo_capabilities"] and row["tls_version"] is None
        return
    assert row["status"] == "ok" and row["starttls_offered"] is True
    assert "STARTTLS" in row["ehlo_capabilities"]
    assert "STARTTLS" not in row["ehlo_capabilities_tls"]     # RFC 3207 §4.2
    assert row["tls_version"] == ("TLSv1.2" if listener.tls == "anon" else "TLSv1.3")
    assert row["chain_sha256"][0] in leaf_sha256s(lab, label)
    if label == "anon":
        # it prefers anonymous suites; the certificate probe offers none (a verifying
        # sender's offer), so it gets a suite with the certificate
        assert "_anon_" not in row["cipher_suite"] and "_RSA_" in row["cipher_suite"]
    if label == "untrusted":
        assert len(row["chain_sha256"]) == 2                   # leaf + the rogue CA
    if label == "restricted":
        # the server's order wins over the client's (tls_preempt_cipherlist = yes)
        assert row["cipher_suite"] == "TLS_CHACHA20_POLY1305_SHA256"


def test_certs_table_describes_the_served_leaves(lab, starttls_scan):
    self_signed = starttls_scan.hosts[BY_LABEL["selfsigned"].ip]["chain_sha256"][0]
    row = starttls_scan.certs[self_signed]
    assert row["self_signed"] is True and row["san_dns"] == [BY_LABEL["selfsigned"].host]
    modern = starttls_scan.certs[starttls_scan.hosts[BY_LABEL["modern"].ip]["chain_sha256"][0]]
    assert modern["self_signed"] is False and modern["key_type"] == "RSA"
    assert modern["key_bits"] == 2048 and "survey interop test CA" in modern["issuer"]
    assert sorted(modern["san_dns"]) == sorted(BY_LABEL["modern"].names)


def test_policy_fetches_as_rfc_8461_says(lab, starttls_scan):
    """One GET of the well-known path, with the policy host as SNI, naming the scanner."""
    hosts = {f"mta-sts.{label}.{ZONE}" for label in DOMAINS}
    lines = [shlex.split(line) for line in lab.access_log.read_text().splitlines()]
    ours = [line for line in lines if line[3] != LAB_CHECK_AGENT]
    assert ours
    for sni, request, _status, agent in ours:
        assert sni in hosts and request == "GET /.well-known/mta-sts.txt HTTP/1.1", sni
        assert agent.startswith("survey "), agent
