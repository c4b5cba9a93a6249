"""survey.certs against the system ``openssl verify -purpose sslserver``: the same verdicts.

A differential test: every named chain kind of survey.testbed.chains (each
defect alone, good paths in odd orders, cross-signs, wildcards, CN-only
leaves) and 500 random combinations drawn by hypothesis (extensions, key
identifiers, keys, digests, validity windows, what is sent and in which
order, what is trusted) are judged by survey.certs and by the OpenSSL that
Postfix links, and must agree:

- trusted: ``openssl verify -purpose sslserver -auth_level 1 -no_check_time``
  says OK (security level 1 is what Debian 12's Postfix client verifies at,
  measured with posttls-finger; docs/certificates.md);
- time-valid, for trusted chains: the same at ``-attime`` the judging time;
- name: ``openssl verify -verify_hostname`` on the leaf alone (trusted as a
  partial chain, so only the name is judged);
- reason: OpenSSL's first verify error is one of those the reason stands for.

A deliberate difference would be listed in docs/certificates.md; there is
none in what is generated here (the name rules differ only for shapes the
generator does not draw: partial wildcards, IP-address names).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.certs import TrustStore, evaluate
from survey.testbed import chains
from survey.testbed.chains import (
    ANY_EKU,
    CLIENT_AUTH,
    SERVER_AUTH,
    CertSpec,
    ChainSpec,
    build,
    kinds,
    leaf_spec,
)
from tests.requirements import needs

pytestmark = needs("openssl")

HOST = "mx.example.test"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
RANDOM_CHAINS = 500
PEM = serialization.Encoding.PEM

# OpenSSL 3.0 verify error numbers each reason stands for (include/openssl/x509_vfy.h)
CODES = {
    "unknown_issuer": {2, 20, 21}, "akid_mismatch": {2, 20}, "self_signed": {18},
    "untrusted_root": {19}, "not_ca": {24, 79}, "key_usage": {24, 26, 32, 79},
    "purpose": {26}, "path_length": {25}, "name_constraints": {47, 48, 49, 51, 53},
    "unknown_critical_extension": {34}, "weak_key": {66, 67}, "weak_signature": {68},
    "signature_invalid": {7}, "chain_too_long": {22},
}
TALLY: Counter[str] = Counter()


@dataclass
class Openssl:
    trusted: bool
    first_error: int | None
    time_valid: bool | None       # judged for trusted chains
    name_match: bool


def _verify_all(*runs: list[str]) -> list[tuple[bool, int | None]]:
    """``openssl verify`` with each argument list, run side by side: (OK?, first error)."""
    procs = [subprocess.Popen(["openssl", "verify", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in runs]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        errors = re.findall(r"error (\d+) at \d+ depth", out + err)
        ok = proc.returncode == 0 and ": OK" in out
        assert ok or errors or "error" in err, (out, err)
        results.append((ok, int(errors[0]) if errors else None))
    return results


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("openssl")
    # a CA file for chains that trust nothing: an unrelated root
    dummy = build(ChainSpec((CertSpec("nobody's root", key="other"),), (0,), (0,)), NOW)
    (directory / "none.pem").write_bytes(dummy.anchors_pem())
    return directory


def openssl_verdicts(built: chains.Built, host: str, at: dt.datetime, directory: Path
                     ) -> Openssl:
    ca = directory / "ca.pem"
    if built.anchors:
        ca.write_bytes(built.anchors_pem())
    else:
        ca = directory / "none.pem"
    leaf = directory / "leaf.pem"
    leaf.write_bytes(built.sent[0].public_bytes(PEM))
    base = ["-purpose", "sslserver", "-auth_level", "1", "-CAfile", str(ca)]
    if len(built.sent) > 1:
        untrusted = directory / "untrusted.pem"
        untrusted.write_bytes(b"".join(c.public_bytes(PEM) for c in built.sent[1:]))
        base += ["-untrusted", str(untrusted)]
    (trusted, first), (in_date, _), (named, _) = _verify_all(
        [*base, "-no_check_time", str(leaf)],
        [*base, "-attime", str(int(at.timestamp())), str(leaf)],
        ["-partial_chain", "-ignore_critical", "-no_check_time", "-CAfile", str(leaf),
         "-verify_hostname", host, str(leaf)])
    time_valid = in_date if trusted else None
    return Openssl(trusted, first, time_valid, named)


def assert_agree(built: chains.Built, host: str, directory: Path, label: str) -> None:
    verdict = evaluate(built.sent_der(), host, NOW, TrustStore(list(built.anchors)))
    theirs = openssl_verdicts(built, host, NOW, directory)
    ours = (verdict.trusted, verdict.time_valid if verdict.trusted else None,
            verdict.name_match)
    assert ours == (theirs.trusted, theirs.time_valid, theirs.name_match), (label, verdict,
                                                                            theirs)
    if not verdict.trusted:
        assert theirs.first_error in CODES[verdict.reason], (label, verdict, theirs)
    TALLY[label.split(":")[0]] += 1
    TALLY[f"trusted={verdict.trusted}"] += 1
    if verdict.reason:
        TALLY[f"reason={verdict.reason}"] += 1


@pytest.mark.parametrize("kind", kinds(HOST), ids=lambda k: k.name)
def test_every_chain_kind_agrees_with_openssl_and_with_its_construction(kind, workdir):
    built = build(kind.spec, NOW)
    verdict = evaluate(built.sent_der(), HOST, NOW, TrustStore(list(built.anchors)))
    assert (verdict.trusted, verdict.reason, verdict.time_valid, verdict.name_match) == \
        (kind.trusted, kind.reason, kind.time_valid, kind.name_match), kind.note
    assert_agree(built, HOST, workdir, f"kind:{kind.name}")


def test_a_wildcard_above_a_two_label_host_matches_nothing_as_in_openssl(workdir):
    """A domain without MX records is its own mail host (RFC 5321 §5.1): for a two-label
    name the valid_wildcard leaf says "*.test". A 100,000-domain scan found the truth
    calling that a match where the scanner, like OpenSSL, did not."""
    host = "nexo42631.test"
    kind = next(k for k in kinds(host) if k.name == "valid_wildcard")
    built = build(kind.spec, NOW)
    verdict = evaluate(built.sent_der(), host, NOW, TrustStore(list(built.anchors)))
    assert kind.name_match is False and verdict.name_match is False
    assert_agree(built, host, workdir, "kind:valid_wildcard")


def test_there_are_at_least_twenty_kinds_with_every_defect_alone():
    names = {k.name for k in kinds(HOST)}
    reasons = {k.reason for k in kinds(HOST)}
    assert len(names) >= 20
    assert set(CODES) - reasons <= {"chain_too_long"}   # each reason built (one aside)
    assert {"valid_out_of_order", "valid_cross_signed", "valid_wildcard",
            "valid_cn_only"} <= names


# -- random combinations ---------------------------------------------------------------------

VALIDITY = {"valid": (-30, 300), "expired": (-400, -2), "not_yet": (5, 400)}
_validity = st.sampled_from(["valid"] * 8 + ["expired", "not_yet"])
_eku = st.sampled_from([None] * 6 + [(SERVER_AUTH,), (CLIENT_AUTH,), (SERVER_AUTH, CLIENT_AUTH),
                                     (ANY_EKU,)])
_akid = st.sampled_from(["right"] * 8 + ["none", "wrong"])


@st.composite
def ca_spec(draw, name: str, issuer: int | None, role: str, clean: bool) -> CertSpec:
    """A CA certificate; ``clean`` ones vary only in key, validity and digest."""
    nb, na = VALIDITY[draw(_validity)]
    spec = CertSpec(name, issuer=issuer, key=draw(st.sampled_from([role] * 4 + ["rsa2048"])),
                    akid="right" if issuer is not None else "none", not_before=nb,
                    not_after=na, hash=draw(st.sampled_from(["sha256"] * 3 + ["sha384"])))
    if clean:
        return spec
    constraint = draw(st.sampled_from([None] * 6 + ["permit", "exclude"]))
    domain = (draw(st.sampled_from(["example.test", "elsewhere.test", ".example.test"])),)
    return replace(
        spec, key=draw(st.sampled_from([role] * 6 + ["rsa2048", "rsa1024", "rsa768"])),
        ca=draw(st.sampled_from([True] * 8 + [False, None])),
        path_length=draw(st.sampled_from([None] * 4 + [0, 1])),
        key_usage=draw(st.sampled_from(["ca"] * 8 + ["no_certsign", None])),
        eku=draw(_eku), akid=draw(_akid) if issuer is not None else "none",
        skid=draw(st.sampled_from([True] * 5 + [False])),
        critical_unknown=draw(st.integers(0, 19)) == 0,
        hash=draw(st.sampled_from(["sha256"] * 6 + ["sha1"])),
        permitted_dns=domain if constraint == "permit" else (),
        excluded_dns=domain if constraint == "exclude" else ())


@st.composite
def random_chain(draw) -> tuple[ChainSpec, str]:
    depth = draw(st.integers(0, 3))
    roles = ["inter", "inter2", "inter3"]
    clean = draw(st.integers(0, 2)) > 0     # two in three: no defect drawn in the CAs
    certs = [draw(ca_spec("root", None, "root", clean))]
    for i in range(depth):
        certs.append(draw(ca_spec(f"inter {i}", i, roles[i], clean)))
    names = draw(st.sampled_from([(HOST,), ("*.example.test",), ("other.example.test",),
                                  None, (HOST, "mx2.example.test")]))
    nb, na = VALIDITY[draw(_validity)]
    leaf = leaf_spec("leaf", depth, names=names or (HOST,), cn=HOST if names is None else None,
                     san=names, not_before=nb, not_after=na,
                     key=draw(st.sampled_from(["leaf"] * 4 + ["rsa2048"])))
    if not clean or draw(st.integers(0, 3)) == 0:
        leaf = replace(
            leaf, key=draw(st.sampled_from(["leaf"] * 6 + ["rsa2048", "rsa1024", "rsa768"])),
            ca=draw(st.sampled_from([False] * 6 + [None, True])),
            key_usage=draw(st.sampled_from(["leaf"] * 6 + ["certsign_only", None])),
            eku=draw(st.sampled_from([(SERVER_AUTH,)] * 5 + [None, (CLIENT_AUTH,),
                                                             (ANY_EKU,)])),
            akid=draw(_akid), critical_unknown=draw(st.integers(0, 19)) == 0,
            hash=draw(st.sampled_from(["sha256"] * 6 + ["sha1"])))
    certs.append(leaf)
    # an RSA signer is needed for a SHA-1 signature (chains.py signs the TBS itself)
    for i, spec in enumerate(certs):
        signer = certs[spec.issuer] if spec.issuer is not None else spec
        if spec.hash == "sha1" and not signer.key.startswith("rsa"):
            certs[i] = replace(spec, hash="sha256")
    leaf_index = len(certs) - 1
    extra: list[int] = []
    if depth and draw(st.integers(0, 5)) == 0:     # a second copy of an intermediate
        twin = draw(st.integers(1, depth))
        nb, na = VALIDITY[draw(_validity)]
        certs.append(replace(certs[twin], not_before=nb, not_after=na))
        extra.append(len(certs) - 1)
    if draw(st.integers(0, 5)) == 0:               # an unrelated certificate
        certs.append(CertSpec("unrelated", key="other"))
        extra.append(len(certs) - 1)
    middle = [i for i in range(1, depth + 1) if draw(st.integers(0, 11)) > 0]
    if draw(st.integers(0, 3)) == 0:
        middle.append(0)
    sent = draw(st.permutations(middle + extra))
    anchors = (0,) if draw(st.integers(0, 11)) > 0 else ()
    return ChainSpec(tuple(certs), (leaf_index, *sent), anchors), draw(
        st.sampled_from([HOST, HOST, "mx2.example.test", "Mx.Example.Test"]))


@settings(max_examples=RANDOM_CHAINS, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(random_chain())
def test_random_chains_agree_with_openssl(workdir, drawn):
    spec, host = drawn
    assert_agree(build(spec, NOW), host, workdir, "random")


def test_tally(capsys):
    """Prints what the two tests above judged (run with -s to see it)."""
    with capsys.disabled():
        print("\nchains judged:", dict(sorted(TALLY.items())))
