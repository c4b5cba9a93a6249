"""Checkers for the conformance vectors, one module per protocol area.

Each module exports ``CHECKERS``: a mapping from a vector file's stem (such as
``smtp_replies``) to a function ``check(case) -> None`` that runs our code on
``case["input"]`` and asserts ``case["expect"]``. tests/test_vectors.py routes
every file in the vector directory to the checker whose key is the longest
prefix of the file's stem, so ``smtp_replies_extra.json`` works unchanged.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from importlib import import_module


def all_checkers() -> dict[str, Callable[[dict], None]]:
    checkers: dict[str, Callable[[dict], None]] = {}
    for module in pkgutil.iter_modules(__path__):
        checkers.update(import_module(f"{__name__}.{module.name}").CHECKERS)
    return checkers
