"""Build a testbed world and serve it from a child process, for end-to-end tests; compare scans.

The world runs as `survey world --serve` (its own process, as a user runs it);
the context manager waits for world.json, yields the directory, and stops the
world with SIGTERM however the test ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.compute as pc

from survey.store import open_dataset, read_pandas

SURVEY = [sys.executable, "-m", "survey.cli"]
# Values that depend on timing or on which domain reached a shared server first.
VOLATILE = {"probed_at", "transcript", "status_detail", "connections", "sni", "dane_sni",
            "attempts", "refused_before_ok"}   # a greylisting server refuses its first contacts only
KEYS = {"domains": ["domain"], "mx": ["domain", "mx_host", "ip"], "hosts": ["ip", "port"]}
START_TIMEOUT = 60.0


@contextmanager
def served_world(directory: Path, *, domains: int, seed: int, scale: str = "fast",
                 profile: str = "default") -> Iterator[Path]:
    subprocess.run(SURVEY + ["world", "--domains", str(domains), "--seed", str(seed),
                             "--scale", scale, "--profile", profile, "--out", str(directory)],
                   check=True, timeout=120, capture_output=True)
    server = subprocess.Popen(SURVEY + ["world", "--serve", "--any-ports", "--out",
                                        str(directory)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (directory / "world.json").exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, f"the world did not start in {START_TIMEOUT} s"
            time.sleep(0.1)
        yield directory
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def assert_same_rows(expected: Path, got: Path) -> None:
    for table, key in KEYS.items():
        # A host row's chain is the one served for its (first-come) SNI; mx rows keep
        # the chain per (domain, MX, IP) and are compared whole.
        volatile = VOLATILE | ({"chain_sha256"} if table == "hosts" else set())
        a, b = read_pandas(expected, table), read_pandas(got, table)
        assert not b.duplicated(subset=key).any(), f"{table}: a row twice"
        a = a.drop(columns=list(volatile & set(a.columns)))
        b = b.drop(columns=list(volatile & set(b.columns)))
        a = a.sort_values(key).reset_index(drop=True).astype(str)
        b = b.sort_values(key).reset_index(drop=True).astype(str)
        assert len(a) == len(b), f"{table}: {len(a)} rows vs {len(b)}"
        differ = [c for c in a.columns if not a[c].equals(b[c])]
        assert not differ, f"{table} differs in {differ}"
    certs = open_dataset(got, "certs").to_table(columns=["sha256"])
    assert pc.count_distinct(certs["sha256"]).as_py() == certs.num_rows
    # the whole certs table: a row per certificate either scan saw, with the same facts
    a, b = (open_dataset(scan, "certs").to_table().drop_columns(["probed_at"])
            .sort_by("sha256") for scan in (expected, got))
    assert a.num_rows == b.num_rows, f"certs: {a.num_rows} rows vs {b.num_rows}"
    differ = [c for c in a.column_names if not a[c].equals(b[c])]
    assert not differ, f"certs differs in {differ}"
    for scan in (expected, got):
        orphans = set(a["sha256"].to_pylist()) - chains_named(scan)
        assert not orphans, f"{scan}: certs rows no chain names: {sorted(orphans)[:3]}"


def chains_named(scan: Path) -> set[str]:
    """Every certificate hash a hosts or mx row of ``scan`` names in one of its chains."""
    named: set[str] = set()
    for table, columns in (("hosts", ["chain_sha256"]),
                           ("mx", ["chain_sha256", "dane_chain_sha256"])):
        for column in open_dataset(scan, table).to_table(columns=columns).columns:
            named.update(pc.list_flatten(column).drop_null().to_pylist())
    return named
