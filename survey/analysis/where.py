"""Named conditions over the fact tables, so notebooks need no SQL fragments.

    from survey import analysis as sa
    sa.breakdown(scan, sa.where.STS_VALID_POLICY, by="provider")
    sa.breakdown(scan, sa.where.STS_ACTIVE & ~sa.where.TLSRPT_VALID, by="rank")

A ``Predicate`` is SQL text (a ``str``: anything that takes a condition takes
one) with a name and a one-line meaning; ``&``, ``|`` and ``~`` combine them
and their names. SQL stays the escape hatch: any condition over the columns
of ``facts.COLUMNS`` can be passed as a plain string.
"""

from __future__ import annotations

from typing import Self

from survey.vocabulary import CertStatus, HostStatus, StsMode


class Predicate(str):
    """A condition over one fact table (``domain``, ``host`` or ``ip``): SQL with a name."""

    name: str
    meaning: str
    table: str

    def __new__(cls, sql: str, name: str, meaning: str = "", table: str = "domain") -> Self:
        self = super().__new__(cls, sql)
        self.name = name
        self.meaning = meaning or name
        self.table = table
        return self

    def _join(self, other: str, op: str, word: str) -> Predicate:
        other_name = getattr(other, "name", str(other))
        table = getattr(other, "table", self.table)
        if table != self.table:
            raise ValueError(f"{self.name} is over {self.table}, {other_name} over {table}")
        return Predicate(f"({self}) {op} ({other})", f"{self.name} {word} {other_name}",
                         table=self.table)

    def __and__(self, other: str) -> Predicate:
        return self._join(other, "AND", "and")

    def __or__(self, other: str) -> Predicate:
        return self._join(other, "OR", "or")

    def __invert__(self) -> Predicate:
        return Predicate(f"NOT coalesce({self}, false)", f"not {self.name}", table=self.table)

    def __repr__(self) -> str:
        return f"<{self.table} predicate {self.name!r}: {self!s}>"


# -- domains (domain_facts) ---------------------------------------------------------------
ACCEPTS_MAIL = Predicate("accepts_mail", "accepts mail",
                         "MX records, or an implicit MX (A/AAAA; RFC 5321 §5.1)")
STARTTLS_OFFERED = Predicate("any_offered", "STARTTLS offered (any MX)",
                             "some (MX, address) of the domain lists STARTTLS")
STARTTLS_WORKING = Predicate("any_working", "STARTTLS working (any MX)",
                             "some (MX, address) completed the TLS handshake")
STARTTLS_ALL_MX = Predicate("all_working", "STARTTLS working (every MX)",
                            "every (MX, address) completed the TLS handshake")
STARTTLS_PRIMARY = Predicate("primary_working", "STARTTLS working (primary MX)",
                             "every address of the lowest-preference MX hosts did")
CERT_VALID_PRIMARY = Predicate(f"cert_primary = '{CertStatus.VALID}'",
                               "valid certificate (primary MX)",
                               "the primary MX's worst certificate verdict is valid")
STS_RECORD = Predicate("sts_record", "MTA-STS record",
                       "an _mta-sts TXT record set (valid, invalid or several)")
STS_VALID_POLICY = Predicate("sts_txt_valid AND sts_policy_valid", "valid MTA-STS policy",
                             "a valid _mta-sts TXT record and a valid policy (any mode)")
STS_ACTIVE = Predicate("sts_txt_valid AND sts_policy_valid AND sts_mode IN "
                       f"('{StsMode.ENFORCE}', '{StsMode.TESTING}')", "MTA-STS active",
                       "a valid policy in mode enforce or testing")
STS_ENFORCE = Predicate("sts_txt_valid AND sts_policy_valid AND "
                        f"sts_mode = '{StsMode.ENFORCE}'",
                        "MTA-STS enforce", "a valid policy in mode enforce")
STS_DELIVER = Predicate("sts_deliver", "a sender would deliver (MTA-STS)",
                        "active policy and the dataset's sts_domain_verdict is deliver")
STS_FAIL = Predicate("sts_fail", "a sender would fail (MTA-STS)",
                     "the dataset's sts_domain_verdict is fail")
STS_MISCONFIGURED = Predicate("sts_record AND NOT sts_correct", "MTA-STS misconfigured",
                              "a record, and not correct (facts.py)")
TLSRPT_RECORD = Predicate("tlsrpt_record", "TLSRPT record", "an _smtp._tls TXT record set")
TLSRPT_VALID = Predicate("tlsrpt_valid", "valid TLSRPT record",
                         "a valid _smtp._tls record (RFC 8460 §3)")

# -- MX host names (host_facts) and addresses (ip_facts) -------------------------------------
HOST_OFFERED = Predicate("offered", "STARTTLS offered", "on some address", table="host")
HOST_TLS = Predicate("tls_ok", "TLS handshake completed", "on some address", table="host")
HOST_CERT_VALID = Predicate(f"cert_status = '{CertStatus.VALID}'", "valid certificate",
                            "worst verdict over its addresses is valid", table="host")
IP_TLS = Predicate(f"status = '{HostStatus.OK}'", "TLS handshake completed", table="ip")
IP_FORWARD_SECRET = Predicate("coalesce(fs, false)", "forward secrecy negotiated", table="ip")


def predicates(table: str | None = None) -> dict[str, Predicate]:
    """Every named predicate (of one fact table: ``domain``, ``host``, ``ip``)."""
    return {k: v for k, v in globals().items()
            if isinstance(v, Predicate) and (table is None or v.table == table)}
