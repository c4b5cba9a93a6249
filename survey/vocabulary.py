"""Every value vocabulary of the dataset, one ``StrEnum`` each, with what each value means.

Theory of operation
-------------------
The statuses, kinds, modes and verdicts a scan writes are the product: papers
count them. They are declared here once and nowhere else:

  * producers (survey.net, survey.scan, survey.certs, the testbed's truth)
    write the members, never bare strings;
  * ``survey.store.schema`` maps each column to its vocabulary and
    ``to_table`` refuses a value outside it;
  * ``docs/schema.md`` lists the values and their meanings from here
    (survey/store/schemadoc.py);
  * the analysis (survey/analysis/facts.py) derives its outcome mapping from
    ``HostStatus`` and a test fails when a member has no outcome.

Members are ``str`` (``StrEnum``) with exactly the strings datasets have always
held, so a dataset written before this module existed reads the same, byte for
byte, and a member compares equal to its string. Each member is declared as
``NAME = "value", "one-line meaning"``; ``member.meaning`` gives the meaning.

This module is the bottom layer: it imports nothing from survey, and every
other module may import it (tests/test_layering.py).

A new vocabulary (or value) goes here, following the same pattern; the
column that holds it is mapped in ``survey.store.schema.VOCABULARIES``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Vocabulary(StrEnum):
    """A value vocabulary: each member is its value (a str) with a one-line ``meaning``."""

    _value_: str
    meaning: str

    def __new__(cls, value: str, meaning: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    @classmethod
    def of(cls, value: str) -> Self:
        """The member whose value is ``value``; ValueError for any other string."""
        return cls(value)  # type: ignore[call-arg]  # members are looked up by value alone

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The values as plain strings, in declaration order."""
        return tuple(m.value for m in cls)


# -- SMTP servers (hosts.status, mx.host_status) ----------------------------------------

class HostStatus(Vocabulary):
    """Outcome of the STARTTLS dialogue with one server (``hosts.status``).

    The final-status rule is ``FINAL_STATUS_RULE`` below.
    """

    OK = ("ok", ("STARTTLS and the TLS handshake completed (the certificate is judged "
                 "separately, on mx rows)"))
    CONNECTION_REFUSED = "connection_refused", "TCP connection refused (RST to the SYN)"
    CONNECT_TIMEOUT = "connect_timeout", "no TCP connection within the connect timeout"
    NETWORK_UNREACHABLE = "network_unreachable", "no route to the address"
    RESET = "reset", "the server reset or dropped the connection mid-dialogue"
    READ_TIMEOUT = ("read_timeout", ("the server went silent past a deadline (the whole "
                                     "greeting has one)"))
    PROTOCOL_ERROR = ("protocol_error", ("garbage, a broken reply grammar, oversized "
                                         "replies, or plaintext injected after STARTTLS's 220"))
    SMTP_REJECT_4XX = ("smtp_reject_4xx", ("a temporary refusal at greeting or EHLO that "
                                           "names no limit, still refused after the last retry"))
    SMTP_REJECT_5XX = "smtp_reject_5xx", "a permanent refusal at greeting or EHLO"
    RATE_LIMITED = ("rate_limited", ("a 4xx naming a connection or rate limit (at greeting, "
                                     "EHLO or STARTTLS), still refused after the last retry: "
                                     "never counted as \"no STARTTLS\""))
    NO_STARTTLS = "no_starttls", "EHLO answered without STARTTLS"
    STARTTLS_REJECTED = ("starttls_rejected", ("STARTTLS offered but answered with something "
                                               "other than 220"))
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed", "the TLS handshake after STARTTLS failed"
    BLOCKED_BY_POLICY = ("blocked_by_policy", ("never contacted: a special-purpose address "
                                               "(RFC 6890) or on the --blocklist"))
    FAMILY_UNREACHABLE = ("family_unreachable", ("never contacted: this vantage has no route "
                                                 "for the address's family (IPv4 or IPv6; "
                                                 "the manifest's vantage.reach)"))
    FAMILY_EXCLUDED = ("family_excluded", ("never contacted: --ip-version leaves the "
                                           "address's family out"))
    CONNECT_ERROR = ("connect_error", ("the TCP connect failed with an operating-system error "
                                       "the scanner does not classify (status_detail names "
                                       "it)"))


# Temporary refusals: a later attempt may not get them (greylisting, limits).
RETRYABLE: frozenset[HostStatus] = frozenset({HostStatus.RATE_LIMITED,
                                              HostStatus.SMTP_REJECT_4XX})

FINAL_STATUS_RULE = (
    "A temporary refusal (`rate_limited`, `smtp_reject_4xx`) is retried up to `--retries` "
    "times with exponential back-off (RFC 5321 §4.5.4.1: a 4xx asks the client to come "
    "back later; it says nothing about STARTTLS). `status` is the outcome of the last "
    "attempt: a refusal that clears on a retry ends `ok` (or whatever that attempt found), "
    "never `rate_limited`, and the row keeps every attempt in `attempts` (time, step, "
    "reply code, status), so the refusal stays countable; `refused_before_ok` is true "
    "when the final status is `ok` after at least one temporary refusal.")


def final_status(attempts: list[HostStatus] | tuple[HostStatus, ...]) -> HostStatus:
    """``FINAL_STATUS_RULE``: the status of a host row from its attempts' statuses."""
    if not attempts:
        raise ValueError("a probed server has at least one attempt")
    return attempts[-1]


def refused_before_ok(attempts: list[HostStatus] | tuple[HostStatus, ...]) -> bool:
    """``FINAL_STATUS_RULE``: ``ok`` in the end, after at least one temporary refusal."""
    return (bool(attempts) and attempts[-1] == HostStatus.OK
            and any(a in RETRYABLE for a in attempts[:-1]))


class AttemptStep(Vocabulary):
    """How far one attempt's dialogue got (``hosts.attempts[].step``): its last step begun."""

    CONNECT = "connect", "the TCP connection (or the destination policy's refusal)"
    GREETING = "greeting", "the server's greeting (220, or a refusal)"
    EHLO = "ehlo", "EHLO in clear text"
    STARTTLS = "starttls", "the STARTTLS command and its reply"
    TLS = "tls", "the TLS handshake after STARTTLS's 220"
    EHLO_TLS = "ehlo_tls", "EHLO over TLS (the dialogue succeeded whatever happens here)"


class ProbeStatus(Vocabulary):
    """The versions/ciphers enumeration of one server (``hosts.probe_status``)."""

    OK = "ok", "every TLS version decided"
    PARTIAL = ("partial", ("the connection --budget, a server that stopped answering, or a "
                           "version left undecided cut it short: what is listed was found, "
                           "what is missing was not shown unsupported"))
    NOT_RUN = "not_run", "the starttls profile, or a server that never reached STARTTLS's 220"
    FAILED = ("failed", ("a hello got no TLS decision before the server ever spoke TLS (the "
                         "lists stay null)"))
    NO_HANDSHAKE = ("no_handshake", ("the hellos got ServerHellos, but no TLS handshake with "
                                     "the server completed (its starttls probe's failed): "
                                     "the lists are what it announces, not versions or "
                                     "suites a sender can use"))


class Profile(Vocabulary):
    """What a scan measures per server (``survey scan --profile``, the manifest)."""

    STARTTLS = "starttls", "one STARTTLS dialogue per server: status, version, suite, chain"
    VERSIONS = "versions", "starttls, then one hello per TLS version: versions_supported"
    CIPHERS = ("ciphers", ("versions, then every accepted suite per version and the "
                           "server's preference"))


class TlsVersion(Vocabulary):
    """A TLS version in the dataset's spelling."""

    SSL3 = "SSLv3", "SSL 3.0 (RFC 6101; prohibited by RFC 7568)"
    TLS10 = "TLSv1.0", "TLS 1.0 (RFC 2246; deprecated by RFC 8996)"
    TLS11 = "TLSv1.1", "TLS 1.1 (RFC 4346; deprecated by RFC 8996)"
    TLS12 = "TLSv1.2", "TLS 1.2 (RFC 5246)"
    TLS13 = "TLSv1.3", "TLS 1.3 (RFC 8446)"


# -- DNS ---------------------------------------------------------------------------------

class DnsStatus(Vocabulary):
    """Outcome of a DNS lookup (``domains.dns_status``; ``mx.mx_status`` for A/AAAA)."""

    OK = "ok", "an answer with records (an MX record set, the null MX included)"
    NXDOMAIN = "nxdomain", "the name does not exist (RCODE 3)"
    NO_DATA = "no_data", "the name exists but has no record of the type (NODATA)"
    SERVFAIL = ("servfail", ("the resolver failed (SERVFAIL, or an answer that could not be "
                             "parsed)"))
    DNS_REFUSED = "dns_refused", "every resolver answered REFUSED"
    DNS_TIMEOUT = "dns_timeout", "no resolver answered within the lifetime"
    INVALID_INPUT = ("invalid_input", ("the input is not a valid domain name (never looked "
                                       "up)"))


class MxKind(Vocabulary):
    """How a domain receives mail (``domains.mx_kind``)."""

    MX = "mx", "MX records"
    NULL_MX = "null_mx", "RFC 7505 null MX (`0 .`): the domain accepts no mail"
    IMPLICIT = "implicit", "no MX, the domain's own A/AAAA (RFC 5321 §5.1)"
    NONE = "none", "no MX and no address: no mail"


# -- MTA-STS and TLSRPT ------------------------------------------------------------------

class TxtStatus(Vocabulary):
    """A TXT record set: `_mta-sts` (RFC 8461 §3.1) or `_smtp._tls` (RFC 8460 §3)."""

    ABSENT = "absent", "no record of this kind at the name"
    VALID = "valid", "exactly one record of this kind, and it parses"
    INVALID = "invalid", "exactly one record of this kind, and it does not parse"
    MULTIPLE = "multiple", "more than one record of this kind (the RFCs: treat as none)"
    DNS_ERROR = "dns_error", "the TXT lookup failed (SERVFAIL, timeout, refused)"


class PolicyStatus(Vocabulary):
    """The MTA-STS policy fetch from `mta-sts.<domain>` (``mta_sts_policy_status``)."""

    OK = "ok", "a valid policy was fetched"
    FETCH_ERROR = ("fetch_error", ("no usable response (RFC 8461 §3.3): DNS, connection, "
                                   "TLS, certificate, HTTP status, redirect, type, time, size"))
    INVALID = "invalid", "a response whose body is not a valid policy (RFC 8461 §3.2)"
    NOT_ATTEMPTED = "not_attempted", "no valid `_mta-sts` TXT record set: nothing fetched"


class StsPolicyError(Vocabulary):
    """Why a policy fetch failed or its policy is invalid (``mta_sts_policy_error``).

    ``FETCH_ERRORS`` lead to ``fetch_error``, ``BODY_ERRORS`` to ``invalid``.
    """

    DNS = "dns", "`mta-sts.<domain>` has no address"
    BLOCKED = "blocked", "the destination policy refused the address (never contacted)"
    CONNECT = "connect", "no TCP connection to the policy host"
    TLS = "tls", "the TLS handshake with the policy host failed"
    CERTIFICATE = ("certificate", ("the policy host's certificate is not valid for "
                                   "`mta-sts.<domain>` (RFC 8461 §3.3)"))
    HTTP = "http", "a malformed HTTP response, or the connection lost before one"
    REDIRECT = "redirect", "a 3xx response (RFC 8461 §3.3: redirects are not followed)"
    HTTP_STATUS = "http_status", "a status other than 200"
    CONTENT_TYPE = "content_type", "a media type other than text/plain"
    TIMEOUT = "timeout", "no complete policy within the fetch timeout"
    TOO_LARGE = "too_large", "a body over 64 KiB"
    SYNTAX = "syntax", "a body line that is not `key: value`"
    INVALID_VERSION = "invalid_version", "`version` is not `STSv1`"
    INVALID_MODE = "invalid_mode", "`mode` is not enforce, testing or none"
    INVALID_MX = "invalid_mx", "an `mx` value that is not a host name pattern"
    INVALID_MAX_AGE = "invalid_max_age", "`max_age` is not a number of seconds"
    MISSING_VERSION = "missing_version", "no `version` field"
    MISSING_MODE = "missing_mode", "no `mode` field"
    MISSING_MX = "missing_mx", "no `mx` field while mode is not none"
    MISSING_MAX_AGE = "missing_max_age", "no `max_age` field"


# before an HTTP response exists (survey/net/https.py)
STS_TRANSPORT_ERRORS = (StsPolicyError.DNS, StsPolicyError.BLOCKED, StsPolicyError.CONNECT,
                        StsPolicyError.TLS, StsPolicyError.CERTIFICATE, StsPolicyError.HTTP)
# the response breaks RFC 8461 §3.3 (survey/proto/mtasts.py)
STS_HTTP_ERRORS = (StsPolicyError.REDIRECT, StsPolicyError.HTTP_STATUS,
                   StsPolicyError.CONTENT_TYPE, StsPolicyError.TIMEOUT, StsPolicyError.TOO_LARGE)
STS_FETCH_ERRORS = STS_TRANSPORT_ERRORS + STS_HTTP_ERRORS       # -> fetch_error
STS_BODY_ERRORS = tuple(e for e in StsPolicyError if e not in STS_FETCH_ERRORS)  # -> invalid


class StsMode(Vocabulary):
    """A valid MTA-STS policy's mode (RFC 8461 §5)."""

    ENFORCE = "enforce", "a sender must not deliver without a validated TLS session"
    TESTING = "testing", "a sender reports failures (TLSRPT) but delivers anyway"
    NONE = "none", "the domain withdraws its policy"


class StsVerdict(Vocabulary):
    """A sender applying the domain's MTA-STS policy (RFC 8461 §5): would it deliver?"""

    DELIVER = ("deliver", ("the policy lets the sender deliver (a validated session, or mode "
                           "testing)"))
    FAIL = "fail", "mode enforce and no validated session: the sender must not deliver"
    NO_POLICY = "no_policy", "no valid policy in enforce or testing mode: MTA-STS says nothing"


class ResultType(Vocabulary):
    """RFC 8460 §4.3 result types (the IANA "STARTTLS Validation Result Types" registry).

    ``mx.tlsrpt_result_type``: what a sender would report for one (MX, IP).
    """

    # §4.3.1 Negotiation failures
    STARTTLS_NOT_SUPPORTED = ("starttls-not-supported", ("the server does not offer STARTTLS "
                                                         "or refuses it"))
    CERTIFICATE_HOST_MISMATCH = ("certificate-host-mismatch", ("the certificate does not "
                                                               "match the MX host name"))
    CERTIFICATE_EXPIRED = "certificate-expired", "the certificate is expired (or not yet valid)"
    CERTIFICATE_NOT_TRUSTED = ("certificate-not-trusted", ("no path from the certificate to a "
                                                           "trust anchor (self-signed included)"))
    VALIDATION_FAILURE = ("validation-failure", ("another failure: the MX is not in the "
                                                 "policy, or the handshake failed"))
    # §4.3.2.1 DANE-specific policy failures
    TLSA_INVALID = "tlsa-invalid", "a TLSA record set that is not valid"
    DNSSEC_INVALID = "dnssec-invalid", "DNSSEC validation of the TLSA records failed"
    DANE_REQUIRED = "dane-required", "DANE was required and no usable TLSA record exists"
    # §4.3.2.2 MTA-STS-specific policy failures
    STS_POLICY_FETCH_ERROR = ("sts-policy-fetch-error", ("the policy could not be fetched "
                                                         "(`fetch_error`)"))
    STS_POLICY_INVALID = "sts-policy-invalid", "the fetched policy is not valid (`invalid`)"
    STS_WEBPKI_INVALID = ("sts-webpki-invalid", ("the policy host's certificate is not valid "
                                                 "(`fetch_error` / `certificate`)"))


# -- Certificates ------------------------------------------------------------------------

class CertStatus(Vocabulary):
    """A served chain judged for one MX host name (``mx.cert_status``): the first failure."""

    VALID = "valid", "trusted, in date and matching the MX host name"
    NO_CERT = "no_cert", "no handshake completed, so no certificate to judge"
    SELF_SIGNED = ("self_signed", ("untrusted: a self-signed leaf that is no trust anchor "
                                   "(`cert_untrusted_reason` `self_signed`)"))
    UNTRUSTED = ("untrusted", ("the served chain fails path validation "
                               "(`cert_untrusted_reason` says why) or cannot be read"))
    EXPIRED = ("expired", ("trusted, but a certificate on the path is past its notAfter "
                           "(checked first)"))
    NOT_YET_VALID = ("not_yet_valid", ("trusted, but a certificate on the path is before its "
                                       "notBefore"))
    NAME_MISMATCH = ("name_mismatch", ("trusted and in date, but the MX host name matches no "
                                       "SAN dNSName (RFC 6125 §6.4)"))


class CertReason(Vocabulary):
    """Why a served chain is untrusted (``mx.cert_untrusted_reason``): the first failure of
    path validation as OpenSSL does it for a TLS client (docs/certificates.md), named after
    OpenSSL's verify errors (their numbers in OpenSSL 3.0 in brackets)."""

    UNKNOWN_ISSUER = ("unknown_issuer", ("no issuer of the path's top certificate among the "
                                         "served ones or the trust anchors (2, 20, 21)"))
    AKID_MISMATCH = ("akid_mismatch", ("an issuer by name exists, but its key identifier "
                                       "differs from the child's authority key identifier "
                                       "(20)"))
    SELF_SIGNED = "self_signed", "a self-signed leaf that is no trust anchor (18)"
    UNTRUSTED_ROOT = ("untrusted_root", ("the path ends at a self-signed root that is no "
                                         "trust anchor (19)"))
    NOT_CA = "not_ca", "an issuer without basicConstraints CA:TRUE (79, invalid CA)"
    KEY_USAGE = ("key_usage", ("keyUsage forbids the use: an issuer without keyCertSign, a "
                               "leaf without digitalSignature/keyEncipherment/keyAgreement "
                               "(79, 26, 32)"))
    PURPOSE = ("purpose", ("extendedKeyUsage without serverAuth on the leaf, an issuer or the "
                           "anchor (26)"))
    PATH_LENGTH = "path_length", "an issuer's pathLenConstraint is exceeded (25)"
    NAME_CONSTRAINTS = ("name_constraints", ("a name outside an issuer's name constraints "
                                             "(47, 48, 49, 51)"))
    UNKNOWN_CRITICAL_EXTENSION = ("unknown_critical_extension", ("a critical extension the "
                                                                 "verifier does not know "
                                                                 "(34)"))
    WEAK_KEY = ("weak_key", ("a key below security level 1 (80 bits: RSA < 1024) on the "
                             "path (66, 67)"))
    WEAK_SIGNATURE = ("weak_signature", ("a signature below security level 1 (SHA-1, MD5), "
                                         "the anchor's own excepted (68)"))
    SIGNATURE_INVALID = "signature_invalid", "a signature that does not verify (7)"
    CHAIN_TOO_LONG = "chain_too_long", "a path of more than 10 certificates (22)"
    MALFORMED = "malformed", "a certificate or extension that cannot be parsed"


# -- DNSSEC (survey/dnssec.py, survey/net/dnssec.py) ---------------------------------------

class DnssecStatus(Vocabulary):
    """The DNSSEC status of a lookup, validated by the scanner from its trust anchor
    (RFC 4035 §4.3): ``mx_dnssec``, ``mta_sts_txt_dnssec``, ``tlsrpt_dnssec``,
    ``address_dnssec``."""

    SECURE = ("secure", ("a chain of valid signatures from the trust anchor (the IANA root "
                         "KSKs, or --dnssec-anchor) to the answer or to its proof of "
                         "non-existence"))
    INSECURE = ("insecure", ("a signed proof that an unsigned delegation (no DS, or an NSEC3 "
                             "opt-out span) lies between the anchor and the name"))
    BOGUS = "bogus", "the chain should be there and is broken (the reason column says how)"
    INDETERMINATE = ("indeterminate", ("cannot tell: no trust anchor above the name, a lookup "
                                       "on the chain failed, or the resolver strips DNSSEC "
                                       "records"))


class DnssecReason(Vocabulary):
    """Why a lookup's DNSSEC status is ``bogus`` or ``indeterminate`` (the ``*_reason``
    columns)."""

    SIGNATURE_EXPIRED = ("signature_expired",
                         ("bogus: every RRSIG over the RRset is past its expiration by more "
                          "than the clock-skew allowance (Unbound's: a tenth of the validity "
                          "period, at least 1 hour, at most 24)"))
    SIGNATURE_NOT_YET_VALID = ("signature_not_yet_valid",
                               ("bogus: every RRSIG over the RRset is before its inception by "
                                "more than the clock-skew allowance"))
    BAD_SIGNATURE = ("bad_signature", ("bogus: RRSIGs present, none verifies with the zone's "
                                       "keys (data altered after signing, or the wrong key)"))
    NO_RRSIG = "no_rrsig", "bogus: an RRset or denial from a signed zone without RRSIG"
    NO_MATCHING_DNSKEY = ("no_matching_dnskey", ("bogus: no DNSKEY of the zone matches its "
                                                 "parent's DS (or the anchor), or none of "
                                                 "those signs the DNSKEY set"))
    NO_DNSKEY = "no_dnskey", "bogus: the parent publishes a DS, the zone serves no DNSKEY"
    WRONG_SIGNER = ("wrong_signer",
                    "bogus: the RRSIG's signer is not a zone enclosing the owner")
    DENIAL_UNPROVEN = ("denial_unproven",
                       ("bogus: NXDOMAIN or NODATA whose NSEC/NSEC3 records prove nothing, or "
                        "a wildcard answer without the proof that the name itself is absent"))
    DNS_ERROR = ("dns_error",
                 "indeterminate: the lookup, or one the chain of trust needs, failed")
    NO_DNSSEC_RECORDS = ("no_dnssec_records", ("indeterminate: the trust anchor zone's DNSKEY "
                                               "came without RRSIG: the resolver (or the "
                                               "path) strips DNSSEC records"))
    NO_TRUST_ANCHOR = "no_trust_anchor", "indeterminate: no trust anchor encloses the name"
    RESOLVER_BOGUS = ("resolver_bogus", ("bogus (--dnssec-trust-ad): the validating resolver "
                                         "answered SERVFAIL and gave the data with CD set; "
                                         "it does not say why"))
    RESOLVER_NOT_VALIDATING = ("resolver_not_validating",
                               ("indeterminate (--dnssec-trust-ad): the resolver sets no AD on "
                                "the trust anchor zone's own DNSKEY: it does not validate, or "
                                "the path clears AD, so no answer can be called insecure"))


class SenderVerdict(Vocabulary):
    """What a sender that supports DANE and MTA-STS does with one (MX, IP) (``mx.sender``):
    RFC 8461 §2, a DANE-protected MX host is decided by DANE (RFC 7672), otherwise by the
    MTA-STS policy, otherwise opportunistically."""

    DANE_DELIVER = ("dane_deliver", ("DANE applies and the session authenticates (a "
                                     "matching TLSA record, or none usable over TLS)"))
    DANE_FAIL = ("dane_fail", ("DANE applies and the session fails it (no match, no "
                               "STARTTLS, no TLS, bogus or failed lookups): no delivery"))
    STS_DELIVER = "sts_deliver", "no DANE; the MTA-STS policy delivers (testing mode too)"
    STS_FAIL = "sts_fail", "no DANE; the enforced MTA-STS policy refuses this host"
    OPPORTUNISTIC = ("opportunistic", ("neither DANE nor an MTA-STS policy: delivery with "
                                       "TLS if offered, in clear otherwise"))


class DaneStatus(Vocabulary):
    """What a DANE-capable sender (RFC 7672) finds for one (domain, MX host, address):
    ``mx.dane``; survey/dane.py."""

    NOT_APPLICABLE = ("not_applicable", ("DANE does not apply: the MX RRset, the host's "
                                         "addresses or its TLSA RRset is insecure, or no "
                                         "TLSA record exists (the sender falls back to "
                                         "MTA-STS or opportunistic TLS)"))
    VALID = ("valid", ("a usable TLSA record (DANE-EE, or DANE-TA with a valid path and "
                       "name) matches the chain the server presented"))
    NO_MATCH = ("no_match", ("usable TLSA records, none matches the presented chain: a DANE "
                             "sender does not deliver (tlsa-invalid)"))
    NO_USABLE_RECORDS = ("no_usable_records", ("TLSA records, none usable for SMTP (PKIX-TA/"
                                               "PKIX-EE or unknown parameters, RFC 7672 "
                                               "§3.1.3): TLS is still mandatory, the "
                                               "certificate is not checked"))
    NO_STARTTLS = ("no_starttls", ("DANE applies but the server offers no STARTTLS (or "
                                   "refuses it): a DANE sender does not deliver"))
    TLS_FAILED = ("tls_failed", ("DANE applies but no TLS session was established (the "
                                 "connection, the dialogue or the handshake failed)"))
    DNSSEC_BOGUS = ("dnssec_bogus", ("the MX, address or TLSA lookup is bogus: a DANE sender "
                                     "treats the host as unusable (dnssec-invalid)"))
    TLSA_LOOKUP_FAILED = ("tlsa_lookup_failed", ("the TLSA lookup failed (SERVFAIL, "
                                                 "timeout): a DANE sender defers (RFC 7672 "
                                                 "§2.2.3)"))


ALL: tuple[type[Vocabulary], ...] = (
    HostStatus, AttemptStep, ProbeStatus, Profile, TlsVersion, DnsStatus, MxKind, TxtStatus,
    PolicyStatus, StsPolicyError, StsMode, StsVerdict, ResultType, CertStatus,
    CertReason, DnssecStatus, DnssecReason, DaneStatus, SenderVerdict)


# -- analysis results (survey.analysis): what the analysis says, not dataset columns ------------
# Not in ALL (docs/schema.md lists the dataset's vocabularies): these label the rows of
# analysis tables.

class CertChange(Vocabulary):
    """What became of an MX host name's certificate between two scans (analysis.compare)."""

    UNCHANGED = "unchanged", "the same leaf certificates in both scans"
    REISSUED = ("re-issued", ("a new certificate with the same validity period (within a "
                              "day): not a renewal, whether or not key or issuer changed"))
    RENEWED = ("renewed", ("valid at least a day longer than before, and in date when "
                           "probed"))
    REPLACED = ("replaced", ("any other new certificate: a shorter validity, or one not in "
                             "date (an expired certificate replaced by an expired one)"))


class Calibration(Vocabulary):
    """How a published figure relates to a testbed world's profile (analysis.published)."""

    CALIBRATED = "calibrated", "the profile states the figure as an exact quota"
    NOT_CALIBRATED = ("not calibrated", ("the profile cannot hold it as well: published "
                                         "figures contradict each other"))
    UNCLEAR = ("definition unclear", ("not calibrated, and the source leaves the "
                                      "definition open"))
