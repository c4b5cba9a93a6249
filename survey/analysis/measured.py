"""What a scan measured, and when it did not, why: "not measured" is never a zero.

A share over nothing is ambiguous: "0 of 0 addresses enforce their suite
order" may mean nobody does, or that the scan never looked. The analysis
keeps the two apart. Each measurement that not every scan makes is listed
in ``MEASUREMENTS`` with the columns that hold it and the profiles that fill
them; ``not_measured(scan, key)`` returns the reason a scan lacks it, or
None when the scan has it:

  * the column is not in the scanner's schema: survey does not check it yet
    (e.g. DANE before the scanner validates TLSA records);
  * the column is not in the scan's Parquet files: the scan predates it (an
    older survey wrote it); reading the table gives nulls, not data;
  * a setting turned it off (DANE needs DNSSEC validation: ``--no-dnssec``);
  * the scan's profile does not fill it (``--profile versions`` enumerates
    versions but not cipher suites).

Adding a metric that only some scans have: add a ``Measurement`` here and
call ``not_measured`` (or ``Scan.not_measured``) before computing it; the
metric then returns ``Share.missing(name, unit, reason)`` and every table
and chart says "not measured" with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from survey.store import SCHEMAS
from survey.vocabulary import Profile

if TYPE_CHECKING:
    from survey.analysis.load import Scan

PROFILES = Profile.values()


@dataclass(frozen=True)
class Measurement:
    """A measurement some scans lack: its name, table, columns and the profiles that make it."""

    name: str
    table: str
    columns: tuple[str, ...]
    profiles: tuple[str, ...] = PROFILES
    needs: str = ""          # what to run to get it, e.g. "--profile ciphers"
    # a scan setting it needs (manifest config key, value) and what turned it off
    setting: tuple[str, object] | None = None
    setting_off: str = ""


MEASUREMENTS: dict[str, Measurement] = {
    "versions": Measurement("supported TLS versions", "hosts", ("versions_supported",),
                            (Profile.VERSIONS, Profile.CIPHERS), "--profile versions or ciphers"),
    "cipher_suites": Measurement("offered cipher suites", "hosts", ("cipher_suites",),
                                 (Profile.CIPHERS,), "--profile ciphers"),
    "server_preference": Measurement("the server's suite order", "hosts",
                                     ("server_preference",), (Profile.CIPHERS,),
                                     "--profile ciphers"),
    # mx.dane: what a DANE sender (RFC 7672) finds per (MX, IP), once the scanner writes it
    "dane": Measurement("DANE (TLSA records validated with DNSSEC)", "mx", ("dane",),
                        PROFILES, "a survey that checks DANE", ("dnssec", True),
                        "DNSSEC validation was off (--no-dnssec, or a testbed world "
                        "without a trust anchor)"),
}


def profile_of(scan: Scan) -> str | None:
    return (scan.manifest.get("config") or {}).get("profile")


def not_measured(scan: Scan, key: str) -> str | None:
    """Why ``scan`` lacks the measurement ``key`` of ``MEASUREMENTS``; None when it has it."""
    m = MEASUREMENTS[key]
    declared = SCHEMAS[m.table].names
    absent = [c for c in m.columns if c not in declared]
    if absent:
        return f"not measured: this version of survey does not check {m.name}"
    physical = scan.physical_columns(m.table)
    if physical is not None:
        missing = [c for c in m.columns if c not in physical]
        if missing:
            version = scan.manifest.get("tool_version")
            by = f" (written by survey {version})" if version else ""
            return (f"not measured: the scan predates the column {missing[0]}{by}; "
                    f"rescan for {m.name}")
    config = scan.manifest.get("config") or {}
    if m.setting is not None and m.setting[0] in config and config[m.setting[0]] != m.setting[1]:
        return f"not measured: {m.setting_off}"
    profile = profile_of(scan)
    if profile is not None and profile not in m.profiles:
        return f"not measured: needs {m.needs} (this scan ran --profile {profile})"
    return None
