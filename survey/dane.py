"""DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): TLSA records against a presented chain.

Theory of operation
-------------------
Pure functions; the lookups and their DNSSEC statuses come from the scan
(survey/net/dnssec.py), the chain from the STARTTLS probe.

``applicability`` decides whether DANE applies to an (MX host, address) at
all (RFC 7672 §2.1, §2.2): the MX RRset secure (this dataset's reading of
§2.2.1: a domain with an insecure MX RRset gets ``not_applicable``, although
Postfix 3.6+ would still use the secure TLSA of a secure MX host under it,
``smtp_tls_dane_insecure_mx_policy = dane``), the host's address lookups
secure, and the TLSA RRset secure and not empty. A bogus lookup on the way
makes the host unusable (``dnssec_bogus``: a DANE sender defers, §2.2); a
TLSA lookup that fails outright (SERVFAIL, timeout) does too
(``tlsa_lookup_failed``, §2.2.3).

``verdict`` judges the chain when DANE applies: only DANE-TA(2) and
DANE-EE(3) with selector 0/1 and matching type 0/1/2 are usable (§3.1.3:
PKIX-TA(0)/PKIX-EE(1) and unknown parameters are not); none usable is
``no_usable_records`` (TLS stays mandatory, the certificate is not checked).
A DANE-EE record matches the leaf, names and dates ignored (§3.1.1). A
DANE-TA record matches a certificate the server presented above the leaf;
the chain from the leaf to it must then validate (signatures and dates, up
to that certificate even when it is not self-signed: RFC 7671 §5.2.2) and
the leaf must carry a reference identifier (§3.2.3: the TLSA base domain,
i.e. the MX host or the target of its secure CNAME, or the MX host name).
Any usable record that matches makes the chain ``valid`` (rollover: a stale
record beside a fresh one is fine); otherwise ``no_match``. A server that
offers no STARTTLS is ``no_starttls``, one whose handshake failed or never
started ``tls_failed`` (for a DANE sender both mean no delivery).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from survey.certs import CertError, TrustStore, judge_chain, load_cert, verdict_for
from survey.vocabulary import DaneStatus

SMTP_PORT = 25                          # RFC 7672 §2.2: TLSA at _25._tcp.<host>
USABLE_USAGES = (2, 3)                  # DANE-TA, DANE-EE (RFC 7672 §3.1.3)
SELECTORS = (0, 1)                      # full certificate, SubjectPublicKeyInfo
MATCHING_TYPES = (0, 1, 2)              # exact, SHA2-256, SHA2-512


class Tlsa(NamedTuple):
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        return (self.usage in USABLE_USAGES and self.selector in SELECTORS
                and self.mtype in MATCHING_TYPES)

    def text(self) -> str:
        """Presentation form (RFC 6698 §2.2), as stored in ``mx.tlsa_records``."""
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


def tlsa_name(host: str) -> str:
    return f"_{SMTP_PORT}._tcp.{host}"


def parse_tlsa(rdata: bytes) -> Tlsa | None:
    """One TLSA rdata from the wire (RFC 6698 §2.1); None when shorter than its header."""
    if len(rdata) < 3:
        return None
    return Tlsa(rdata[0], rdata[1], rdata[2], bytes(rdata[3:]))


def _selected(cert_der: bytes, selector: int) -> bytes | None:
    if selector == 0:
        return cert_der
    try:
        cert = load_cert(cert_der)
        return cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    except (CertError, ValueError, TypeError):
        return None


def matches(record: Tlsa, cert_der: bytes) -> bool:
    """Does the record's association data match this certificate (RFC 6698 §2.1.2-2.1.3)?"""
    selected = _selected(cert_der, record.selector)
    if selected is None:
        return False
    if record.mtype == 0:
        return selected == record.data
    if record.mtype == 1:
        return hashlib.sha256(selected).digest() == record.data
    if record.mtype == 2:
        return hashlib.sha512(selected).digest() == record.data
    return False


_NO_ANCHORS = TrustStore()


def ta_path_valid(chain: Sequence[bytes], ta_index: int, names: Iterable[str],
                  at: datetime) -> bool:
    """RFC 7672 §3.2.3 with RFC 7671 §5.2.2: each certificate from the leaf up to the matched
    trust anchor is signed by the next (cryptography's verify_directly_issued_by) and in
    date at ``at``, and the leaf carries one of the reference identifiers (survey.certs'
    name matching). The TA need not be self-signed: this is the partial chain that
    survey.certs' OpenSSL-like path validator (no -partial_chain) does not build."""
    try:
        certs = [load_cert(der) for der in chain[:ta_index + 1]]
        for child, issuer in zip(certs, certs[1:]):
            child.verify_directly_issued_by(issuer)
    except (CertError, InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    if any(not (c.not_valid_before_utc <= at <= c.not_valid_after_utc) for c in certs[:-1]):
        return False
    judgement = judge_chain([chain[0]], at, _NO_ANCHORS)
    return any(verdict_for(judgement, name).name_match for name in names)


def verdict(records: Sequence[Tlsa], chain: Sequence[bytes], names: Iterable[str],
            at: datetime) -> DaneStatus:
    """The chain against the TLSA RRset of an applicable host (DANE applies)."""
    usable = [r for r in records if r.usable]
    if not usable:
        return DaneStatus.NO_USABLE_RECORDS
    if not chain:
        return DaneStatus.NO_MATCH
    names = list(names)
    for record in usable:
        if record.usage == 3 and matches(record, chain[0]):
            return DaneStatus.VALID
    for record in usable:
        if record.usage != 2:
            continue
        for i in range(1, len(chain)):
            if matches(record, chain[i]) and ta_path_valid(chain, i, names, at):
                return DaneStatus.VALID
    return DaneStatus.NO_MATCH


def applicability(mx_dnssec: str | None, address_dnssec: str | None,
                  tlsa_dnssec: str | None, tlsa_status: str | None,
                  has_records: bool) -> DaneStatus | None:
    """None when DANE applies (secure MX, addresses and non-empty TLSA RRset); otherwise
    the status that ends it. ``tlsa_status`` is the TLSA lookup's DNS status (None: not
    looked up). The caller leaves ``dane`` null when the scan did not validate DNSSEC."""
    statuses = (mx_dnssec, address_dnssec)
    if "bogus" in statuses:
        return DaneStatus.DNSSEC_BOGUS
    if any(s != "secure" for s in statuses):
        return DaneStatus.NOT_APPLICABLE
    if tlsa_dnssec == "bogus":
        return DaneStatus.DNSSEC_BOGUS
    if tlsa_status not in ("ok", "no_data", "nxdomain"):
        return DaneStatus.TLSA_LOOKUP_FAILED
    if tlsa_dnssec != "secure" or not has_records:
        return DaneStatus.NOT_APPLICABLE
    return None


DANE_RESULT_TYPES = {
    DaneStatus.NO_MATCH: "tlsa-invalid", DaneStatus.DNSSEC_BOGUS: "dnssec-invalid",
    DaneStatus.TLSA_LOOKUP_FAILED: "dnssec-invalid",
    DaneStatus.NO_STARTTLS: "starttls-not-supported", DaneStatus.TLS_FAILED: "validation-failure",
}
DANE_DELIVERS = (DaneStatus.VALID, DaneStatus.NO_USABLE_RECORDS)


def sender(dane: str | None, sts_verdict: str | None) -> str | None:
    """RFC 8461 §2 with RFC 7672: DANE decides a DANE-protected host, then MTA-STS, then
    opportunistic TLS (``SenderVerdict``); None when DANE was not measured."""
    if dane is None:
        return None
    if dane != DaneStatus.NOT_APPLICABLE:
        return "dane_deliver" if dane in DANE_DELIVERS else "dane_fail"
    if sts_verdict == "deliver":
        return "sts_deliver"
    if sts_verdict == "fail":
        return "sts_fail"
    return "opportunistic"


def session_status(host_status: str | None) -> DaneStatus | None:
    """What the STARTTLS probe alone decides for an applicable host (None: judge the chain)."""
    if host_status == "ok":
        return None
    if host_status in ("no_starttls", "starttls_rejected"):
        return DaneStatus.NO_STARTTLS
    return DaneStatus.TLS_FAILED
