"""Host name matching: certificate DNS-IDs (RFC 6125 / RFC 7817) and MTA-STS MX patterns.

Theory of operation
-------------------
Both checks compare a *reference identifier* (the name we meant to reach: an
MX host, or ``mta-sts.<domain>``) with a *presented identifier* (a SAN
dNSName, a subject CN, or an ``mx:`` pattern from an MTA-STS policy).

1. The reference identifier is normalised once (``normalise_reference``):
   U-labels become A-labels (IDNA2008 with UTS-46 mapping, the ``idna``
   package, RFC 6125 §6.4.2), ASCII is lower-cased, one trailing root dot is
   removed (RFC 6125 §6.4.3 / RFC 8461 §4.1), and the result must be a
   plausible DNS name (non-empty labels of at most 63 octets, at most 253
   octets in all; letters, digits, hyphen and underscore only). Anything else
   matches nothing.
2. The presented identifier is compared label by label, case-insensitively
   (``match_presented``). It must be ASCII (a dNSName is an IA5String; a policy
   ``mx`` value is an A-label). A wildcard is only the *whole* left-most label
   ``*``; ``*`` anywhere else, a partial label such as ``mx*`` or ``xn--*``, or
   a second ``*`` makes the identifier match nothing (RFC 6125 §6.4.3 rules
   1 and 3, RFC 7817 §3, RFC 8461 §4.1). The wildcard stands for exactly one
   non-empty left-most label of the reference (never zero, never two).

Deliberate choices where the RFCs leave room (see tests/vectors/README.md, decision 7):

- Certificates need at least two labels after ``*.`` (``*.com`` and ``*``
  never match); MX patterns need one (RFC 8461 does not forbid ``*.com``, and
  the policy is written by the domain owner about its own MX hosts).
- A whole-label wildcard may match an A-label (``*.example`` matches
  ``xn--bcher-kva.example``): RFC 6125 §6.4.3 rule 3 is about a ``*`` embedded
  *inside* an A-label, which is a partial wildcard and already rejected.
- A SAN dNSName or CN with a trailing dot matches nothing (RFC 5280 §4.2.1.6
  preferred name syntax). MX patterns lose one trailing dot instead (RFC 8461
  §4.1; that leniency lives in ``survey.proto.mtasts``).
- The subject CN is consulted only when the certificate has no SAN dNSName at
  all (RFC 6125 §6.4.4), and never under the ``mta-sts`` profile (RFC 8461
  §4.2 requires a DNS-ID). A CN obeys the same rules as a dNSName.
- An IP address as the reference identifier matches no DNS-ID or CN (RFC 6125
  §1.7.2 leaves IP addresses out; they belong in iPAddress SANs).
- No public suffix list: ``*.co.uk`` is accepted like any two-label suffix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import idna

PROFILE_DEFAULT = "default"
PROFILE_MTA_STS = "mta-sts"
PROFILES = frozenset({PROFILE_DEFAULT, PROFILE_MTA_STS})

MAX_NAME_OCTETS = 253  # RFC 1035 §2.3.4: 255 octets on the wire, without the root dot
MAX_LABEL_OCTETS = 63
MAX_INPUT_CHARS = 1024  # cap on what we even try to normalise (hostile input)

_HOST_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _ascii_host(name: str) -> str | None:
    """Lower-case an ASCII name, drop one trailing dot, check the label shape."""
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_NAME_OCTETS:
        return None
    for label in name.split("."):
        if not label or len(label) > MAX_LABEL_OCTETS:
            return None
        if not _HOST_LABEL_CHARS.issuperset(label):
            return None
    return name


def normalise_reference(host: str) -> str | None:
    """The host as lower-case A-labels without a trailing dot, or None if it is no host name.

    RFC 6125 §6.4.2: U-labels in the reference identifier are converted to
    A-labels before comparison; RFC 6125 §6.4.3 / RFC 8461 §4.1: one trailing
    root dot is ignored.
    """
    if not isinstance(host, str) or not host or len(host) > MAX_INPUT_CHARS:
        return None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    return _ascii_host(host)


def match_presented(presented: str, reference: str, *, min_wildcard_suffix_labels: int) -> bool:
    """Does one presented identifier (dNSName, CN or MX pattern) match a normalised reference?

    ``reference`` must come from ``normalise_reference``. ``presented`` is taken
    as written: no trailing-dot removal here (callers decide), ASCII only.
    ``min_wildcard_suffix_labels`` is how many labels ``*.`` must be followed
    by: 2 for certificates, 1 for MX patterns.
    """
    if not isinstance(presented, str) or not presented or len(presented) > MAX_INPUT_CHARS:
        return False
    if not presented.isascii():
        return False
    labels = presented.lower().split(".")
    if any(not label for label in labels):
        return False  # empty label, including a trailing dot
    ref_labels = reference.split(".")
    if "*" not in presented:
        return labels == ref_labels
    # RFC 6125 §6.4.3 rule 1 / RFC 7817 §3 / RFC 8461 §4.1: only a whole left-most "*".
    if labels[0] != "*" or any("*" in label for label in labels[1:]):
        return False
    suffix = labels[1:]
    if len(suffix) < min_wildcard_suffix_labels:
        return False
    # RFC 6125 §6.4.3 rule 2: exactly one label, so the label counts agree.
    return len(ref_labels) == len(labels) and ref_labels[1:] == suffix


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def cert_name_matches(
    host: str,
    san_dns: Iterable[str] | None,
    subject_cn: str | None,
    profile: str = PROFILE_DEFAULT,
) -> bool:
    """Is ``host`` among the certificate's names (RFC 6125 §6.4 profiled by RFC 7817 §3)?

    ``profile="mta-sts"`` applies RFC 8461 §4.2: only SAN dNSNames count, so a
    certificate without one never matches. Raises ValueError for an unknown
    profile (a caller bug, not hostile input).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown name-matching profile {profile!r}")
    if not isinstance(host, str) or _is_ip_literal(host):
        return False
    reference = normalise_reference(host)
    if reference is None or _is_ip_literal(reference):
        return False
    dns_ids = [name for name in (san_dns or ()) if isinstance(name, str)]
    if dns_ids:
        candidates = dns_ids
    elif profile == PROFILE_DEFAULT and subject_cn:
        candidates = [subject_cn]  # RFC 6125 §6.4.4: CN only without any DNS-ID
    else:
        return False
    return any(
        match_presented(name, reference, min_wildcard_suffix_labels=2) for name in candidates
    )
