"""net/https.py: the MTA-STS policy fetch against every policy-host behaviour of a world."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from survey.certs import TrustStore
from survey.net.guard import DestinationPolicy
from survey.net.https import fetch_policy
from survey.testbed.generator import SCALES, generate
from survey.testbed.https_server import serve_https
from survey.testbed.listen import ConnectionLog
from survey.testbed.model import POLICY_BEHAVIOURS
from survey.testbed.truth import _policy_truth

TESTBED = DestinationPolicy("testbed")
TIMEOUT = SCALES["fast"].scanner.policy_timeout
# every policy-host behaviour but no_host (a domain whose policy host has no address)
FETCHED = sorted(set(POLICY_BEHAVIOURS) - {"no_host"})


@pytest.fixture(scope="module")
def world():
    return generate(400, seed=5, scale="fast")


@pytest.fixture
async def https(nursery, pki, world):
    return await nursery.start(lambda task_status: serve_https(
        world, port=0, pki=pki, connlog=ConnectionLog(None), task_status=task_status))


def one_domain_per_behaviour(world):
    chosen = {}
    for d in world.domains:
        host = world.policy_hosts.get(d.name)
        if d.mta_sts.status == "valid" and host is not None and host.ip is not None:
            chosen.setdefault(host.behaviour, d)
    return chosen


@pytest.mark.parametrize("behaviour", FETCHED)
async def test_each_policy_behaviour_gives_its_true_status(https, pki, behaviour, world):
    domain = one_domain_per_behaviour(world)[behaviour]
    host = world.policy_hosts[domain.name]
    status, error, mode, max_age, patterns = _policy_truth(domain, host)
    store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
    with trio.fail_after(TIMEOUT * 3):
        fetch = await fetch_policy(domain.name, host.ip, https, policy=TESTBED, store=store,
                                   probed_at=pki.now, timeout=TIMEOUT)
    assert (fetch.status, fetch.error) == (status, error), fetch
    if status == "ok":
        policy = fetch.result.policy
        assert (policy.mode, policy.max_age, sorted(policy.mx)) == (mode, max_age, patterns)


async def test_an_untrusted_policy_host_is_a_certificate_error(https, pki, world):
    domain = one_domain_per_behaviour(world)["ok"]
    fetch = await fetch_policy(domain.name, world.policy_hosts[domain.name].ip, https,
                               policy=TESTBED, store=TrustStore(), probed_at=pki.now, timeout=TIMEOUT)
    assert (fetch.status, fetch.error) == ("fetch_error", "certificate")
    assert fetch.cert_status == "untrusted"


async def test_nothing_listening_is_a_connect_error(pki):
    fetch = await fetch_policy("x.test", "127.0.0.1", 9, policy=TESTBED, store=TrustStore(),
                               probed_at=pki.now, timeout=TIMEOUT)
    assert (fetch.status, fetch.error) == ("fetch_error", "connect")


async def test_a_refused_policy_host_is_blocked(pki):
    fetch = await fetch_policy("x.test", "10.0.0.1", 443, policy=DestinationPolicy("internet"),
                               store=TrustStore(), probed_at=pki.now, timeout=TIMEOUT)
    assert (fetch.status, fetch.error) == ("fetch_error", "blocked")


@pytest.mark.parametrize(("kind", "status", "cert_status"), [
    ("valid_out_of_order", "ok", "valid"),
    ("inter_not_ca", "fetch_error", "untrusted"),       # the validator scans use for MX hosts
    ("leaf_client_auth_only", "fetch_error", "untrusted"),
    ("valid_cn_only", "fetch_error", "name_mismatch"),  # RFC 8461 §4.2: a DNS-ID, no CN
])
async def test_policy_hosts_are_judged_by_the_same_path_validation(nursery, pki, world, kind,
                                                                   status, cert_status):
    domain = one_domain_per_behaviour(world)["ok"]
    host = dataclasses.replace(world.policy_hosts[domain.name], cert_kind=f"chain:{kind}")
    served = dataclasses.replace(world, policy_hosts={**world.policy_hosts, domain.name: host})
    port = await nursery.start(lambda task_status: serve_https(
        served, port=0, pki=pki, connlog=ConnectionLog(None), task_status=task_status))
    store = TrustStore.load([pki.ca_bundle_path], mozilla=False)
    with trio.fail_after(TIMEOUT * 3):
        fetch = await fetch_policy(domain.name, host.ip, port, policy=TESTBED, store=store,
                                   probed_at=pki.now, timeout=TIMEOUT)
    assert (fetch.status, fetch.cert_status) == (status, cert_status), fetch
    if status != "ok":
        assert fetch.error == "certificate"
