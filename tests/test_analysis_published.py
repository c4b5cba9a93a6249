"""The `published` testbed profile: exact quotas in, the same numbers out of the analysis.

The world is built from cohorts (survey/testbed/quotas.py), served on
loopback and scanned with `survey scan --world`; the analysis of that scan
must equal every quota the profile states, exactly (count and denominator).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest

from survey import analysis as sa
from survey.testbed.decks import Deck
from survey.testbed.generator import ProfileError, generate, load_profile
from survey.testbed.quotas import Cohorts, quotas
from tests.worlds import SURVEY, served_world

BLOCK = 1000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # default scale: this world has no timing behaviours, and generous timeouts keep a
    # loaded CI machine from turning a slow policy fetch into a wrong count
    with served_world(tmp_path_factory.mktemp("published-world"), domains=BLOCK, seed=8,
                      scale="default", profile="published") as directory:
        yield directory


@pytest.fixture(scope="module")
def scan(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("published-scan") / "scan"
    # fewer domains in flight and a longer DNS deadline than the world assumes: the world
    # has no DNS faults to miss, and a busy machine must not turn into a wrong count
    subprocess.run(SURVEY + ["scan", "--world", str(world), "--out", str(out), "--quiet",
                             "--concurrency", "50", "--dns-timeout", "10"],
                   check=True, timeout=300, capture_output=True)
    return sa.load(out)


def test_the_scan_equals_every_quota_exactly(scan):
    stated = quotas(load_profile("published"))
    assert len(stated) >= 8
    side = sa.published.side_by_side(scan).set_index("id")
    for quota in stated:
        got = side.loc[quota["figure"], ["count", "total"]].tolist()
        assert got == [quota["count"], quota["total"]], (quota["figure"], quota["note"])


def test_quotas_are_chosen_from_the_published_figures():
    figures = sa.published.figures().set_index("id")
    for quota in quotas(load_profile("published")):
        published = figures.loc[quota["figure"], "value"]
        assert abs(quota["count"] / quota["total"] - published) < 0.01, quota["figure"]


def test_cohort_counts_are_exact_in_the_spec():
    world = generate(2 * BLOCK, seed=5, profile="published")
    servers = Counter(s.behaviour for s in world.smtp_servers.values())
    assert servers["normal"] == 2 * 760                 # one TLS server per STARTTLS domain
    assert servers["no_starttls"] == 2 * (240 + 56)      # 56 hosts with two addresses
    kinds = Counter(s.tls.cert_kind for s in world.smtp_servers.values() if s.tls)
    assert kinds["self_signed"] == 2 * 380 and kinds["wrong_name"] == 2 * 57
    assert kinds["valid"] == 2 * 57
    modes = Counter(p.policy.mode for p in world.policy_hosts.values() if p.policy)
    assert modes == {"enforce": 2 * 29, "testing": 2 * 26, "none": 2 * 3}
    again = generate(2 * BLOCK, seed=5, profile="published")
    assert again.to_json_dict() == world.to_json_dict()


def test_cohort_profiles_check_their_numbers():
    with pytest.raises(ProfileError, match="multiple of 1000"):
        generate(500, profile="published")
    profile = load_profile("published")
    profile["cohorts"] = [{"count": 2, "cert_kind": {"valid": 1}}]
    with pytest.raises(ProfileError, match="add up to 1, not 2"):
        generate(2, profile=profile)
    profile["cohorts"] = [{"count": 2, "colour": "red"}]
    with pytest.raises(ProfileError, match="unknown key 'colour'"):
        generate(2, profile=profile)


def test_a_cohort_deck_answers_for_its_cohort_and_quotas_do_not_import_the_generator():
    profile = {"name": "two", "cohorts": [{"count": 1, "cert_kind": "expired"},
                                          {"count": 1, "cert_kind": {"self_signed": 1}}]}
    cohorts = Cohorts(profile, 4, random.Random(0))
    deck = cohorts.deck("cert_kind", Deck(random.Random(0), {"valid": 1}))
    assert deck.draw() == "valid"   # no domain entered yet: the profile's shares
    drawn = []
    for i in range(4):
        cohorts.enter(i)
        drawn.append(deck.draw())
    assert Counter(drawn) == {"expired": 2, "self_signed": 2}
    with pytest.raises(ValueError, match="no cohort key"):
        cohorts.deck("colour", deck)
    generate(1000, seed=1, profile="published")   # raises if a cohort key has no deck
    code = "import sys, survey.testbed.quotas; print('survey.testbed.generator' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code],
                            capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
