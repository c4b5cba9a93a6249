"""Decks: how a world's generator deals a profile's shares out to its domains.

A profile says "30 % of the own servers offer TLS 1.3 only"; the generator
draws each domain's labels from a deck holding every label in proportion,
shuffled with the world's seeded random generator, refilled when empty.
Every label of a deck appears, in proportion, whatever the world's size;
which domain gets which combination depends on the seed. ``Cards`` deals a
stated multiset (the exact counts of a quota, quotas.py); ``Deck`` turns
shares into one.

Building a deck draws nothing from the random generator (only dealing does),
so the order in which decks are made does not change a world.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol


class ProfileError(ValueError):
    """A profile that cannot be used (unknown name, bad shares)."""


class Dealer(Protocol):
    """Anything the generator draws a domain's label from."""

    def draw(self) -> str: ...


class Cards:
    """Deals a fixed multiset of labels in a seeded order; refills when empty."""

    def __init__(self, rng: random.Random, counts: Mapping[str, int]) -> None:
        self._cards = [str(k) for k in sorted(counts) for _ in range(int(counts[k]))]
        self._rng = rng
        self._hand: list[str] = []

    def draw(self) -> str:
        if not self._hand:
            self._hand = list(self._cards)
            self._rng.shuffle(self._hand)
        return self._hand.pop()


class Deck(Cards):
    """Deals labels in proportion to their shares, each at least once per deck."""

    def __init__(self, rng: random.Random, shares: Mapping[str, float]) -> None:
        positive = {k: float(v) for k, v in shares.items() if float(v) > 0}
        if not positive:
            raise ProfileError(f"no positive share in {dict(shares)}")
        total = sum(positive.values())
        size = max(len(positive), round(total / min(positive.values())))
        exact = {k: v / total * size for k, v in positive.items()}
        counts = {k: max(1, int(x)) for k, x in exact.items()}
        # largest remainder up to the deck size (minimum one each may overshoot)
        for k in sorted(exact, key=lambda k: exact[k] - int(exact[k]), reverse=True):
            if sum(counts.values()) >= size:
                break
            counts[k] += 1
        super().__init__(rng, counts)


def flag_deck(rng: random.Random, share: float) -> Deck:
    """``yes`` with ``share`` (clamped to 0..1), else ``no``."""
    share = min(max(float(share), 0.0), 1.0)
    return Deck(rng, {"yes": share, "no": 1.0 - share})
