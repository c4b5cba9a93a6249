"""Exact quotas: worlds built from cohorts of domains with stated configurations.

A profile's shares are dealt from decks (decks.py): every label appears
in proportion, but which domain gets which combination is random, so a
world's counts of joint properties ("an enforce-mode policy whose MX has a
self-signed certificate") vary with the seed. A calibration world needs
exact counts instead: the ``published`` profile says "760 of 1,000 MX host
names offer STARTTLS", and the analysis of its scan must say exactly that.

Theory of operation
-------------------
A profile may carry ``cohorts``: a list of objects, each with a ``count`` and
settings for the generator's decks (``COHORT_KEYS``, plus ``cipher_set``).
The counts add up to the *block*; a world of N domains
(N a multiple of the block) holds N / block copies of every cohort, in an
order shuffled by the world's seed. The generator makes each of those decks
through ``Cohorts.deck(key, its own deck)``; while the builder makes a
domain, each such deck answers from the domain's cohort:

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

import random
from collections.abc import Mapping
from typing import Any

from survey.testbed.decks import Cards, Dealer, ProfileError

# the generator's decks a cohort may set, by the name a profile gives them
COHORT_KEYS: tuple[str, ...] = (
    "dns_status", "truncate", "mx_kind", "mx_count", "equal_preference", "shared_host", "host",
    "tlsa", "behaviour", "tls_versions", "server_preference", "key_type", "cert_kind",
    "sts_txt", "sts_absent_other", "sts_valid_shape", "sts_invalid_shape", "policy", "mode",
    "mx_mismatch", "wildcard", "crlf", "tlsrpt", "tlsrpt_valid_shape", "tlsrpt_invalid_shape",
)
CIPHER_SET = "cipher_set"   # overrides the per-key-type cipher decks (an index)


class _CohortDeck:
    """Stands in for one of the builder's decks: the cohort's answer, else the deck's."""

    def __init__(self, cohorts: Cohorts, key: str, fallback: Dealer) -> None:
        self.cohorts = cohorts
        self.key = key
        self.fallback = fallback

    def draw(self) -> str:
        answer = self.cohorts.answer(self.key)
        return self.fallback.draw() if answer is None else answer


class Cohorts:
    """The cohorts of a profile for a world of ``n`` domains, dealt with ``rng``."""

    def __init__(self, profile: Mapping[str, Any], n: int, rng: random.Random) -> None:
        specs = profile.get("cohorts")
        if not isinstance(specs, list) or not specs:
            raise ProfileError("cohorts: a non-empty list of objects")
        self.settings: list[dict[str, Any]] = []
        for k, spec in enumerate(specs):
            if not isinstance(spec, dict) or int(spec.get("count", 0)) < 1:
                raise ProfileError(f"cohort {k}: an object with a positive count")
            count = int(spec["count"])
            settings: dict[str, Any] = {}
            for key, value in spec.items():
                if key in ("count", "name", "note"):
                    continue
                if key not in COHORT_KEYS and key != CIPHER_SET:
                    raise ProfileError(f"cohort {k}: unknown key {key!r} (known: "
                                       f"{', '.join(sorted([*COHORT_KEYS, CIPHER_SET]))})")
                if isinstance(value, dict):
                    if sum(int(v) for v in value.values()) != count:
                        raise ProfileError(f"cohort {k}: the counts of {key!r} add up to "
                                           f"{sum(int(v) for v in value.values())}, not {count}")
                    settings[key] = Cards(rng, value)
                else:
                    settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
            settings["_count"] = count
            self.settings.append(settings)
        self.block = sum(s["_count"] for s in self.settings)
        if n % self.block:
            raise ProfileError(f"profile {profile.get('name')!r} has exact quotas for "
                               f"blocks of {self.block} domains: --domains must be a multiple "
                               f"of {self.block}")
        order = [k for k, s in enumerate(self.settings) for _ in range(s["_count"])]
        self.order = order * (n // self.block)
        rng.shuffle(self.order)
        self.current: dict[str, Any] | None = None
        self.asked: set[str] = set()

    def deck(self, key: str, fallback: Dealer) -> Dealer:
        """The deck to draw ``key`` (``COHORT_KEYS`` or ``CIPHER_SET``) from: the cohort's
        answer where it has one, else ``fallback`` (the profile's shares)."""
        if key not in COHORT_KEYS and key != CIPHER_SET:
            raise ValueError(f"no cohort key {key!r}")
        self.asked.add(key)
        return _CohortDeck(self, key, fallback)

    def enter(self, i: int) -> None:
        """The builder starts domain ``i``."""
        self.current = self.settings[self.order[i]]

    def answer(self, key: str) -> str | None:
        if self.current is None:
            return None
        value = self.current.get(key)
        if value is None:
            return None
        return value.draw() if isinstance(value, Cards) else value


def quotas(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The profile's stated quotas (what the analysis of its scan must report)."""
    return list(profile.get("quotas", []))
