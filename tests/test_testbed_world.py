"""The world generator, the default profile's coverage, and the ground truth."""

from __future__ import annotations

import ipaddress
import json
import ssl
import warnings
from collections import Counter

import pyarrow.parquet as pq
import pytest

from survey.testbed import generator, legacy_tls, truth
from survey.testbed.generator import BEHAVIOURS, CIPHERS, ProfileError, behaviour_shares, generate
from survey.testbed.legacy_tls import starttls_outcome
from survey.testbed.model import REALISTIC_ONLY_BEHAVIOURS, World


@pytest.fixture(scope="module")
def world() -> World:
    return generate(1000, seed=7, scale="fast")


@pytest.fixture(scope="module")
def world_truth(world: World) -> truth.Truth:
    return truth.build_truth(world)


def test_same_seed_same_spec_and_json_round_trip() -> None:
    a, b = generate(300, seed=42), generate(300, seed=42)
    assert a == b
    assert json.dumps(a.to_json_dict()) == json.dumps(b.to_json_dict())
    assert World.from_json_dict(json.loads(json.dumps(a.to_json_dict()))) == a
    assert generate(300, seed=43).domains != a.domains


def test_save_and_load(tmp_path) -> None:
    w = generate(50, seed=1)
    w.save(tmp_path / "spec.json")
    assert World.load(tmp_path / "spec.json") == w


@pytest.mark.parametrize("seed", [0, 1, 2, 99])
def test_default_has_every_behaviour_per_1000_domains(seed: int) -> None:
    shares = behaviour_shares(generate(1000, seed=seed))
    realistic_only = {f"smtp:{b}" for b in REALISTIC_ONLY_BEHAVIOURS}
    missing = [b for b, share in shares.items() if share == 0 and b not in realistic_only]
    assert not missing, missing


def test_behaviour_vocabulary_is_covered_by_traits() -> None:
    for b in generator.SMTP_BEHAVIOURS:
        assert f"smtp:{b}" in BEHAVIOURS
    for b in generator.POLICY_BEHAVIOURS:
        assert f"policy:{b}" in BEHAVIOURS


def test_address_plan(world: World) -> None:
    assert world.resolver == "127.53.0.1"
    for ip in world.smtp_servers:
        addr = ipaddress.ip_address(ip)
        assert addr.is_loopback
        if addr.version == 4:
            assert not ip.startswith("127.0."), ip
        else:
            assert ip == "::1"
    for p in world.policy_hosts.values():
        assert p.ip is None or (p.ip.startswith("127.") and not p.ip.startswith("127.0."))
    for node in world.dns.values():
        for r in node.records:
            if r.rtype == "A":
                assert r.value.startswith("127.") and not r.value.startswith("127.0.0.")
            if r.rtype == "AAAA":
                assert r.value == "::1"


def test_large_providers_share_addresses(world: World) -> None:
    per_ip = Counter(ip for d in world.domains for m in d.mx
                     for ip in world.mx_hosts[m.host].ips)
    assert max(per_ip.values()) >= 150          # thousands at 10,000 domains
    per_customer = [h for h in world.mx_hosts if h.endswith(".mail.protect.test")]
    assert len(per_customer) > 100
    assert len({ip for h in per_customer for ip in world.mx_hosts[h].ips}) <= 4
    assert world.smtp_servers["::1"].tls is not None
    assert "mx1.bigmail.test" in world.smtp_servers["::1"].tls.names


def test_structures_present_in_dns(world: World) -> None:
    types = Counter(r.rtype for n in world.dns.values() for r in n.records)
    assert {"MX", "A", "AAAA", "TXT", "CNAME", "TLSA", "SOA", "NS"} <= set(types)
    assert any(r.value == "0 ." for n in world.dns.values() for r in n.records)
    split = [r for n in world.dns.values() for r in n.records
             if r.rtype == "TXT" and r.value.count('" "') >= 1]
    assert split
    faults = Counter(n.fault for n in world.dns.values() if n.fault)
    assert set(faults) == {"servfail", "refused", "timeout", "truncate"}
    # CNAME'd MX hosts resolve to the target's addresses
    cnamed = [h for h in world.mx_hosts.values() if h.cname]
    assert cnamed and all(h.ips == world.mx_hosts[h.cname].ips for h in cnamed)


def test_profile_errors(tmp_path) -> None:
    with pytest.raises(ProfileError):
        generate(10, profile="no-such-profile")
    bad = generator.load_profile("default")
    bad["own"]["behaviour"] = {"normal": 0.5, "bogus": 0.5}
    with pytest.raises(ProfileError):
        generate(10, profile=bad)
    custom = generator.load_profile("default")
    custom["name"] = "mine"
    custom["own"]["behaviour"] = {"banner_554": 1.0}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(custom))
    w = generate(200, profile=str(path))
    assert w.profile == "mine"
    own = [s for s in w.smtp_servers.values() if s.owner == "own"
           and not (s.tls and s.tls.cert_kind == "sni_dependent")]  # SNI pairs are normal
    assert {s.behaviour for s in own} == {"banner_554"}


def test_shares_follow_profile() -> None:
    w = generate(4000, seed=5)
    own = [s for s in w.smtp_servers.values() if s.owner == "own"]
    share = Counter(s.behaviour for s in own)["no_starttls"] / len(own)
    assert 0.08 < share < 0.16


# -- truth ------------------------------------------------------------------------------

def test_truth_is_deterministic_and_fits_schema(tmp_path) -> None:
    w = generate(300, seed=11)
    a = truth.write_truth(w, tmp_path / "a")
    b = truth.write_truth(generate(300, seed=11), tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "dir"} == {k: v for k, v in b.items() if k != "dir"}
    for table, name in a["files"].items():
        ta = pq.read_table(tmp_path / "a" / name)
        tb = pq.read_table(tmp_path / "b" / name)
        assert ta.equals(tb), table
        for col in a["columns"]["starttls"][table]:
            assert col in ta.column_names


def _server_of(world: World, truth_rows, pred):
    return [r for r in truth_rows if r.get("ip") and pred(world.smtp_servers[r["ip"]])]


def test_truth_cert_verdicts(world: World, world_truth: truth.Truth) -> None:
    mx = world_truth.rows["mx"]
    tls_ok = [r for r in mx if r.get("host_status") == "ok"]
    by_kind: dict[str, list] = {}
    for r in tls_ok:
        by_kind.setdefault(world.smtp_servers[r["ip"]].tls.cert_kind, []).append(r)
    assert {r["cert_status"] for r in by_kind["expired"]} == {"expired"}
    assert all(r["cert_time_valid"] is False and r["cert_trusted"] for r in by_kind["expired"])
    assert {r["cert_status"] for r in by_kind["self_signed"]} == {"self_signed"}
    assert {r["cert_status"] for r in by_kind["missing_intermediate"]} == {"untrusted"}
    assert {r["cert_status"] for r in by_kind["wrong_name"]} == {"name_mismatch"}
    sni = by_kind["sni_dependent"]
    assert {r["cert_status"] for r in sni} == {"valid", "name_mismatch"}
    # a CNAME'd MX host is matched by the name in the MX record
    cnamed = [r for r in tls_ok if world.mx_hosts[r["mx_host"]].cname
              and world.smtp_servers[r["ip"]].tls.cert_kind == "valid"]
    assert {r["cert_status"] for r in cnamed} == {"valid", "name_mismatch"}
    for r in mx:
        if r["ip"] is None:
            assert r["mx_status"] in ("nxdomain", "no_data", "servfail")
            assert r.get("cert_status") is None
        elif r["host_status"] != "ok":
            assert r["cert_status"] == "no_cert" and r.get("cert_trusted") is None


def test_truth_host_statuses(world: World, world_truth: truth.Truth) -> None:
    expect = {"tarpit": "read_timeout", "banner_421_rate_limit": "rate_limited",
              "banner_421": "smtp_reject_4xx", "banner_554": "smtp_reject_5xx",
              "ehlo_4xx": "smtp_reject_4xx", "starttls_454": "starttls_rejected",
              "starttls_500": "starttls_rejected", "drop_after_starttls": "tls_handshake_failed",
              "reset": "reset", "no_starttls": "no_starttls", "greylist": "ok",
              "per_ip_limit": "ok", "slow_banner": "ok", "normal": "ok",
              "multiline_banner": "ok", "endless_banner": "protocol_error",
              "long_line": "protocol_error", "garbage": "protocol_error",
              "tls_truncated": "tls_handshake_failed", "hostile_text": "ok"}
    seen = set()
    for r in world_truth.rows["hosts"]:
        server = world.smtp_servers[r["ip"]]
        b = server.behaviour
        seen.add(b)
        want = expect[b]
        if want == "ok" and server.tls and server.tls.engine == "tlslite" \
                and starttls_outcome(server.tls) is None:
            want = "tls_handshake_failed"   # a legacy server the scanner's client cannot talk to
        assert r["status"] == want, (b, r)
        if b == "no_starttls":
            assert r["starttls_offered"] is False and "STARTTLS" not in r["ehlo_capabilities"]
        if r["status"] == "ok":
            assert r["tls_version"] and r["ehlo_capabilities_tls"] is not None
        if b == "multiline_banner":
            assert r["banner"].count("\r\n") >= 2 and r["banner"].startswith("220-")
    assert seen == set(expect)


def test_truth_mta_sts(world: World, world_truth: truth.Truth) -> None:
    rows = {r["domain"]: r for r in world_truth.rows["domains"]}
    for d in world.domains:
        r = rows[d.name]
        if d.mta_sts.status != "valid":
            assert r["mta_sts_policy_status"] == "not_attempted"
            continue
        ph = world.policy_hosts[d.name]
        if ph.behaviour == "ok":
            assert r["mta_sts_policy_status"] == "ok"
            assert r["mta_sts_mode"] == ph.policy.mode
        elif ph.behaviour.startswith(("invalid_", "missing_")) or ph.behaviour == "syntax":
            assert (r["mta_sts_policy_status"], r["mta_sts_policy_error"]) == (
                "invalid", ph.behaviour)
        else:
            assert r["mta_sts_policy_status"] == "fetch_error"
    # enforce + a session failing everywhere -> fail; testing always delivers
    verdicts = Counter((r["mta_sts_mode"], r["sts_domain_verdict"]) for r in rows.values())
    assert verdicts[("testing", "fail")] == 0
    assert verdicts[("enforce", "fail")] > 0 and verdicts[("enforce", "deliver")] > 0
    types = Counter(r["tlsrpt_result_type"] for r in world_truth.rows["mx"])
    for t in ("sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
              "starttls-not-supported", "certificate-not-trusted", "certificate-expired",
              "certificate-host-mismatch", "validation-failure"):
        assert types[t] > 0, t


def test_name_matches() -> None:
    assert truth.name_matches("a.mail.protect.test", "*.mail.protect.test")
    assert not truth.name_matches("mail.protect.test", "*.mail.protect.test")
    assert not truth.name_matches("a.b.mail.protect.test", "*.mail.protect.test")
    assert truth.name_matches("MX1.A.test", "mx1.a.test")
    # one label after the star: an mx pattern (RFC 8461 §4.1), never a certificate (OpenSSL)
    assert truth.name_matches("nexo42631.test", "*.test")
    assert not truth.name_matches("nexo42631.test", "*.test", certificate=True)
    assert truth.name_matches("a.b.test", "*.b.test", certificate=True)


def _handshake(server_ctx: ssl.SSLContext, sni: str) -> tuple[str, str]:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client.minimum_version = ssl.TLSVersion.TLSv1
    client.set_ciphers(legacy_tls.STARTTLS_CLIENT_CIPHERS)   # the scanner's stated client
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=sni)
    s = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(20):
        for obj in (c, s):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if c.version() and s.version():
            try:
                c.do_handshake()
                break
            except ssl.SSLWantReadError:
                continue
    version = {"TLSv1": "TLSv1.0"}.get(c.version(), c.version())
    name = c.cipher()[0]
    iana = {o: i for o, (i, _k, _t) in CIPHERS.items()}.get(name, name)
    return version, iana


def test_truth_tls_matches_real_handshakes(world: World, world_truth: truth.Truth) -> None:
    """The negotiated version and cipher the truth states are what OpenSSL does."""
    from survey.testbed.pki import Pki

    pki = Pki()
    unknown = {(u["key"][0], u["column"]) for u in world_truth.unknown}
    checked = set()
    for r in world_truth.rows["hosts"]:
        server = world.smtp_servers[r["ip"]]
        if r["status"] != "ok" or server.tls is None or server.tls.engine != "openssl":
            continue  # tlslite servers: tests/test_testbed_legacy.py
        tls = server.tls
        key = (tls.versions, tls.ciphers, tls.server_preference, tls.key_type)
        if key in checked:
            continue
        checked.add(key)
        ctx = pki.server_context(tls, tls.names)
        version, cipher = _handshake(ctx, tls.names[0])
        assert version == r["tls_version"], (tls, version)
        if (r["ip"], "cipher_suite") not in unknown:
            assert cipher == r["cipher_suite"], (tls, cipher)
    assert len(checked) >= 10
