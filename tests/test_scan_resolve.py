"""The DNS stage (scan/resolve.py) against a testbed world: every domain's DNS truth."""

from __future__ import annotations

import pytest
import trio

from survey.net.dns import HostCache, Resolver
from survey.scan.resolve import resolve_domain
from survey.scan.targets import Target
from survey.testbed.dns_server import serve_dns
from survey.testbed.generator import generate
from survey.testbed.truth import build_truth


@pytest.fixture(scope="module")
def world():
    return generate(600, seed=3, scale="fast")


@pytest.fixture
async def resolved(nursery, world):
    host, port = await nursery.start(serve_dns, world)
    resolver = Resolver([(host, port)], timeout=0.3, lifetime=1.0)
    cache = HostCache(resolver)
    results = {}
    limiter = trio.CapacityLimiter(50)

    async def one(spec):
        async with limiter:
            results[spec.name] = await resolve_domain(Target(spec.name, spec.name, spec.rank),
                                                      resolver, cache)

    async with trio.open_nursery() as inner:
        for spec in world.domains:
            inner.start_soon(one, spec)
    return results


async def test_the_dns_stage_matches_the_truth(resolved, world):
    # One test, two checks: resolving the world is the expensive part.
    truth = build_truth(world)
    check_domain_columns(resolved, truth)
    check_mx_targets_and_addresses(resolved, truth)


def check_domain_columns(resolved, truth):
    for row in truth.rows["domains"]:
        got = resolved[row["domain"]]
        assert (got.dns_status, got.mx_kind, got.mx_hosts) == (
            row["dns_status"], row["mx_kind"], row["mx_hosts"]), row["domain"]
        assert (got.mta_sts.status, got.mta_sts.texts) == (
            row["mta_sts_txt_status"], row["mta_sts_txt"]), row["domain"]
        assert (got.tlsrpt.status, got.tlsrpt.texts) == (
            row["tlsrpt_status"], row["tlsrpt_txt"]), row["domain"]
        if row["mta_sts_id"] is not None:
            assert got.mta_sts.sts.id == row["mta_sts_id"]
        if row["tlsrpt_rua"] is not None:
            assert sorted(got.tlsrpt.tlsrpt.rua) == row["tlsrpt_rua"]


def check_mx_targets_and_addresses(resolved, truth):
    expected = {}
    for row in truth.rows["mx"]:
        expected.setdefault((row["domain"], row["mx_host"]), []).append(
            (row["preference"], row["mx_status"], row["ip"]))
    got = {}
    for d in resolved.values():
        for mx in d.mx:
            got[(d.target.domain, mx.host)] = [(mx.preference, mx.status, ip)
                                               for ip in mx.ips or (None,)]
    assert {k: sorted(v, key=str) for k, v in got.items()} == {
        k: sorted(v, key=str) for k, v in expected.items()}  # an RRset has no order

