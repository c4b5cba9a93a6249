"""Retries: one final-status rule, followed by the scanner, the testbed's truth and the docs.

survey.vocabulary.FINAL_STATUS_RULE: a temporary refusal is retried; the row's
status is the last attempt's, and every attempt stays in ``hosts.attempts``
(a greylisting server that answers on the third try is ``ok``, and its two
refusals are countable). The scanner's ServerProber probes real testbed
servers here (each test serves a fresh world, so greylisting starts over);
the truth's ``host_attempts`` says the same from how the servers were built.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trio

from survey.net.guard import DestinationPolicy
from survey.net.smtp import Timeouts
from survey.scan.access import ServerAccess
from survey.scan.politeness import Politeness
from survey.scan.servers import Attempted, ServerProber
from survey.scan.verdicts import host_row
from survey.store import read_pandas, schemadoc, to_table
from survey.store import schema as store_schema
from survey.testbed.generator import SCALES
from survey.testbed.listen import ConnectionLog
from survey.testbed.smtp_server import serve_smtp
from survey.testbed.truth import CONVENTIONS, host_attempts, host_truth
from survey.vocabulary import (
    FINAL_STATUS_RULE,
    RETRYABLE,
    AttemptStep,
    HostStatus,
    final_status,
    refused_before_ok,
)

S = SCALES["fast"].scanner
# The behaviours whose attempts differ (retried refusals, greylisting), and a few that are
# not retried at all.
BEHAVIOURS = ("greylist", "banner_421_rate_limit", "banner_421", "ehlo_4xx", "normal",
              "no_starttls", "banner_554", "starttls_454")


def servers_of(world, behaviour: str) -> list[str]:
    return sorted(ip for ip, s in world.smtp_servers.items() if s.behaviour == behaviour)


@pytest.fixture
async def port(nursery, pki, net_world):
    """A fresh SMTP world per test: greylisting counts from zero."""
    return await nursery.start(lambda task_status: serve_smtp(
        net_world, port=0, pki=pki, connlog=ConnectionLog(None), task_status=task_status))


def prober(port: int, rows: list[dict]) -> ServerProber:
    access = ServerAccess(port=port, policy=DestinationPolicy("testbed"),
                          politeness=Politeness(per_ip=S.per_ip_connections),
                          ehlo_name="scanner.survey.test",
                          timeouts=Timeouts(connect=S.connect_timeout,
                                            greeting=S.greeting_timeout,
                                            command=S.command_timeout, tls=S.tls_timeout),
                          retries=S.retries, retry_delay=0.01)

    def on_base(attempted: Attempted) -> None:
        rows.append(host_row(attempted.probe, attempted.connections, None,
                             datetime.now(UTC), attempts=attempted.attempts))

    return ServerProber(access, on_base=on_base)


def test_the_rule_in_code():
    ok, busy, grey = HostStatus.OK, HostStatus.RATE_LIMITED, HostStatus.SMTP_REJECT_4XX
    assert final_status([grey, grey, ok]) == ok and refused_before_ok([grey, grey, ok])
    assert final_status([busy, busy, busy]) == busy and not refused_before_ok([busy] * 3)
    assert not refused_before_ok([ok]) and not refused_before_ok([])
    assert not refused_before_ok([HostStatus.RESET, ok])   # not a temporary refusal
    assert RETRYABLE == {busy, grey}
    with pytest.raises(ValueError):
        final_status([])


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
async def test_scanner_and_truth_follow_the_rule_alike(port, behaviour, net_world):
    ips = servers_of(net_world, behaviour)
    assert ips, f"the world has no {behaviour} server"
    rows: list[dict] = []
    probe = prober(port, rows)
    with trio.fail_after(60):
        for ip in ips:
            server = net_world.smtp_servers[ip]
            await probe.for_name(ip, server.hostname)
    assert len(rows) == len(ips)
    to_table("hosts", rows)                   # the attempts fit the schema and vocabulary
    for row in rows:
        server = net_world.smtp_servers[row["ip"]]
        expected = host_attempts(server, net_world)
        statuses = [a["status"] for a in row["attempts"]]
        assert statuses == expected, (row["ip"], row["attempts"])
        assert row["status"] == final_status(expected) == host_truth(server, net_world).status
        assert row["refused_before_ok"] == refused_before_ok(expected)
        assert row["connections"] == len(row["attempts"])
        times = [a["at"] for a in row["attempts"]]
        assert times == sorted(times)
        refused = [a for a in row["attempts"] if a["status"] in RETRYABLE]
        assert refused == row["attempts"][:len(refused)]   # the refusals come first
        for attempt in refused:               # where and with what code each was refused
            reply = (server.ehlo_reject if behaviour == "ehlo_4xx"
                     else server.refusal if behaviour == "greylist" else server.greeting)
            step = AttemptStep.EHLO if behaviour == "ehlo_4xx" else AttemptStep.GREETING
            assert (attempt["step"], attempt["reply_code"]) == (step, reply.code)
    if behaviour == "greylist":               # the case the rule is about
        assert all(r["status"] == "ok" and r["refused_before_ok"] for r in rows)
        last = rows[0]["attempts"][-1]
        assert (last["step"], last["reply_code"]) == (AttemptStep.EHLO_TLS, 250)
    if behaviour == "banner_421_rate_limit":  # never clears: still rate_limited, never ok
        assert all(len(r["attempts"]) == S.retries + 1 for r in rows)


def test_the_docs_state_the_same_rule():
    text = schemadoc.render()
    assert FINAL_STATUS_RULE in text
    assert "ends `ok`" in FINAL_STATUS_RULE and "`attempts`" in FINAL_STATUS_RULE
    # the old, contradicting wording: a refusal that cleared was called rate_limited
    assert "cleared on a later retry" not in text
    assert "still refused after the last retry" in HostStatus.RATE_LIMITED.meaning
    assert "FINAL_STATUS_RULE" in CONVENTIONS["host status"]


def test_a_scan_written_before_attempts_reads_them_as_not_measured(tmp_path):
    """Old part files have no attempts columns: the reader gives null, nothing fails."""
    row = {"ip": "192.0.2.1", "port": 25, "status": "ok", "probed_at": datetime.now(UTC)}
    new = to_table("hosts", [row])
    old_fields = [f for f in store_schema.HOSTS if f.name not in
                  ("attempts", "refused_before_ok")]
    old = pa.Table.from_pylist([row], schema=pa.schema(old_fields))
    assert "attempts" in new.column_names and "attempts" not in old.column_names
    (tmp_path / "hosts").mkdir()
    pq.write_table(old, tmp_path / "hosts" / "part-00000.parquet")
    frame = read_pandas(tmp_path, "hosts")
    assert frame.loc[0, "status"] == "ok"
    assert frame["attempts"].isna().all() and frame["refused_before_ok"].isna().all()
