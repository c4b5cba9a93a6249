"""Exact quotas: worlds built from cohorts of domains with stated configurations.

A profile's shares are dealt from decks (generator.py): every label appears
in proportion, but which domain gets which combination is random, so a
world's counts of joint properties ("an enforce-mode policy whose MX has a
self-signed certificate") vary with the seed. A calibration world needs
exact counts instead: the ``published`` profile says "760 of 1,000 MX host
names offer STARTTLS", and the analysis of its scan must say exactly that.

Theory of operation
-------------------
A profile may carry ``cohorts``: a list of objects, each with a ``count`` and
settings for the generator's decks (the keys of ``COHORT_DECKS``, plus
``cipher_set``). The counts add up to the *block*; a world of N domains
(N a multiple of the block) holds N / block copies of every cohort, in an
order shuffled by the world's seed. While the builder makes a domain, each
wrapped deck answers from the domain's cohort:

  * a string (or number): that label, however often it is drawn;
  * an object ``{label: count}`` (counts adding up to the cohort's count):
    an exact deck, dealt once per domain of the cohort in a seeded order, so
    the cohort holds exactly those counts while the pairing with the
    cohort's other dealt keys is shuffled. Use it only for a deck the
    builder draws once per domain (one MX, one address: ``mx_count`` 1,
    ``host`` plain or multi_address);
  * absent: the profile's ordinary deck (its shares).

Everything else stays the generator's: names, addresses, records, servers
and the ground truth are built exactly as for any profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from survey.testbed.generator import ProfileError, _Cards

# cohort key -> the builder's deck it overrides
COHORT_DECKS: dict[str, str] = {
    "dns_status": "d_dns", "truncate": "d_truncate", "mx_kind": "d_mx_kind",
    "mx_count": "d_mx_count", "equal_preference": "d_equal_pref",
    "shared_host": "d_shared_host", "host": "d_host", "tlsa": "d_tlsa",
    "behaviour": "d_behaviour", "tls_versions": "d_versions",
    "server_preference": "d_pref", "key_type": "d_key", "cert_kind": "d_cert",
    "sts_txt": "d_sts", "sts_absent_other": "d_sts_other", "sts_valid_shape": "d_sts_valid",
    "sts_invalid_shape": "d_sts_invalid", "policy": "d_policy", "mode": "d_mode",
    "mx_mismatch": "d_mismatch", "wildcard": "d_wildcard", "crlf": "d_crlf",
    "tlsrpt": "d_rpt", "tlsrpt_valid_shape": "d_rpt_valid",
    "tlsrpt_invalid_shape": "d_rpt_invalid",
}
CIPHER_SET = "cipher_set"   # overrides the per-key-type cipher decks (an index)


_Exact = _Cards   # the fixed counts of a quota, dealt like the generator's decks


class _CohortDeck:
    """Stands in for one of the builder's decks: the cohort's answer, else the deck's."""

    def __init__(self, cohorts: Cohorts, key: str, fallback: Any) -> None:
        self.cohorts = cohorts
        self.key = key
        self.fallback = fallback

    def draw(self) -> str:
        answer = self.cohorts.answer(self.key)
        return self.fallback.draw() if answer is None else answer


class Cohorts:
    """The cohorts of a profile, installed into a generator ``_Builder``."""

    def __init__(self, builder: Any) -> None:
        specs = builder.profile.get("cohorts")
        if not isinstance(specs, list) or not specs:
            raise ProfileError("cohorts: a non-empty list of objects")
        rng = builder.rng
        self.settings: list[dict[str, Any]] = []
        for k, spec in enumerate(specs):
            if not isinstance(spec, dict) or int(spec.get("count", 0)) < 1:
                raise ProfileError(f"cohort {k}: an object with a positive count")
            count = int(spec["count"])
            settings: dict[str, Any] = {}
            for key, value in spec.items():
                if key in ("count", "name", "note"):
                    continue
                if key not in COHORT_DECKS and key != CIPHER_SET:
                    raise ProfileError(f"cohort {k}: unknown key {key!r} (known: "
                                       f"{', '.join(sorted([*COHORT_DECKS, CIPHER_SET]))})")
                if isinstance(value, dict):
                    if sum(int(v) for v in value.values()) != count:
                        raise ProfileError(f"cohort {k}: the counts of {key!r} add up to "
                                           f"{sum(int(v) for v in value.values())}, not {count}")
                    settings[key] = _Exact(rng, value)
                else:
                    settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
            settings["_count"] = count
            self.settings.append(settings)
        self.block = sum(s["_count"] for s in self.settings)
        if builder.n % self.block:
            raise ProfileError(f"profile {builder.profile.get('name')!r} has exact quotas for "
                               f"blocks of {self.block} domains: --domains must be a multiple "
                               f"of {self.block}")
        order = [k for k, s in enumerate(self.settings) for _ in range(s["_count"])]
        self.order = order * (builder.n // self.block)
        rng.shuffle(self.order)
        self.current: dict[str, Any] | None = None
        for key, attribute in COHORT_DECKS.items():
            setattr(builder, attribute, _CohortDeck(self, key, getattr(builder, attribute)))
        builder.d_cipher = {kind: _CohortDeck(self, CIPHER_SET, deck)
                            for kind, deck in builder.d_cipher.items()}

    def enter(self, i: int) -> None:
        """The builder starts domain ``i``."""
        self.current = self.settings[self.order[i]]

    def answer(self, key: str) -> str | None:
        if self.current is None:
            return None
        value = self.current.get(key)
        if value is None:
            return None
        return value.draw() if isinstance(value, _Exact) else value


def quotas(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The profile's stated quotas (what the analysis of its scan must report)."""
    return list(profile.get("quotas", []))
