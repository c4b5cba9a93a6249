"""Build a deterministic ``World`` of N domains under ``.test`` from a seed and a profile.

Theory of operation
-------------------
A profile (``profiles/<name>.json``, or any path) gives the *shares* of each
behaviour. Shares are not sampled independently: every categorical choice is
dealt from a ``Deck`` (decks.py) — a shuffled list holding each label in proportion to
its share, at least once, refilled when empty. A deck of D cards guarantees
every label once per D draws, which is how ``default`` can promise every
behaviour in every 1,000 domains, and the observed shares match the profile
closely even for small worlds. All randomness comes from one
``random.Random`` seeded by (seed, profile name), consumed in a fixed order:
the same seed and profile give the same spec, byte for byte.

Structure of a world:
  * a few large providers (profile ``providers``): shared MX hosts on shared
    addresses (``bigmail``, dual-stack with AAAA ::1), per-customer MX names
    ``<customer>.mail.<provider>.test`` on a handful of shared addresses
    (``protect``), customer names CNAME'd to the provider's host
    (``cheaphost``), a provider enforcing a per-IP connection limit;
  * a long tail of own servers: 1-3 MX with preferences (ties included), hosts
    with several addresses, AAAA ::1, CNAME'd hosts, hosts that do not resolve
    (NXDOMAIN, NODATA, SERVFAIL), hosts shared by several domains, an SNI-
    dependent server behind two MX names; one SMTP behaviour and one TLS
    setup per address;
  * null MX, implicit MX, no mail at all; domain-level DNS faults;
  * ``_mta-sts`` / ``_smtp._tls`` TXT records (valid, invalid, multiple,
    split into several character-strings, next to unrelated records, DNS
    errors), policy hosts of every behaviour, TLSA records;
  * legacy TLS servers (profile ``own.legacy``: the share of own TLS servers
    served by tlslite-ng, and the shares of the ``legacy_tls.CATALOGUE``
    entries), and hostile servers (SMTP behaviours ``endless_banner``,
    ``long_line``, ``garbage``, ``tls_truncated``, ``hostile_text``; policy
    behaviour ``slow_headers``).

IPv6: loopback has exactly one IPv6 address, ``::1``, so exactly one SMTP
server lives there (a valid certificate naming every host that has AAAA ::1:
``bigmail``'s mx1 and up to ``IPV6_NAME_CAP`` long-tail hosts; later ipv6
hosts in a large world fall back to plain hosts).

Each domain records ``traits``: the behaviour names it exercises (see
``BEHAVIOURS``), used by the coverage test and by ``behaviour_shares``.
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from survey.testbed import chains
from survey.testbed.chains import CHAIN_PREFIX
from survey.testbed.decks import Dealer, Deck, ProfileError, flag_deck
from survey.testbed.legacy_tls import CATALOGUE, config_name
from survey.testbed.model import (
    POLICY_BEHAVIOURS,
    SMTP_BEHAVIOURS,
    TLD,
    TLS_VERSIONS,
    DnsNode,
    DnsRecord,
    DomainSpec,
    Latency,
    MxHostSpec,
    MxRef,
    PolicyHostSpec,
    PolicySpec,
    Ports,
    Reply,
    ScannerSettings,
    SmtpServerSpec,
    TlsSpec,
    TxtSpec,
    World,
    ZoneSpec,
    paused_gc,
)
from survey.testbed.quotas import CIPHER_SET, COHORT_KEYS, Cohorts

PROFILE_DIR = Path(__file__).with_name("profiles")
RESOLVER_IP = "127.53.0.1"
IPV6_IP = "::1"
IPV6_NAME_CAP = 24

# OpenSSL cipher name -> (IANA name, key type, TLS 1.2 only). The servers are
# configured with OpenSSL names; the truth speaks IANA (docs/design.md canonical forms).
CIPHERS: dict[str, tuple[str, str, bool]] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ec", True),
    "ECDHE-ECDSA-AES256-GCM-SHA384": ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ec", True),
    "ECDHE-ECDSA-CHACHA20-POLY1305": ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ec",
                                      True),
    "ECDHE-ECDSA-AES128-SHA": ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ec", False),
    "ECDHE-ECDSA-AES256-SHA": ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ec", False),
    "ECDHE-RSA-AES128-GCM-SHA256": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "rsa", True),
    "ECDHE-RSA-AES256-GCM-SHA384": ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "rsa", True),
    "ECDHE-RSA-CHACHA20-POLY1305": ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "rsa", True),
    "ECDHE-RSA-AES128-SHA": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "rsa", False),
    "ECDHE-RSA-AES256-SHA": ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "rsa", False),
    "AES128-SHA": ("TLS_RSA_WITH_AES_128_CBC_SHA", "rsa", False),
    "AES256-GCM-SHA384": ("TLS_RSA_WITH_AES_256_GCM_SHA384", "rsa", True),
    # anonymous (no certificate): what Postfix's default cipher lists still hold (ECDH
    # only: Python's ssl servers have no DH parameters, so no DH_anon suite)
    "AECDH-AES256-SHA": ("TLS_ECDH_anon_WITH_AES_256_CBC_SHA", "any", False),
}
# The suites an anon_preferred server puts first (with its own order enforced).
ANON_FIRST = ("AECDH-AES256-SHA",)
# OpenSSL's default TLS 1.3 suites, in its default order (not configurable from
# Python 3.11's ssl, so every TLS 1.3 server has exactly these).
TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_AES_128_GCM_SHA256")

# How a signed world's domains are signed (sign_zones; profile "dnssec"): an unsigned zone
# (delegation without DS: insecure), a signed zone, and signed zones with one planted fault:
# the MX RRset's RRSIG expired / not yet valid / over altered data / missing, the parent's DS
# matching no key, an own MX host delegated to an unsigned zone of its own.
# DANE planted on the first own MX host of a signed domain (profile "dnssec"."dane"):
# DANE-EE matching the served key, DANE-TA matching the intermediate CA, a record matching
# nothing, a stale record beside a matching one, only a PKIX-EE record (unusable), none.
DANE_KINDS = ("ee", "ta", "mismatch", "rollover", "unusable", "none")
# DANE on an own MX host that is a CNAME (profile "dnssec"."dane_cname"; RFC 7672 §2.2.2,
# §8.1): TLSA at the CNAME target (the TLSA base domain) of DANE-EE, of DANE-TA with the
# target's server choosing its certificate by SNI (only SNI = the target gets a leaf that
# names it: a scanner sending the MX name gets a leaf naming neither), or matching nothing;
# or DANE-EE at the MX name itself with none at the target (the base is then the MX name).
DANE_CNAME_KINDS = ("ee", "ta_sni", "mismatch", "alias")
DNSSEC_KINDS = ("unsigned", "signed", "expired", "not_yet_valid", "altered", "stripped",
                "ds_mismatch", "unsigned_mx_zone")


# Behaviour names recorded in DomainSpec.traits. ``default`` has every one of
# these in every 1,000 domains (tests/test_testbed_world.py).
BEHAVIOURS: tuple[str, ...] = (
    ("structure:provider", "structure:per_customer_mx", "structure:own",
     "structure:shared_host", "structure:multi_mx", "structure:equal_preference",
     "structure:multi_address", "structure:ipv6", "structure:cname_mx", "structure:tlsa",
     "mx_kind:null_mx", "mx_kind:implicit", "mx_kind:none",
     "mx_host:nxdomain", "mx_host:no_data", "mx_host:servfail",
     "dns:nxdomain", "dns:servfail", "dns:dns_refused", "dns:dns_timeout", "dns:truncate")
    + tuple(f"smtp:{b}" for b in SMTP_BEHAVIOURS)
    + tuple(f"tls:{v}" for v in ("SSLv3",) + TLS_VERSIONS)
    + tuple(f"legacy:{name}" for name in CATALOGUE)
    + ("pref:server", "pref:client", "pref:anon", "key:ec", "key:rsa")
    + tuple(f"cert:{k}" for k in ("valid", "expired", "not_yet_valid", "self_signed",
                                    "wrong_name", "untrusted", "missing_intermediate",
                                    "sni_dependent", "name_mismatch_cname", "chain"))
    + tuple(f"sts_txt:{s}" for s in ("absent", "absent_other", "valid", "split",
                                       "with_other", "invalid", "multiple", "dns_error"))
    + tuple(f"tlsrpt:{s}" for s in ("absent", "valid", "split", "invalid", "multiple",
                                      "dns_error"))
    + tuple(f"policy:{b}" for b in POLICY_BEHAVIOURS)
    + ("mode:enforce", "mode:testing", "mode:none", "sts:mx_mismatch")
    + tuple(f"dnssec:{k}" for k in DNSSEC_KINDS)
)


@dataclass(frozen=True)
class Scale:
    """The scanner settings a world assumes; timing behaviours derive from them."""

    name: str
    scanner: ScannerSettings


SCALES = {
    "default": Scale("default", ScannerSettings()),
    # Tests: every timing behaviour still 3x away from these thresholds.
    "fast": Scale("fast", ScannerSettings(dns_timeout=1.0, connect_timeout=1.0,
                                          greeting_timeout=1.2, command_timeout=1.2,
                                          tls_timeout=2.0, policy_timeout=1.2)),
}


def load_profile(name_or_path: str | Path) -> dict[str, Any]:
    """A profile by name (``profiles/<name>.json``) or by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILE_DIR / f"{name_or_path}.json"
    try:
        with open(path, encoding="utf-8") as fh:
            profile = json.load(fh)
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.json")))
        raise ProfileError(f"no profile {str(name_or_path)!r} (shipped: {known})") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not JSON: {exc}") from None
    if not isinstance(profile, dict):
        raise ProfileError(f"{path}: a profile is a JSON object, not {type(profile).__name__}")
    profile.setdefault("name", path.stem)
    return profile


class _Ips:
    """The address plan (see model.py): sequential addresses per range."""

    def __init__(self) -> None:
        self._own_smtp = 0
        self._own_policy = 0

    @staticmethod
    def provider_smtp(p: int, k: int) -> str:
        return f"127.1.{p}.{k + 1}"

    @staticmethod
    def provider_policy(p: int) -> str:
        return f"127.2.{p}.1"

    def own_smtp(self) -> str:
        i = self._own_smtp
        self._own_smtp += 1
        return _spread(16, i)

    def own_policy(self) -> str:
        i = self._own_policy
        self._own_policy += 1
        return _spread(4, i)


def _spread(first: int, i: int) -> str:
    """The i-th address from 127.<first>.0.1 on, last octet 1..254."""
    per_16 = 256 * 254
    b = first + i // per_16
    rest = i % per_16
    if b > 254:
        raise ProfileError("world too large for the address plan")
    return f"127.{b}.{rest // 254}.{rest % 254 + 1}"


def _quote_txt(strings: Iterable[str]) -> str:
    out = []
    for s in strings:
        escaped = s.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'"{escaped}"')
    return " ".join(out)


def _split(text: str, rng: random.Random) -> tuple[str, ...]:
    """Split a record into 2-3 character-strings at arbitrary points (mid-token)."""
    if len(text) < 6:
        return (text,)
    cuts = sorted(rng.sample(range(1, len(text)), min(2, len(text) - 1) if len(text) > 12
                             else 1))
    parts, last = [], 0
    for c in cuts:
        parts.append(text[last:c])
        last = c
    parts.append(text[last:])
    return tuple(p for p in parts if p)


_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fa", "gu", "hi",
              "jo", "pe", "sa", "te", "wi", "xo", "yu")


class _Builder:
    def __init__(self, n: int, seed: int, profile: dict[str, Any], scale: Scale,
                 ports: Ports) -> None:
        self.n = n
        self.seed = seed
        self.profile = profile
        self.scale = scale
        self.ports = ports
        self.rng = random.Random(f"survey-world:{seed}:{profile['name']}")
        self.anon_rng = random.Random(f"survey-world:{seed}:{profile['name']}:anon")
        self.chain_rng = random.Random(f"survey-world:{seed}:{profile['name']}:chains")
        self.ips = _Ips()
        self.records: dict[str, list[DnsRecord]] = defaultdict(list)
        self.faults: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.mx_hosts: dict[str, MxHostSpec] = {}
        self.servers: dict[str, SmtpServerSpec] = {}
        self.cert_names: dict[str, list[str]] = defaultdict(list)
        self.policies: dict[str, PolicyHostSpec] = {}
        self.domains: list[DomainSpec] = []
        self.host_traits: dict[str, set[str]] = defaultdict(set)   # mx host -> traits
        self.shareable_hosts: list[str] = []
        self.ipv6_names: list[str] = []
        # exact quotas (quotas.py, profiles/published.json): the cohorts answer for decks
        self.cohorts = Cohorts(profile, n, self.rng) if profile.get("cohorts") else None
        self._decks()
        if self.cohorts is not None and self.cohorts.asked != {*COHORT_KEYS, CIPHER_SET}:
            raise RuntimeError(f"cohort keys without a deck: "
                               f"{sorted({*COHORT_KEYS, CIPHER_SET} - self.cohorts.asked)}")

    # -- decks ---------------------------------------------------------------------------

    def _deck(self, key: str, deck: Dealer) -> Dealer:
        """The deck of cohort key ``key`` (quotas.COHORT_KEYS): the cohort's, else ``deck``."""
        return deck if self.cohorts is None else self.cohorts.deck(key, deck)

    def _decks(self) -> None:
        p, rng = self.profile, self.rng
        cohort = self._deck
        try:
            own, sts, rpt = p["own"], p["mta_sts"], p["tlsrpt"]
            providers = p.get("providers", [])
            hosting = {f"provider:{i}": float(pr["share"]) for i, pr in enumerate(providers)}
            hosting["own"] = max(0.0, 1.0 - sum(hosting.values()))
            self.d_hosting = Deck(rng, hosting)
            self.d_dns = cohort("dns_status", Deck(rng, p["dns_status"]))
            self.d_truncate = cohort("truncate", flag_deck(rng, p.get("truncate", 0)))
            self.d_mx_kind = cohort("mx_kind", Deck(rng, own["mx_kind"]))
            self.d_mx_count = cohort("mx_count", Deck(rng, own["mx_count"]))
            self.d_equal_pref = cohort("equal_preference",
                                       flag_deck(rng, own.get("equal_preference", 0)))
            self.d_shared_host = cohort("shared_host", flag_deck(rng, own.get("shared_host", 0)))
            self.d_host = cohort("host", Deck(rng, own["host"]))
            self.d_alias = flag_deck(rng, own.get("cname_cert_alias", 0.5))
            self.d_tlsa = cohort("tlsa", flag_deck(rng, own.get("tlsa", 0)))
            self.d_behaviour = cohort("behaviour", Deck(rng, own["behaviour"]))
            # seconds a slow_banner server waits (absent: a quarter of the greeting timeout)
            self.slow_banner_delay = own.get("slow_banner_delay")
            self.d_versions = cohort("tls_versions", Deck(rng, own["tls_versions"]))
            self.d_pref = cohort("server_preference", Deck(rng, own["server_preference"]))
            self.d_key = cohort("key_type", Deck(rng, own["key_type"]))
            self.d_cert = cohort("cert_kind", Deck(rng, own["cert_kind"]))
            # its own random stream, so worlds of older profiles stay the same
            self.d_anon = flag_deck(self.anon_rng, own.get("anon_preferred", 0))
            self.d_chain_flag = flag_deck(self.chain_rng, own.get("chain_kinds", 0))
            self.d_chain = Deck(self.chain_rng, {name: 1 for name in chains.KIND_NAMES})
            legacy = own.get("legacy", {})
            self.d_legacy = flag_deck(rng, legacy.get("share", 0))
            self.d_legacy_config = Deck(rng, legacy.get("configs") or {"-": 1})
            self.cipher_sets = own["ciphers"]
            self.d_cipher = {k: cohort(CIPHER_SET, Deck(rng, {str(i): 1 for i in range(len(v))}))
                             for k, v in own["ciphers"].items()}
            self.d_sts = cohort("sts_txt", Deck(rng, sts["txt"]))
            self.d_sts_other = cohort("sts_absent_other",
                                      flag_deck(rng, sts.get("absent_other", 0)))
            self.d_sts_valid = cohort("sts_valid_shape", Deck(rng, sts["valid_shape"]))
            self.d_sts_invalid = cohort("sts_invalid_shape", Deck(rng, sts["invalid_shape"]))
            self.d_policy = cohort("policy", Deck(rng, sts["policy"]))
            self.d_mode = cohort("mode", Deck(rng, sts["mode"]))
            self.d_mismatch = cohort("mx_mismatch", flag_deck(rng, sts.get("mx_mismatch", 0)))
            self.d_wildcard = cohort("wildcard", flag_deck(rng, sts.get("wildcard", 0)))
            self.d_crlf = cohort("crlf", flag_deck(rng, sts.get("crlf", 0.5)))
            self.max_ages = [int(x) for x in sts.get("max_age", [86400])]
            self.d_rpt = cohort("tlsrpt", Deck(rng, rpt["txt"]))
            self.d_rpt_valid = cohort("tlsrpt_valid_shape", Deck(rng, rpt["valid_shape"]))
            self.d_rpt_invalid = cohort("tlsrpt_invalid_shape", Deck(rng, rpt["invalid_shape"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ProfileError):
                raise
            raise ProfileError(f"profile {p.get('name')!r}: {_what(exc)}") from None
        for label in own["behaviour"]:
            if label not in SMTP_BEHAVIOURS:
                raise ProfileError(f"unknown SMTP behaviour {label!r}")
        for label in sts["policy"]:
            if label not in POLICY_BEHAVIOURS:
                raise ProfileError(f"unknown policy behaviour {label!r}")
        for label in own.get("legacy", {}).get("configs", {}):
            if label not in CATALOGUE:
                raise ProfileError(f"unknown legacy TLS configuration {label!r} "
                                   f"(legacy_tls.CATALOGUE: {', '.join(CATALOGUE)})")

    # -- helpers -------------------------------------------------------------------------

    def add(self, name: str, rtype: str, value: str, ttl: int = 300) -> None:
        self.records[name].append(DnsRecord(rtype, value, ttl))

    def fault(self, name: str, fault: str, types: tuple[str, ...] = ()) -> None:
        self.faults[name] = (fault, types)

    def token(self, k: int = 10) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase + string.digits)
                       for _ in range(k))

    def domain_name(self, i: int) -> str:
        word = "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(2, 3)))
        return f"{word}{i}.test"

    # -- SMTP servers --------------------------------------------------------------------

    def make_server(self, ip: str, behaviour: str, hostname: str, tls: TlsSpec | None,
                    owner: str, limit: int = 0) -> SmtpServerSpec:
        s = self.scale.scanner
        rng = self.rng
        size = rng.choice((10240000, 20480000, 52428800, 35882577))
        base = ("PIPELINING", f"SIZE {size}", "8BITMIME", "ENHANCEDSTATUSCODES")
        starts_tls = behaviour not in ("no_starttls",)
        ehlo: tuple[str, ...] = base + (("STARTTLS",) if starts_tls else ())
        ehlo_tls: tuple[str, ...] = base + ("AUTH PLAIN LOGIN",) if tls else ()
        banner_word = rng.choice(("ESMTP", "ESMTP Postfix", "ESMTP ready",
                                  "Microsoft ESMTP MAIL Service ready"))
        greeting = Reply(220, (f"{hostname} {banner_word}",))
        kw: dict[str, Any] = {}
        if behaviour == "multiline_banner":
            greeting = Reply(220, (f"{hostname} {banner_word}",
                                   "Unsolicited bulk email is not accepted here",
                                   "Service ready"))
        elif behaviour == "banner_421_rate_limit":
            greeting = Reply(421, ((f"4.7.0 {hostname} Error: too many connections from "
                                    "your IP address; rate limit exceeded, try again later"),))
        elif behaviour == "banner_421":
            greeting = Reply(421, ((f"4.3.2 {hostname} Service shutting down, closing "
                                    "transmission channel"),))
        elif behaviour == "banner_554":
            greeting = Reply(554, (f"5.7.1 {hostname} No SMTP service here",))
        elif behaviour == "ehlo_4xx":
            kw["ehlo_reject"] = Reply(
                451, ("4.3.0 Temporary local problem, please come back later",))
        elif behaviour == "slow_banner":
            kw["delay"] = (float(self.slow_banner_delay) if self.slow_banner_delay is not None
                           else round(s.greeting_timeout / 4, 3))
        elif behaviour == "tarpit":
            kw["delay"] = round(min(s.greeting_timeout, s.command_timeout) / 4, 3)
            kw["duration"] = round(s.greeting_timeout * 3.5, 3)
        elif behaviour == "per_ip_limit":
            kw["limit"] = max(limit, s.per_ip_connections + 1)
            kw["refusal"] = Reply(421, (("4.7.0 Too many concurrent connections from your IP "
                                         "address (connection limit)"),))
        elif behaviour == "greylist":
            kw["limit"] = max(1, min(limit or 1, s.retries))
            kw["refusal"] = Reply(421, ("4.7.1 Greylisted, please try again later",))
        elif behaviour == "endless_banner":
            greeting = Reply(220, (f"{hostname} {banner_word}", "Please wait, checking your IP",
                                   "Still checking"))
            kw.update(duration=round(s.greeting_timeout * 3.5, 3), size=32 * 1024 * 1024)
        elif behaviour == "long_line":
            kw.update(duration=round(s.greeting_timeout * 3.5, 3), size=10 * 1024 * 1024)
        elif behaviour == "garbage":
            kw.update(duration=round(s.greeting_timeout * 3.5, 3),
                      size=2048 + rng.randrange(4096))
        elif behaviour == "tls_truncated":
            kw.update(duration=round(s.tls_timeout * 3.5, 3), size=64 + rng.randrange(2048))
        elif behaviour == "hostile_text":
            greeting = Reply(220, (
                f"{hostname} {banner_word} <script>alert('banner')</script>",
                "\x1b[2J\x1b[1;31mTERMINAL\x1b[0m <img src=x onerror=alert(1)>",
                "\x1b]0;owned\x07 &amp; <b>bold</b> \u202egnp.exe"))
            hostile_caps = ("X-HTML <a href=\"javascript:alert(1)\">click</a></td>",
                            ("X-ESC \x1b[1;33mYELLOW\x1b[0m\x1b]8;;http://evil.test\x07link"
                             "\x1b]8;;\x07"))
            ehlo = ehlo[:2] + hostile_caps + ehlo[2:]
            ehlo_tls = ehlo_tls + hostile_caps
        if behaviour == "starttls_454":
            kw["starttls_reply"] = Reply(454, ("4.7.0 TLS not available due to local problem",))
        elif behaviour == "starttls_500":
            kw["starttls_reply"] = Reply(500, ("5.5.1 Command unrecognized",))
        elif starts_tls:
            kw["starttls_reply"] = Reply(220, ("2.0.0 Ready to start TLS",))
        return SmtpServerSpec(ip=ip, behaviour=behaviour, hostname=hostname, greeting=greeting,
                              ehlo=ehlo, ehlo_tls=ehlo_tls, tls=tls, owner=owner, **kw)

    def own_tls(self, *, legacy_ok: bool = True) -> TlsSpec:
        if legacy_ok and self.d_legacy.draw() == "yes":
            config = CATALOGUE[self.d_legacy_config.draw()]
            return config.spec(cert_kind=self.d_cert.draw())
        versions = tuple(self.d_versions.draw().split())
        key = self.d_key.draw()
        cert_kind = None
        tls13_only = False
        if self.d_chain_flag.draw() == "yes":
            # a chain kind (every certificate defect alone, cross-signs, ...): the suites
            # follow its leaf's key, the versions what OpenSSL can serve with that leaf
            name = self.d_chain.draw()
            cert_kind = CHAIN_PREFIX + name
            kind = chains.kind(name, "h.invalid")
            key = kind.leaf_key_type
            tls13_only = kind.tls13_only
            if tls13_only:
                versions = ("TLSv1.3",)
        suites = list(self.cipher_sets[key][int(self.d_cipher[key].draw())])
        legacy = bool({"TLSv1.0", "TLSv1.1"} & set(versions))
        if legacy and all(CIPHERS[c][2] for c in suites):
            suites.append("ECDHE-ECDSA-AES128-SHA" if key == "ec" else "ECDHE-RSA-AES128-SHA")
        preference = self.d_pref.draw() == "true"
        if self.d_anon.draw() == "yes" and not tls13_only:
            # prefers anonymous suites (no TLS 1.3, which has none): a sender that verifies
            # certificates offers none and still gets the chain
            suites = [*ANON_FIRST, *suites]
            preference = True
            versions = tuple(v for v in versions if v != "TLSv1.3") or ("TLSv1.2",)
        return TlsSpec(versions=versions, ciphers=":".join(suites),
                       server_preference=preference,
                       cert_kind=cert_kind or self.d_cert.draw(), key_type=key)

    # the only behaviours after which the TLS setup matters
    TLS_BEHAVIOURS = ("normal", "multiline_banner", "slow_banner", "per_ip_limit", "greylist",
                      "hostile_text")

    def own_server(self, hostname: str, *, behaviour: str | None = None,
                   tls: TlsSpec | None = None) -> str:
        ip = self.ips.own_smtp()
        behaviour = behaviour or self.d_behaviour.draw()
        if behaviour in self.TLS_BEHAVIOURS:
            tls = tls or self.own_tls()
        else:
            tls = None
        self.servers[ip] = self.make_server(ip, behaviour, hostname, tls, "own")
        return ip

    # -- providers -----------------------------------------------------------------------

    def build_providers(self) -> None:
        self.provider_info: list[dict[str, Any]] = []
        for p_index, pr in enumerate(self.profile.get("providers", [])):
            name = pr["name"]
            tls_cfg = pr.get("tls")
            hosts: list[tuple[str, int]] = []
            next_ip = 0
            host_ips: dict[str, tuple[str, ...]] = {}
            ips_per_host = int(pr.get("ips_per_host", 1))
            if pr["mx_names"] == "per_customer":
                pool = tuple(_Ips.provider_smtp(p_index, k) for k in range(int(pr["ips"])))
                cert_names = [f"*.mail.{name}.test"]
                for ip in pool:
                    self.cert_names[ip].extend(cert_names)
            else:
                pool = ()
                for label, pref in pr["hosts"]:
                    host = f"{label}.{name}.test"
                    ips = tuple(_Ips.provider_smtp(p_index, next_ip + k)
                                for k in range(ips_per_host))
                    next_ip += ips_per_host
                    if pr.get("ipv6_host") == label:
                        ips = ips + (IPV6_IP,)
                        self.ipv6_names.append(host)
                        self.host_traits[host].add("structure:ipv6")
                    hosts.append((host, int(pref)))
                    host_ips[host] = ips
                    self.mx_hosts[host] = MxHostSpec(host, ips, owner=name)
                    for ip in ips:
                        if ip != IPV6_IP:
                            self.add(host, "A", ip)
                            self.cert_names[ip].append(host)
                        else:
                            self.add(host, "AAAA", ip)
                    if len(ips) > 1:
                        self.host_traits[host].add("structure:multi_address")
                pool = tuple(ip for ips in host_ips.values() for ip in ips if ip != IPV6_IP)
            for k, ip in enumerate(pool):
                tls = None
                if tls_cfg:
                    tls = TlsSpec(versions=tuple(tls_cfg["versions"]),
                                  ciphers=":".join(tls_cfg["ciphers"]),
                                  server_preference=bool(tls_cfg["server_preference"]),
                                  cert_kind=tls_cfg.get("cert_kind", "valid"),
                                  key_type=tls_cfg.get("key_type", "ec"))
                hostname = (f"out{k + 1}.mail.{name}.test" if pr["mx_names"] == "per_customer"
                            else self.cert_names[ip][0])
                self.servers[ip] = self.make_server(ip, pr.get("behaviour", "normal"), hostname,
                                                    tls, name, int(pr.get("limit", 0)))
            self.provider_info.append({"name": name, "cfg": pr, "hosts": hosts, "pool": pool,
                                       "policy_ip": _Ips.provider_policy(p_index)})

    # -- domains ---------------------------------------------------------------------------

    def build(self) -> World:
        self.build_providers()
        for i in range(self.n):
            self.build_domain(i)
        self.finish_servers()
        dns_latency = self.apply_timing()
        zones = self.sign_zones()
        dns = self.build_dns()
        return World(seed=self.seed, profile=self.profile["name"], domains=tuple(self.domains),
                     mx_hosts=self.mx_hosts, smtp_servers=self.servers,
                     policy_hosts=self.policies, dns=dns, zones=zones, resolver=RESOLVER_IP,
                     ports=self.ports, scanner=self.scale.scanner, dns_latency=dns_latency)

    def apply_timing(self) -> Latency | None:
        """The profile's ``timing`` block (profiles/realistic.json) onto the servers.

        Each SMTP server gets a round-trip time and greeting delays, each policy host a
        round-trip time, the world a DNS answer delay, all drawn from a random stream
        of their own (so the rest of the world is the same with or without timing).
        Values are seconds at the default scale; another scale (``fast``) compresses
        them by its greeting timeout over the default's (DNS: its DNS timeout over the
        default's), as it compresses every timing behaviour. A profile whose slowest
        greeting could come within 2x of the greeting timeout is refused: the truth
        must not depend on timing.
        """
        timing = self.profile.get("timing")
        if not timing:
            return None
        s, default = self.scale.scanner, ScannerSettings()
        k_smtp = s.greeting_timeout / default.greeting_timeout
        k_dns = s.dns_timeout / default.dns_timeout
        try:
            rtt = _latency(timing["rtt"], k_smtp)
            greeting = _latency(timing["greeting"], k_smtp)
            pause = timing.get("greet_pause", {})
            pause_share, pause_wait = float(pause.get("share", 0)), float(pause.get("wait", 0))
            screen = timing.get("postscreen", {})
            screen_share = float(screen.get("share", 0))
            screen_wait = float(screen.get("wait", 0))
            dns = _latency(timing["dns"], k_dns) if "dns" in timing else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"profile {self.profile['name']!r}: timing: {_what(exc)}") from None
        # a server pauses postscreen's way or sendmail's, never both
        worst = rtt.cap + greeting.cap + max(pause_wait, screen_wait) * k_smtp
        if worst * 2 > s.greeting_timeout or rtt.cap * 2 > min(s.connect_timeout,
                                                                 s.command_timeout):
            raise ProfileError(f"profile {self.profile['name']!r}: timing: a greeting may "
                               f"take {worst:.1f} s, within 2x of the greeting timeout "
                               f"({s.greeting_timeout} s)")
        if dns is not None and dns.cap * 2 > s.dns_timeout:
            raise ProfileError(f"profile {self.profile['name']!r}: timing: DNS answers may "
                               f"take {dns.cap} s, within 2x of the DNS timeout")
        rng = random.Random(f"survey-world:{self.seed}:{self.profile['name']}:timing")
        for ip in sorted(self.servers):
            server = self.servers[ip]
            banner = greeting.at(rng.random())
            pause = rng.random()
            first = 0.0
            if server.behaviour == "slow_banner":   # its own pause stands for these
                pass
            elif pause < screen_share:
                first = screen_wait * k_smtp
            elif pause < screen_share + pause_share:
                banner += pause_wait * k_smtp
            self.servers[ip] = replace(server, rtt=rtt.at(rng.random()),
                                       banner_delay=round(banner, 4),
                                       first_banner_delay=round(first, 4))
        for domain in sorted(self.policies):
            policy = self.policies[domain]
            if policy.ip is not None:
                self.policies[domain] = replace(policy, rtt=rtt.at(rng.random()))
        return dns

    def sign_zones(self) -> dict[str, ZoneSpec]:
        """A signed world (profile ``dnssec``): the root and ``test`` signed, every domain
        with records its own zone, signed or not, some with a planted fault. Drawn from a
        random stream of its own, so the rest of the world is the same signed or not."""
        cfg = self.profile.get("dnssec")
        if not cfg:
            return {}
        rng = random.Random(f"survey-world-dnssec:{self.seed}:{self.profile['name']}")
        shares = {"signed": float(cfg.get("signed", 0))}
        shares.update({k: float(v) for k, v in cfg.get("faults", {}).items()})
        for kind in shares:
            if kind not in DNSSEC_KINDS or kind == "unsigned":
                raise ProfileError(f"unknown dnssec kind {kind!r}")
        shares["unsigned"] = max(0.0, 1.0 - sum(shares.values()))
        deck = Deck(rng, shares)
        dane = {k: float(v) for k, v in cfg.get("dane", {}).items()}
        for kind in dane:
            if kind not in DANE_KINDS:
                raise ProfileError(f"unknown dane kind {kind!r}")
        dane_deck = Deck(rng, dane) if dane else None
        # a stream of its own: worlds without CNAME'd DANE hosts stay as they were
        cname_rng = random.Random(f"survey-world-dane-cname:{self.seed}:{self.profile['name']}")
        dane_cname = {k: float(v) for k, v in cfg.get("dane_cname", {}).items()}
        for kind in dane_cname:
            if kind not in DANE_CNAME_KINDS:
                raise ProfileError(f"unknown dane_cname kind {kind!r}")
        cname_deck = Deck(cname_rng, dane_cname) if dane_cname else None
        zones = {"": ZoneSpec(""), TLD: ZoneSpec(TLD)}
        self.dnssec_faults: dict[str, tuple[str, tuple[str, ...]]] = {}
        for k, d in enumerate(self.domains):
            if d.name not in self.records and d.name not in self.faults:
                continue            # an NXDOMAIN domain: no zone, its name denied in test.
            kind = deck.draw()
            has_mx = any(r.rtype == "MX" for r in self.records.get(d.name, ()))
            own_hosts = [m.host for m in d.mx if m.host.endswith("." + d.name)
                         and self.mx_hosts.get(m.host) is not None
                         and self.mx_hosts[m.host].ips and not self.mx_hosts[m.host].cname]
            if kind in ("expired", "not_yet_valid", "altered", "stripped") and not has_mx:
                kind = "signed"
            if kind == "unsigned_mx_zone" and not own_hosts:
                kind = "signed"
            if kind == "unsigned":
                zones[d.name] = ZoneSpec(d.name, signed=False, ds=False)
            elif kind == "ds_mismatch":
                zones[d.name] = ZoneSpec(d.name, fault="ds_mismatch")
            else:
                zones[d.name] = ZoneSpec(d.name)
            if kind in ("expired", "not_yet_valid", "altered"):
                self.dnssec_faults[d.name] = (kind, ("MX",))
            elif kind == "stripped":
                self.dnssec_faults[d.name] = ("unsigned", ("MX",))
            elif kind == "unsigned_mx_zone":
                host = own_hosts[0]
                zones[host] = ZoneSpec(host, signed=False, ds=False)
            extra = {f"dnssec:{kind}"}
            if kind == "signed" and own_hosts and dane_deck is not None:
                planted = self.plant_dane(own_hosts[0], dane_deck.draw(), rng)
                if planted:
                    extra.add(f"dane:{planted}")
            cname_hosts = [m.host for m in d.mx if m.host.endswith("." + d.name)
                           and self.mx_hosts.get(m.host) is not None
                           and self.mx_hosts[m.host].ips
                           and (self.mx_hosts[m.host].cname or "").endswith("." + d.name)]
            if kind == "signed" and cname_hosts and cname_deck is not None:
                planted = self.plant_dane_cname(cname_hosts[0], cname_deck.draw(), cname_rng)
                if planted:
                    extra.add(f"dane_cname:{planted}")
            self.domains[k] = replace(d, traits=tuple(sorted(set(d.traits) | extra)))
        return zones

    def plant_dane(self, host: str, kind: str, rng: random.Random) -> str | None:
        """TLSA records at ``_25._tcp.<host>`` of one DANE_KINDS kind (None: not planted).
        Matching data is named (``@leaf-ec``...): the served keys exist only in the
        serving process (signing.tlsa_placeholders)."""
        owner = f"_25._tcp.{host}"
        if owner in self.records or kind == "none":
            return None
        spec = self.mx_hosts[host]
        server = self.servers.get(spec.ips[0])
        tls = server.tls if server is not None else None
        if tls is None or tls.cert_kind.startswith("chain:"):
            kind = "mismatch"
        elif kind == "ta" and (tls.cert_kind != "valid" or host not in tls.names):
            kind = "ee"
        stale = f"3 1 1 {rng.getrandbits(256):064x}"
        ee = f"3 1 1 @leaf-{tls.key_type}" if tls is not None else stale
        records = {"ee": [ee], "ta": ["2 1 1 @intermediate"], "mismatch": [stale],
                   "rollover": [stale, ee], "unusable": [f"1 1 1 {rng.getrandbits(256):064x}"],
                   }[kind]
        for value in records:
            self.add(owner, "TLSA", value)
        return kind

    def plant_dane_cname(self, host: str, kind: str, rng: random.Random) -> str | None:
        """TLSA for an own CNAME'd MX host of one DANE_CNAME_KINDS kind (None: not planted):
        at ``_25._tcp.<target>``, or at ``_25._tcp.<host>`` for ``alias``. ``ta_sni`` makes
        the target's server choose its leaf by SNI (pki ``sni_dependent``: a leaf for each
        of its names, the default leaf names none), so the DANE verdict depends on the SNI
        a scanner sends (RFC 7672 §8.1: the TLSA base domain, the target)."""
        spec = self.mx_hosts[host]
        assert spec.cname is not None
        ip = spec.ips[0]
        server = self.servers.get(ip)
        tls = server.tls if server is not None else None
        if tls is None or tls.cert_kind.startswith("chain:"):
            kind = "mismatch"
        elif kind == "ta_sni" and (tls.cert_kind != "valid" or tls.engine != "openssl"
                                   or spec.cname not in tls.names):
            kind = "ee"
        owner = f"_25._tcp.{host if kind == 'alias' else spec.cname}"
        if owner in self.records:
            return None
        if kind == "ta_sni":
            assert server is not None and tls is not None
            self.servers[ip] = replace(server, tls=replace(tls, cert_kind="sni_dependent"))
        stale = f"3 1 1 {rng.getrandbits(256):064x}"
        ee = f"3 1 1 @leaf-{tls.key_type}" if tls is not None else stale
        value = {"ee": ee, "alias": ee, "ta_sni": "2 1 1 @intermediate",
                 "mismatch": stale}[kind]
        self.add(owner, "TLSA", value)
        return kind

    def build_domain(self, i: int) -> None:
        if self.cohorts is not None:
            self.cohorts.enter(i)
        name = self.domain_name(i)
        traits: set[str] = set()
        hosting = self.d_hosting.draw()
        dns_status = self.d_dns.draw()
        owner = "own"
        mx: tuple[MxRef, ...] = ()
        mx_kind: str | None = None
        provider = None
        if hosting.startswith("provider:"):
            provider = self.provider_info[int(hosting.split(":")[1])]
            owner = provider["name"]
        if dns_status == "nxdomain":
            traits.add("dns:nxdomain")
            self.domains.append(DomainSpec(name=name, rank=i + 1, owner=owner,
                                           dns_status="nxdomain", mx_kind=None,
                                           traits=tuple(sorted(traits))))
            return  # no records at all: every name under it is NXDOMAIN too
        if dns_status != "ok":
            traits.add(f"dns:{dns_status}")
            fault = {"servfail": "servfail", "dns_refused": "refused",
                     "dns_timeout": "timeout"}[dns_status]
            self.fault(name, fault, ("MX",))
            self.add(name, "TXT", _quote_txt(["v=spf1 -all"]))
        else:
            if self.d_truncate.draw() == "yes":
                traits.add("dns:truncate")
                self.fault(name, "truncate", ("MX",))
            if provider is not None:
                mx_kind = "mx"
                mx = self.provider_mx(name, provider, traits)
            else:
                mx_kind = self.d_mx_kind.draw()
                if mx_kind == "mx":
                    mx = self.own_mx(name, traits)
                elif mx_kind == "null_mx":
                    self.add(name, "MX", "0 .")
                elif mx_kind == "implicit":
                    ip = self.own_server(name)
                    self.cert_names[ip].append(name)
                    self.add(name, "A", ip)
                    self.mx_hosts[name] = MxHostSpec(name, (ip,), owner="own")
                else:
                    self.add(name, "TXT", _quote_txt(["v=spf1 -all"]))
                if mx_kind != "mx":
                    traits.add(f"mx_kind:{mx_kind}")
                    dns_status = "no_data" if mx_kind in ("implicit", "none") else "ok"
        traits.add("structure:own" if provider is None else "structure:provider")
        if len(mx) > 1:
            traits.add("structure:multi_mx")
            if len({m.preference for m in mx}) < len(mx):
                traits.add("structure:equal_preference")
        mta_sts = self.build_mta_sts(name, mx, mx_kind, provider, traits)
        tlsrpt = self.build_tlsrpt(name, traits)
        hosts = [m.host for m in mx] + ([name] if mx_kind == "implicit" else [])
        self.domains.append(DomainSpec(
            name=name, rank=i + 1, owner=owner, dns_status=dns_status, mx_kind=mx_kind,
            mx=mx, mta_sts=mta_sts, tlsrpt=tlsrpt,
            traits=tuple(sorted(traits)) + tuple(f"@host:{h}" for h in hosts)))

    def provider_mx(self, domain: str, provider: dict[str, Any],
                    traits: set[str]) -> tuple[MxRef, ...]:
        cfg, name = provider["cfg"], provider["name"]
        if cfg["mx_names"] == "per_customer":
            host = f"{domain.replace('.', '-')}.mail.{name}.test"
            pool = provider["pool"]
            start = self.rng.randrange(len(pool))
            ips = tuple(pool[(start + k) % len(pool)]
                        for k in range(min(int(cfg.get("ips_per_host", 1)), len(pool))))
            for ip in ips:
                self.add(host, "A", ip)
            self.mx_hosts[host] = MxHostSpec(host, ips, owner=name)
            traits.add("structure:per_customer_mx")
            if len(ips) > 1:
                traits.add("structure:multi_address")
            self.add(domain, "MX", f"10 {host}.")
            return (MxRef(host, 10),)
        if cfg["mx_names"] == "cname" and self.rng.random() < float(cfg.get("cname_share", 0)):
            target, pref = provider["hosts"][0]
            alias = f"mail.{domain}"
            self.add(alias, "CNAME", f"{target}.")
            self.mx_hosts[alias] = MxHostSpec(alias, self.mx_hosts[target].ips, cname=target,
                                              owner=name)
            traits.add("structure:cname_mx")
            traits.add("cert:name_mismatch_cname")
            mx: tuple[MxRef, ...] = (MxRef(alias, pref),)
        else:
            mx = tuple(MxRef(h, p) for h, p in provider["hosts"])
        for ref in mx:
            traits |= self.host_traits[ref.host]
        for ref in mx:
            self.add(domain, "MX", f"{ref.preference} {ref.host}.")
        return mx

    def own_mx(self, domain: str, traits: set[str]) -> tuple[MxRef, ...]:
        count = int(self.d_mx_count.draw())
        equal = self.d_equal_pref.draw() == "yes"
        refs: list[MxRef] = []
        if self.shareable_hosts and self.d_shared_host.draw() == "yes":
            host = self.rng.choice(self.shareable_hosts)
            traits.add("structure:shared_host")
            refs.append(MxRef(host, 10))
            traits |= self.host_traits[host]
            count -= 1
        for _ in range(count):
            pref = 10 if equal else 10 * (len(refs) + 1)
            host = f"mx{len(refs) + 1}.{domain}"
            kind = self.d_host.draw()
            if kind == "sni_pair":
                second = f"mx{len(refs) + 2}.{domain}"
                self.sni_pair(host, second, traits)
                refs.append(MxRef(host, pref))
                refs.append(MxRef(second, pref + (0 if equal else 5)))
                continue
            self.own_host(host, kind, traits)
            refs.append(MxRef(host, pref))
        for ref in refs:
            self.add(domain, "MX", f"{ref.preference} {ref.host}.")
        return tuple(refs)

    def own_host(self, host: str, kind: str, traits: set[str]) -> None:
        """Create an own MX host of ``kind`` (and its server or servers)."""
        mine = self.host_traits[host]
        self._own_host(host, kind, mine)
        traits |= mine

    def _own_host(self, host: str, kind: str, traits: set[str]) -> None:
        if kind == "ipv6" and len(self.ipv6_names) >= IPV6_NAME_CAP:
            kind = "plain"
        if kind in ("nxdomain", "no_data", "servfail"):
            traits.add(f"mx_host:{kind}")
            if kind == "no_data":
                self.add(host, "TXT", _quote_txt(["decommissioned"]))
            elif kind == "servfail":
                self.fault(host, "servfail", ("A", "AAAA"))
            self.mx_hosts[host] = MxHostSpec(host, (), status=kind, owner="own")
            return
        if kind == "cname":
            target = f"srv-{self.token(6)}.{host.split('.', 1)[1]}"
            ip = self.own_server(target)
            self.add(target, "A", ip)
            self.add(host, "CNAME", f"{target}.")
            self.cert_names[ip].append(target)
            if self.d_alias.draw() == "yes":
                self.cert_names[ip].append(host)
            else:
                traits.add("cert:name_mismatch_cname")
            self.mx_hosts[host] = MxHostSpec(host, (ip,), cname=target, owner="own")
            self.mx_hosts[target] = MxHostSpec(target, (ip,), owner="own")
            traits.add("structure:cname_mx")
            return
        ips = [self.own_server(host)]
        if kind == "multi_address":
            first = self.servers[ips[0]]
            ip2 = self.ips.own_smtp()
            self.servers[ip2] = replace(first, ip=ip2)
            ips.append(ip2)
            traits.add("structure:multi_address")
        for ip in ips:
            self.add(host, "A", ip)
            self.cert_names[ip].append(host)
        if kind == "ipv6":
            ips.append(IPV6_IP)
            self.add(host, "AAAA", IPV6_IP)
            self.ipv6_names.append(host)
            traits.add("structure:ipv6")
        if self.d_tlsa.draw() == "yes":
            self.add(f"_{self.ports.smtp}._tcp.{host}", "TLSA",
                     f"3 1 1 {self.rng.getrandbits(256):064x}")
            traits.add("structure:tlsa")
        self.mx_hosts[host] = MxHostSpec(host, tuple(ips), owner="own")
        self.shareable_hosts.append(host)

    def sni_pair(self, first: str, second: str, traits: set[str]) -> None:
        """Two MX names on one address whose certificate depends on SNI: only the
        first name gets its own leaf, the second gets the default (mismatch)."""
        tls = replace(self.own_tls(legacy_ok=False), cert_kind="sni_dependent")
        ip = self.own_server(first, behaviour="normal", tls=tls)
        self.cert_names[ip].append(first)
        for host in (first, second):
            self.add(host, "A", ip)
            self.mx_hosts[host] = MxHostSpec(host, (ip,), owner="own")

    # -- MTA-STS and TLSRPT --------------------------------------------------------------

    def build_mta_sts(self, domain: str, mx: tuple[MxRef, ...], mx_kind: str | None,
                      provider: dict[str, Any] | None, traits: set[str]) -> TxtSpec:
        status = self.d_sts.draw()
        owner = f"_mta-sts.{domain}"
        rng = self.rng
        if status == "absent":
            traits.add("sts_txt:absent")
            if self.d_sts_other.draw() == "yes":
                other = f"site-verification={self.token(16)}"
                self.add(owner, "TXT", _quote_txt([other]))
                traits.add("sts_txt:absent_other")
                return TxtSpec("absent", (other,), shape="other")
            return TxtSpec("absent", ())
        if status == "dns_error":
            traits.add("sts_txt:dns_error")
            self.fault(owner, rng.choice(("servfail", "timeout")), ("TXT",))
            return TxtSpec("dns_error", None, shape=self.faults[owner][0])
        sts_id = f"{rng.randrange(2019, 2026)}{rng.randrange(1, 13):02d}{self.token(8)}"
        if status == "multiple":
            traits.add("sts_txt:multiple")
            records = (f"v=STSv1; id={sts_id};", f"v=STSv1; id={sts_id}b;")
            for r in records:
                self.add(owner, "TXT", _quote_txt([r]))
            return TxtSpec("multiple", tuple(sorted(records)), shape="two")
        if status == "invalid":
            traits.add("sts_txt:invalid")
            shape = self.d_sts_invalid.draw()
            record = {"invalid_id": f"v=STSv1; id={sts_id[:4]}-{sts_id[4:]};",
                      "missing_id": "v=STSv1; ext=1;",
                      "syntax": f"v=STSv1; id={sts_id} "}[shape]
            self.add(owner, "TXT", _quote_txt([record]))
            return TxtSpec("invalid", (record,), shape=shape)
        # valid
        traits.add("sts_txt:valid")
        shape = self.d_sts_valid.draw()
        record = f"v=STSv1; id={sts_id};"
        txt = [record]
        if shape == "split":
            traits.add("sts_txt:split")
            self.add(owner, "TXT", _quote_txt(_split(record, rng)))
        else:
            self.add(owner, "TXT", _quote_txt([record]))
        if shape == "with_other":
            traits.add("sts_txt:with_other")
            other = f"v=spf1 include:{domain} -all"
            self.add(owner, "TXT", _quote_txt([other]))
            txt.append(other)
        self.build_policy(domain, mx, mx_kind, provider, traits)
        return TxtSpec("valid", tuple(sorted(txt)), id=sts_id, shape=shape)

    def build_policy(self, domain: str, mx: tuple[MxRef, ...], mx_kind: str | None,
                     provider: dict[str, Any] | None, traits: set[str]) -> None:
        behaviour = self.d_policy.draw()
        traits.add(f"policy:{behaviour}")
        rng, s = self.rng, self.scale.scanner
        mode = self.d_mode.draw() if behaviour != "missing_mode" else "enforce"
        max_age = rng.choice(self.max_ages)
        hosts = [m.host for m in mx] or ([domain] if mx_kind == "implicit" else [])
        if provider is not None and provider["cfg"].get("policy_patterns") \
                and not any(self.mx_hosts[h].cname for h in hosts):
            patterns = list(provider["cfg"]["policy_patterns"])
        elif hosts and self.d_wildcard.draw() == "yes" and all(
                h.endswith("." + domain) and h.count(".") == domain.count(".") + 1
                for h in hosts):
            patterns = [f"*.{domain}"]
        else:
            patterns = list(dict.fromkeys(hosts)) or [f"mx.{domain}"]
        if self.d_mismatch.draw() == "yes" and mode != "none":
            traits.add("sts:mx_mismatch")
            patterns = patterns[1:] if len(patterns) > 1 else [f"mail-old.{domain}"]
        lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {p}" for p in patterns] + [
            f"max_age: {max_age}"]
        if behaviour == "invalid_version":
            lines[0] = "version: STSv2"
        elif behaviour == "invalid_mode":
            lines[1] = "mode: require"
        elif behaviour == "invalid_max_age":
            lines[-1] = f"max_age: +{max_age}"
        elif behaviour == "invalid_mx":
            lines[2] = f"mx: mx*.{domain}"
        elif behaviour == "missing_version":
            lines = lines[1:]
        elif behaviour == "missing_mode":
            lines = [ln for ln in lines if not ln.startswith("mode:")]
        elif behaviour == "missing_max_age":
            lines = lines[:-1]
        elif behaviour == "missing_mx":
            lines = [ln for ln in lines if not ln.startswith("mx:")]
            lines[1] = "mode: enforce"
        elif behaviour == "syntax":
            lines.insert(2, "this line has no colon")
        eol = "\r\n" if self.d_crlf.draw() == "yes" else "\n"
        body = eol.join(lines) + eol
        valid_body = behaviour in ("ok", "oversize", "slow_body", "wrong_content_type",
                                   "wrong_cert")
        policy = PolicySpec(mode, max_age, tuple(sorted(patterns))) if valid_body else None
        if behaviour == "ok":
            traits.add(f"mode:{mode}")
        error = {"ok": None, "not_found": "http_status", "redirect": "redirect",
                 "oversize": "too_large", "slow_body": "timeout", "slow_headers": "timeout",
                 "wrong_content_type": "content_type", "wrong_cert": "certificate",
                 "no_host": "dns"}.get(behaviour, behaviour)
        host = f"mta-sts.{domain}"
        ip: str | None
        if behaviour == "no_host":
            ip = None
        else:
            ip = provider["policy_ip"] if provider is not None else self.ips.own_policy()
            self.add(host, "A", ip)
        kw: dict[str, Any] = {}
        if behaviour == "not_found":
            kw.update(status=404, body="404 Not Found\n")
        elif behaviour == "redirect":
            kw.update(status=301, body="", location=f"https://www.{domain}/.well-known/mta-sts.txt")
        elif behaviour == "oversize":
            kw.update(pad_to=s.policy_max_bytes + 4096 + rng.randrange(4096))
        elif behaviour == "slow_body":
            kw.update(delay=round(s.policy_timeout / 6, 3),
                      duration=round(s.policy_timeout * 3.5, 3))
        elif behaviour == "slow_headers":
            kw.update(delay=round(s.policy_timeout / 12, 3),
                      duration=round(s.policy_timeout * 3.5, 3))
        elif behaviour == "wrong_content_type":
            kw.update(content_type=rng.choice(("text/html; charset=utf-8",
                                               "application/octet-stream")))
        elif behaviour == "wrong_cert":
            kw.update(cert_kind="wrong_name")
        if "status" not in kw or kw["status"] == 200:
            kw.setdefault("body", body)
        self.policies[domain] = PolicyHostSpec(domain=domain, ip=ip, behaviour=behaviour,
                                               policy=policy, error=error, **kw)

    def build_tlsrpt(self, domain: str, traits: set[str]) -> TxtSpec:
        status = self.d_rpt.draw()
        owner = f"_smtp._tls.{domain}"
        traits.add(f"tlsrpt:{status}")
        if status == "absent":
            return TxtSpec("absent", ())
        if status == "dns_error":
            self.fault(owner, self.rng.choice(("servfail", "timeout")), ("TXT",))
            return TxtSpec("dns_error", None, shape=self.faults[owner][0])
        mailto = f"mailto:tlsrpt@{domain}"
        https = f"https://tlsrpt.{domain}/v1/report"
        if status == "multiple":
            records = (f"v=TLSRPTv1; rua={mailto}", f"v=TLSRPTv1; rua={https}")
            for r in records:
                self.add(owner, "TXT", _quote_txt([r]))
            return TxtSpec("multiple", tuple(sorted(records)), shape="two")
        if status == "invalid":
            shape = self.d_rpt_invalid.draw()
            record = {"missing_rua": "v=TLSRPTv1; foo=bar",
                      "invalid_rua": "v=TLSRPTv1; rua=",
                      "syntax": f"v=TLSRPTv1; rua=mailto:tls rpt@{domain}"}[shape]
            self.add(owner, "TXT", _quote_txt([record]))
            return TxtSpec("invalid", (record,), shape=shape)
        shape = self.d_rpt_valid.draw()
        rua = {"mailto": (mailto,), "https": (https,), "both": (https, mailto),
               "split": (mailto,)}[shape]
        record = f"v=TLSRPTv1; rua={','.join(rua)}"
        if shape == "split":
            traits.add("tlsrpt:split")
            self.add(owner, "TXT", _quote_txt(_split(record, self.rng)))
        else:
            self.add(owner, "TXT", _quote_txt([record]))
        return TxtSpec("valid", (record,), rua=tuple(sorted(rua)), shape=shape)

    # -- finishing -----------------------------------------------------------------------

    def finish_servers(self) -> None:
        """Put the collected certificate names into each server's TLS spec."""
        if self.ipv6_names:
            tls = TlsSpec(versions=("TLSv1.2", "TLSv1.3"),
                          ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                          server_preference=True, cert_kind="valid", key_type="ec")
            self.servers[IPV6_IP] = self.make_server(IPV6_IP, "normal", self.ipv6_names[0],
                                                     tls, "ipv6")
            self.cert_names[IPV6_IP] = list(self.ipv6_names)
        for ip, server in list(self.servers.items()):
            if server.tls is not None:
                names = tuple(dict.fromkeys(self.cert_names.get(ip) or [server.hostname]))
                self.servers[ip] = replace(server, tls=replace(server.tls, names=names))
        # server traits onto the domains using them
        for k, d in enumerate(self.domains):
            hosts = [t[6:] for t in d.traits if t.startswith("@host:")]
            extra: set[str] = set()
            for h in hosts:
                spec = self.mx_hosts.get(h)
                if spec is None:
                    continue
                for ip in spec.ips:
                    extra |= server_traits(self.servers[ip])
            self.domains[k] = replace(d, traits=tuple(sorted(
                {t for t in d.traits if not t.startswith("@")} | extra)))

    def build_dns(self) -> dict[str, DnsNode]:
        apex = "test"
        self.add(apex, "SOA", "ns.test. hostmaster.test. 1 3600 600 86400 300")
        self.add(apex, "NS", "ns.test.")
        self.add("ns.test", "A", RESOLVER_IP)
        names = sorted(set(self.records) | set(self.faults))
        dns: dict[str, DnsNode] = {}
        dnssec_faults = getattr(self, "dnssec_faults", {})
        for name in names:
            fault, types = self.faults.get(name, (None, ()))
            sec_fault, sec_types = dnssec_faults.get(name, (None, ()))
            dns[name] = DnsNode(name, tuple(self.records.get(name, ())), fault, types,
                                sec_fault, sec_types)
        return dns


def server_traits(server: SmtpServerSpec) -> set[str]:
    traits = {f"smtp:{server.behaviour}"}
    if server.tls is not None:
        tls = server.tls
        traits |= {f"tls:{v}" for v in tls.versions}
        traits.add("pref:server" if tls.server_preference else "pref:client")
        if tls.ciphers.split(":", 1)[0] in ANON_FIRST:
            traits.add("pref:anon")
        traits.add(f"key:{tls.key_type}")
        traits.add(f"cert:{tls.cert_kind}")
        if tls.cert_kind.startswith(CHAIN_PREFIX):
            traits.add("cert:chain")
        if tls.engine == "tlslite":
            traits.add(f"legacy:{config_name(tls)}")
    return traits


def generate(n: int, seed: int = 0, profile: str | Path | dict[str, Any] = "default", *,
             scale: str = "default", ports: Ports | None = None) -> World:
    """The world of ``n`` domains for ``seed`` and ``profile`` (deterministic)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    prof = profile if isinstance(profile, dict) else load_profile(profile)
    try:
        sc = SCALES[scale]
    except KeyError:
        raise ProfileError(f"unknown scale {scale!r}; scales are {', '.join(SCALES)}") from None
    try:
        builder = _Builder(n, seed, prof, sc, ports or Ports())
        with paused_gc():
            return builder.build()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if isinstance(exc, ProfileError):
            raise
        # a hand-written profile with a missing key or a value of the wrong shape
        raise ProfileError(f"profile {prof.get('name')!r} does not fit the generator: "
                           f"{_what(exc)}") from None


def _latency(spec: dict[str, Any], factor: float) -> Latency:
    """A profile's ``{"median", "p90", "cap"}`` (seconds) as a Latency scaled by ``factor``."""
    return Latency(round(float(spec["median"]) * factor, 6),
                   round(float(spec["p90"]) * factor, 6), round(float(spec["cap"]) * factor, 6))


def _what(exc: Exception) -> str:
    """A profile's mistake in words: a missing key by name, else the error's own text."""
    if isinstance(exc, KeyError):
        return f"it has no key {exc.args[0]!r} where one is needed"
    return f"{type(exc).__name__}: {exc}"


def behaviour_shares(world: World) -> dict[str, float]:
    """Share of domains exercising each behaviour name (BEHAVIOURS order)."""
    counts: Counter[str] = Counter()
    for d in world.domains:
        counts.update(d.traits)
    n = max(1, len(world.domains))
    return {b: counts[b] / n for b in BEHAVIOURS}
