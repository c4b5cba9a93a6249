"""MX host name -> mail provider, through the registrable domain.

Domains cluster on providers: a few operators run the MX hosts of millions
of domains, under host names of their own (``*.mail.protection.outlook.com``,
``aspmx.l.google.com``) or per-customer names on shared addresses. The
provider of an MX host is found from its *registrable domain* (the public
suffix plus one label, from the Public Suffix List's ICANN section as shipped
inside the ``publicsuffixlist`` package: no network fetch, ever), looked up in
a provider table shipped as data (``data/providers.csv``). A registrable
domain not in the table is its own provider, so unknown hosting companies
still cluster their customers together; an MX host under the domain's own
registrable domain is *self-hosted*.

Known limitation: a customer name CNAME'd to a provider's host
(``mail.example.com -> mx.provider.net``) counts as self-hosted, because the
dataset keeps the MX name, not the CNAME target.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources

import pyarrow as pa

SELF_HOSTED = "self-hosted"
NO_MX = "no MX"


@lru_cache(maxsize=1)
def _psl():
    from publicsuffixlist import PublicSuffixList

    # only_icann: a provider's own private suffix entries (cloud hosting
    # sub-zones) would otherwise split one operator into thousands.
    return PublicSuffixList(only_icann=True)


def registrable_domain(name: str | None) -> str | None:
    """``mx1.mail.example.co.uk`` -> ``example.co.uk``; None for a bare suffix or junk.

    Names under an unknown TLD (the testbed's ``.test``) take the default
    rule ``*``: the last label is the suffix.
    """
    if not name:
        return None
    name = name.strip().rstrip(".").lower()
    if not name or " " in name:
        return None
    try:
        return _psl().privatesuffix(name)
    except (ValueError, UnicodeError):
        return None


def _parse_table(text: str) -> dict[str, str]:
    rows = (line for line in io.StringIO(text) if line.strip() and not line.startswith("#"))
    table = {}
    for row in csv.DictReader(rows):
        table[row["registrable_domain"].strip().lower()] = row["provider"].strip()
    return table


@lru_cache(maxsize=1)
def shipped_providers() -> dict[str, str]:
    """The shipped table: registrable domain -> provider name."""
    text = resources.files("survey.analysis").joinpath("data/providers.csv").read_text("utf-8")
    return _parse_table(text)


class ProviderMap:
    """Registrable domain -> provider, from the shipped table plus the caller's additions."""

    def __init__(self, extra: Mapping[str, str] | None = None, *, shipped: bool = True) -> None:
        self.table = dict(shipped_providers()) if shipped else {}
        self.table.update({k.lower(): v for k, v in (extra or {}).items()})

    def provider(self, mx_host: str | None) -> tuple[str | None, str | None]:
        """(registrable domain, provider key) of one MX host name."""
        registrable = registrable_domain(mx_host)
        if registrable is None:
            return None, None
        return registrable, self.table.get(registrable, registrable)

    def arrow(self, names: Iterable[str | None]) -> pa.Table:
        """A (tail, registrable, provider) table for distinct names (or name tails)."""
        tails, regs, provs = [], [], []
        for name in names:
            registrable, provider = self.provider(name)
            tails.append(name)
            regs.append(registrable)
            provs.append(provider)
        return pa.table({"tail": pa.array(tails, pa.string()),
                         "registrable": pa.array(regs, pa.string()),
                         "provider": pa.array(provs, pa.string())})
