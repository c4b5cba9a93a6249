"""Postfix as the DANE oracle: survey's ``dane`` column against ``posttls-finger -l dane``.

A small signed testbed world (the default profile with most domains signed, so every
DANE kind of survey/testbed/generator.py ``DANE_KINDS`` is planted: DANE-EE 3 1 1 of
the served key, DANE-TA 2 1 1 of the intermediate CA, a mismatching record, a stale
record beside a fresh one, only an unusable PKIX-EE 1 x x record, none) is served by
``survey world --serve`` on loopback. Unbound (started here, stopped after) listens on
port 53 of a loopback address of its own, forwards everything to the world and
validates from the world's trust anchor. Both sides go through that Unbound:

* ``survey scan --resolver UNBOUND --dnssec-anchor ANCHOR`` (survey validates itself
  from the DNSSEC records Unbound passes on);
* ``posttls-finger -c -l dane [MX host]:PORT`` (or ``DOMAIN:PORT``, with Postfix's own
  MX lookup) in a private mount namespace whose
  /etc/resolv.conf names that Unbound (unshare -m + mount --bind: libc's resolver
  cannot be pointed elsewhere; the machine's file is never touched), with a config
  directory of its own saying ``smtp_dns_support_level = dnssec``.

The world's SMTP servers listen on a free port P, not 25, and posttls-finger asks for
TLSA at ``_P._tcp.<host>`` (RFC 6698 §3): the test copies every ``_25._tcp`` TLSA
RRset of the world to ``_P._tcp`` before the world starts (signed by the world's signer
like the rest), so both sides see the same records.

posttls-finger's outcome -> the survey ``dane`` value it stands for (docs/dane.md):

  Verified TLS connection                          valid
  Untrusted, "num=65:no matching DANE TLSA records" no_match
  "unsupported TLSA certificate usage" for every
  record, then Untrusted (Postfix 3.7; newer ones
  say "all TLSA records unusable")                 no_usable_records
  Untrusted and no TLSA said anything (-v adds
  "no TLSA records found, resorting to secure")    not_applicable (secure, no TLSA)
  "MX RRset insecure: log verified as trusted",
  "Matched DANE ..." and Trusted                   valid (a DANE match Postfix logs so
                                                   under an insecure MX RRset)
  no connection: "Host not found, try again",
  "TLSA lookup error"                              defer = dnssec_bogus or
                                                   tlsa_lookup_failed

Beside the planted kinds, the test plants the cases a sending Postfix decides before any
certificate is seen, by editing the world before it is served (``_plant_cases``):

  cname:<kind>   a CNAME'd MX host with TLSA at the target (generator DANE_CNAME_KINDS;
                 ``ta_sni``: the target's server names the target only for SNI = the
                 target, so DANE-TA verifies only with the TLSA base domain as SNI,
                 RFC 7672 §8.1), or at the MX name itself (``alias``)
  bogus_a        the host's A RRset signed with an expired RRSIG
  bogus_tlsa     the host's TLSA RRset changed after signing
  bogus_mx       the domain's MX RRset with an expired or altered RRSIG (the world's own
                 dnssec:expired / dnssec:altered domains), asked by domain (MX lookup)
  insecure_host  the host's name delegated to an unsigned zone of its own, with a TLSA
                 record that matches nothing (no DANE sender may ask for it)
  insecure_mx    an unsigned domain whose MX names a secure DANE-EE host of a signed one,
                 asked by domain (MX lookup): Postfix 3.6+ applies DANE to the host
                 (smtp_tls_dane_insecure_mx_policy), this dataset does not (docs/dane.md)

Postfix's answer to a bogus lookup is Unbound's SERVFAIL: it defers
(``Host not found, try again`` / ``TLSA lookup error``), which stands for ``dnssec_bogus``
(and for ``tlsa_lookup_failed``: Postfix cannot tell them apart).

The table is printed at the end of the run (tests/interop/conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import dns.message
import dns.query
import pytest

from survey.store import open_dataset
from survey.testbed import serve
from survey.testbed.generator import load_profile
from survey.testbed.model import DnsNode, DnsRecord, World, ZoneSpec
from tests.interop.peers import UNSHARE_WRAPPER
from tests.requirements import needs

pytestmark = [pytest.mark.interop,
              needs("posttls-finger", "unbound", "unshare", "mount", root=True)]

SURVEY = [sys.executable, "-m", "survey.cli"]
SEED, DOMAINS = 11, 120
# (domain, MX host, IP) -> (TLSA planted, certificate served, posttls-finger, survey,
# the posttls-finger line that decided)
TABLE: dict[tuple[str, str, str], tuple[str, str, str, str, list[str]]] = {}
# where this dataset and Postfix differ on purpose (docs/dane.md): case -> (Postfix, survey)
ON_PURPOSE = {"insecure_mx": ("valid", "not_applicable")}
# a deferral (Unbound's SERVFAIL for a bogus answer) stands for either survey value
DEFERS = ("dnssec_bogus", "tlsa_lookup_failed")

OUTCOME = re.compile(r"(Verified|Trusted|Untrusted|Anonymous) TLS connection established "
                     r"to [^\[]*\[([^\]]+)\]")
NO_TLSA = 'no TLSA records found, resorting to "secure"'
NO_MATCH = "no matching DANE TLSA records"     # X509_V_ERR_DANE_NO_MATCH (65)
# Postfix 3.7 warns once per record it cannot use and, with none left, verifies as at
# "secure" (PKIX, no CA file here: Untrusted); later versions add the summary line
UNUSABLE = re.compile(r"unsupported TLSA (?:certificate usage|selector|matching type)"
                      r"|all TLSA records unusable")


def pytest_terminal_summary_lines() -> list[str]:
    lines = ["| domain | MX host | IP | planted | certificate | posttls-finger -l dane "
             "| survey dane | agree | the posttls-finger line that decided |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (domain, host, ip), (kind, cert, theirs, ours, line) in sorted(
            TABLE.items(), key=lambda item: (item[1][0], item[0])):
        agree = ("differs on purpose" if ON_PURPOSE.get(kind) == (theirs, ours)
                 else "yes" if _agree(theirs, ours) else "NO")
        quoted = "<br>".join(f"`{one}`" for one in line)
        lines.append(f"| {domain} | {host} | {ip} | {kind} | {cert} | {theirs} | {ours} "
                     f"| {agree} | {quoted} |")
    return lines


def _agree(theirs: str, ours: str) -> bool:
    return theirs == ours or (theirs == "defer" and ours in DEFERS)


# a lookup Postfix could not finish (Unbound's SERVFAIL for a bogus answer), most telling first
DEFERRED = (re.compile(r"^.*Failed to establish session.*TLSA lookup error.*$", re.M),
            re.compile(r"^.*Host not found, try again.*$", re.M))
MATCHED = re.compile(r"Matched DANE (?:EE|TA) certificate at depth \d+")
PEERNAME = re.compile(r"matched peername: \S+")
INSECURE_MX = "MX RRset insecure: log verified as trusted"


def _short(line: str) -> str:
    """A transcript line as the table quotes it: no program prefix, no cipher details."""
    line = line.strip().removeprefix("posttls-finger: ")
    return re.sub(r"(\]:\d+): TLSv.*$", r"\1", line).replace("|", "/")


def _lines(text: str, *needles: str | re.Pattern[str]) -> list[str]:
    """The first transcript line holding each needle, in transcript order."""
    found = []
    for needle in needles:
        for line in text.splitlines():
            if needle.search(line) if isinstance(needle, re.Pattern) else needle in line:
                found.append(line)
                break
    order = text.splitlines()
    return [_short(line) for line in sorted(dict.fromkeys(found), key=order.index)]


def finger_outcome(text: str) -> tuple[str, str | None, list[str]]:
    """(the survey ``dane`` value posttls-finger's transcript stands for, the IP, the lines
    that decided). ``defer``: a lookup failed before any connection (no IP). "Trusted"
    comes only from a DANE match here (no CA file): Postfix logs a DANE match under an
    insecure MX RRset so (postconf(5) smtp_tls_dane_insecure_mx_policy)."""
    found = OUTCOME.search(text)
    if not found:
        for pattern in DEFERRED:
            deferred = pattern.search(text)
            if deferred:
                return "defer", None, [_short(deferred.group(0))]
        raise AssertionError(text)
    outcome, ip = found.groups()
    if outcome in ("Verified", "Trusted"):
        return "valid", ip, _lines(text, INSECURE_MX, MATCHED, PEERNAME, OUTCOME)
    if NO_MATCH in text:
        return "no_match", ip, _lines(text, NO_MATCH)
    if UNUSABLE.search(text):
        return "no_usable_records", ip, _lines(text, UNUSABLE)
    # no TLSA: verified as at "secure" (PKIX; no CA file here), so Untrusted; Postfix 3.7
    # says NO_TLSA only with -v
    return "not_applicable", ip, _lines(text, OUTCOME)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _profile(path: Path) -> Path:
    profile = load_profile("default")
    profile["name"] = "dane-interop"
    profile["dnssec"]["signed"] = 0.7          # every DANE kind in 120 domains (seed 11)
    profile["own"]["host"]["cname"] = 0.15     # and every CNAME'd one, on a good server
    path.write_text(json.dumps(profile))
    return path


def _copy_tlsa(spec: Path, port: int) -> None:
    world = World.load(spec)
    for name, node in list(world.dns.items()):
        if name.startswith("_25._tcp."):
            copy = f"_{port}._tcp.{name.removeprefix('_25._tcp.')}"
            world.dns[copy] = DnsNode(copy, node.records, node.fault, node.fault_types,
                                      node.dnssec_fault, node.dnssec_types)
    world.save(spec)


@dataclass(frozen=True)
class Case:
    """A listener planted by editing the world: survey's row (domain, host) and what
    posttls-finger is pointed at (``[host]``: no MX lookup; the domain: MX lookup)."""

    label: str
    domain: str
    host: str
    destination: str


def _good(world: World, host: str) -> bool:
    """Every server of the host behaves and speaks TLS 1.2+ (see ``_chosen``)."""
    spec = world.mx_hosts.get(host)
    servers = [world.smtp_servers.get(ip) for ip in spec.ips] if spec else []
    return bool(servers) and all(
        s is not None and s.behaviour == "normal" and s.tls is not None
        and s.tls.engine == "openssl" and bool({"TLSv1.2", "TLSv1.3"} & set(s.tls.versions))
        for s in servers)


def _plant_cases(world: World) -> list[Case]:
    """The CNAME'd, bogus and insecure listeners (module docstring), on domains that
    ``_chosen`` does not take, each on an own host with one good server."""
    taken = set(_chosen(world))
    cases: list[Case] = []
    plain: list[tuple[str, str]] = []       # (signed domain, own host) left for the edits
    for d in world.domains:
        if d.name in taken or not d.mx:
            continue
        cname = [t.removeprefix("dane_cname:") for t in d.traits
                 if t.startswith("dane_cname:")]
        if cname:
            host = next(m.host for m in d.mx if world.mx_hosts[m.host].cname)
            if _good(world, host) and not any(c.label == f"cname:{cname[0]}"
                                              for c in cases):
                cases.append(Case(f"cname:{cname[0]}", d.name, host, f"[{host}]"))
            continue
        first = d.mx[0].host
        if ("dnssec:signed" in d.traits and first.endswith("." + d.name)
                and not world.mx_hosts[first].cname and len(world.mx_hosts[first].ips) == 1
                and _good(world, first)):
            plain.append((d.name, first))
    for kind in ("expired", "altered"):
        for d in world.domains:
            if f"dnssec:{kind}" in d.traits and d.mx and world.mx_hosts[d.mx[0].host].ips:
                cases.append(Case(f"bogus_mx:{kind}", d.name, d.mx[0].host, d.name))
                break
    # a DANE-EE host of a signed domain, the MX target of an unsigned domain
    ee = next((d, h) for d, h in plain if f"_25._tcp.{h}" not in world.dns)
    plain.remove(ee)
    _add(world, f"_25._tcp.{ee[1]}", "TLSA", f"3 1 1 @leaf-{_key(world, ee[1])}")
    unsigned = next(d for d in world.domains if "dnssec:unsigned" in d.traits
                    and d.name not in taken and d.mx_kind == "mx"
                    and any(r.rtype == "MX" for r in world.dns[d.name].records))
    node = world.dns[unsigned.name]
    world.dns[unsigned.name] = replace(node, records=tuple(
        r for r in node.records if r.rtype != "MX") + (DnsRecord("MX", f"10 {ee[1]}."),))
    cases.append(Case("insecure_mx", unsigned.name, ee[1], unsigned.name))
    # the host's A RRset signed with an expired RRSIG
    domain, host = plain.pop(0)
    _add(world, f"_25._tcp.{host}", "TLSA", f"3 1 1 @leaf-{_key(world, host)}")
    world.dns[host] = replace(world.dns[host], dnssec_fault="expired", dnssec_types=("A",))
    cases.append(Case("bogus_a", domain, host, f"[{host}]"))
    # the host's TLSA RRset changed after signing
    domain, host = plain.pop(0)
    _add(world, f"_25._tcp.{host}", "TLSA", f"3 1 1 @leaf-{_key(world, host)}")
    owner = f"_25._tcp.{host}"
    world.dns[owner] = replace(world.dns[owner], dnssec_fault="altered",
                               dnssec_types=("TLSA",))
    cases.append(Case("bogus_tlsa", domain, host, f"[{host}]"))
    # the host delegated to an unsigned zone of its own, with TLSA matching nothing
    domain, host = plain.pop(0)
    world.zones[host] = ZoneSpec(host, signed=False, ds=False)
    _add(world, f"_25._tcp.{host}", "TLSA", "3 1 1 " + "00" * 32)
    cases.append(Case("insecure_host", domain, host, f"[{host}]"))
    return cases


def _key(world: World, host: str) -> str:
    tls = world.smtp_servers[world.mx_hosts[host].ips[0]].tls
    assert tls is not None
    return tls.key_type


def _add(world: World, name: str, rtype: str, value: str) -> None:
    """One record more at ``name``; the TLSA RRset replaces any there was."""
    node = world.dns.get(name) or DnsNode(name)
    kept = tuple(r for r in node.records if r.rtype != rtype)
    world.dns[name] = replace(node, records=kept + (DnsRecord(rtype, value),))


def _answers(ip: str) -> bool:
    try:
        dns.query.udp(dns.message.make_query("version.server.", "TXT", rdclass="CH"), ip,
                      timeout=0.5)
        return True
    except (OSError, dns.exception.Timeout):
        return False


@pytest.fixture(scope="module")
def dane_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dane-world")
    out = root / "world"
    serve.build_world(out, domains=DOMAINS, seed=SEED, profile=_profile(root / "p.json"),
                      scale="fast")
    port = _free_tcp_port()
    world = World.load(out / serve.SPEC)
    cases = _plant_cases(world)
    world.save(out / serve.SPEC)
    (root / "cases.json").write_text(json.dumps([c.__dict__ for c in cases]))
    _copy_tlsa(out / serve.SPEC, port)
    proc = subprocess.Popen(SURVEY + ["world", "--serve", "--any-ports", "--smtp-port",
                                      str(port), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / serve.WORLD_JSON).exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the world did not start"
            time.sleep(0.1)
        info = json.loads((out / serve.WORLD_JSON).read_text())
        yield root, out, info, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def unbound(dane_world):
    """Unbound on port 53 of a loopback address of its own (resolv.conf has no port)."""
    root, out, info, _port = dane_world
    world_dns = info["scanner"]["resolvers"][0]
    dns_ip, dns_port = world_dns.rsplit(":", 1)
    ip = f"127.79.{random.randrange(1, 255)}.53"
    conf = root / "unbound.conf"
    conf.write_text(f"""server:
    interface: {ip}
    port: 53
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{root}"
    pidfile: "{root}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    trust-anchor-file: "{out / serve.DNSSEC_ANCHOR}"
    local-zone: "test." nodefault
    module-config: "validator iterator"
    qname-minimisation: no
    access-control: 127.0.0.0/8 allow
forward-zone:
    name: "."
    forward-addr: {dns_ip}@{dns_port}
""")
    proc = subprocess.Popen([shutil.which("unbound") or "unbound", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not _answers(ip):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "unbound did not start"
            time.sleep(0.2)
        yield ip
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _chosen(world: World) -> dict[str, tuple[str, str, str]]:
    """domain -> (its DANE host, the kind planted, the certificate kind served): two
    domains per kind (``none``: a signed domain without TLSA), on own hosts whose
    servers all behave (a 421 banner or a greylisting server ends posttls-finger's one
    attempt; survey's retries are another test's business; a legacy-only server's
    handshake fails at Postfix's security level), certificates varied."""
    chosen: dict[str, tuple[str, str, str]] = {}
    seen: dict[str, set[str]] = {}
    for d in world.domains:
        planted = [t.removeprefix("dane:") for t in d.traits if t.startswith("dane:")]
        if not planted and "dnssec:signed" in d.traits and "structure:tlsa" not in d.traits:
            planted = ["none"]     # signed, no TLSA: Postfix resorts to "secure"
        if not planted or not d.mx or not d.mx[0].host.endswith("." + d.name):
            continue
        host = world.mx_hosts[d.mx[0].host]
        servers = [world.smtp_servers.get(ip) for ip in host.ips]
        if not servers or any(s is None or s.behaviour != "normal" or s.tls is None
                              or not {"TLSv1.2", "TLSv1.3"} & set(s.tls.versions)
                              for s in servers):
            continue
        certs = seen.setdefault(planted[0], set())
        cert = servers[0].tls.cert_kind  # type: ignore[union-attr]
        if len(certs) < 2 and cert not in certs:
            certs.add(cert)
            chosen[d.name] = (host.name, planted[0], cert)
    return chosen


@pytest.fixture(scope="module")
def dane_scan(dane_world, unbound):
    root, out, info, port = dane_world
    world = World.load(out / serve.SPEC)
    chosen = _chosen(world)
    cases = [Case(**c) for c in json.loads((root / "cases.json").read_text())]
    domains = root / "domains.txt"
    domains.write_text("".join(f"{d}\n" for d in [*chosen, *(c.domain for c in cases)]))
    scan = root / "scan"
    done = subprocess.run(
        SURVEY + ["scan", str(domains), "--out", str(scan), "--quiet", "--testbed",
                  "--resolver", unbound, "--dnssec-anchor", str(out / serve.DNSSEC_ANCHOR),
                  "--smtp-port", str(port), "--https-port", str(info["scanner"]["https_port"]),
                  "--ca-file", info.get("ca_file", str(out / serve.CA_BUNDLE)),
                  "--profile", "starttls", "--per-ip-spacing", "0", "--rate", "1000",
                  "--dns-rate", "1000"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = open_dataset(scan, "mx").to_table().to_pylist()
    return chosen, cases, {(r["domain"], r["mx_host"], r["ip"]): r for r in rows}


def posttls_finger(root: Path, resolver: str, destination: str, port: int,
                   *settings: str) -> str:
    """posttls-finger's transcript for ``destination`` (``[host]`` or a domain) at ``port``;
    ``settings``: main.cf lines beyond the DNSSEC support level."""
    conf = root / "postfix"
    conf.mkdir(exist_ok=True)
    (conf / "main.cf").write_text("compatibility_level = 3.6\n"
                                  "smtp_dns_support_level = dnssec\n"
                                  + "".join(f"{line}\n" for line in settings))
    resolv = root / "resolv.conf"
    resolv.write_text(f"nameserver {resolver}\noptions timeout:2 attempts:2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
    env["MAIL_CONFIG"] = str(conf)
    done = subprocess.run(["unshare", "-m", "sh", "-c", UNSHARE_WRAPPER, str(resolv),
                           "posttls-finger", "-c", "-l", "dane", f"{destination}:{port}"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    return done.stdout + done.stderr


def test_survey_dane_agrees_with_posttls_finger_on_every_kind(dane_world, unbound, dane_scan):
    root, _out, _info, port = dane_world
    chosen, _cases, rows = dane_scan
    assert {kind for _host, kind, _cert in chosen.values()} >= {"ee", "ta", "mismatch", "rollover",
                                                          "unusable"}
    for domain, (host, kind, cert) in chosen.items():
        text = posttls_finger(root, unbound, f"[{host}]", port)
        theirs, ip, line = finger_outcome(text)
        row = rows.get((domain, host, ip))
        assert row is not None, (domain, host, ip, sorted(rows))
        TABLE[(domain, host, ip)] = (kind, cert, theirs, row["dane"], line)
    disagree = {k: v for k, v in TABLE.items() if not _agree(v[2], v[3])}
    assert not disagree, disagree


def _cert(world: World, host: str) -> str:
    spec = world.mx_hosts[host]
    tls = world.smtp_servers[spec.ips[0]].tls
    return tls.cert_kind if tls is not None else "none"


def test_cname_bogus_and_insecure_hosts_as_postfix_decides(dane_world, unbound, dane_scan):
    """CNAME'd hosts (SNI = the TLSA base domain, RFC 7672 §8.1), bogus and insecure
    lookups, and a secure host under an insecure MX RRset (the one planned difference)."""
    root, out, _info, port = dane_world
    _chosen_, cases, rows = dane_scan
    world = World.load(out / serve.SPEC)
    assert {c.label for c in cases} >= {"cname:ta_sni", "cname:ee", "cname:alias",
                                        "cname:mismatch", "bogus_mx:expired", "bogus_a",
                                        "bogus_tlsa",
                                        "insecure_host", "insecure_mx"}
    for case in cases:
        text = posttls_finger(root, unbound, case.destination, port)
        (root / f"finger-{case.label.replace(':', '-')}.txt").write_text(text)
        theirs, ip, line = finger_outcome(text)
        ip = ip or world.mx_hosts[case.host].ips[0]
        row = rows.get((case.domain, case.host, ip))
        assert row is not None, (case, ip, sorted(k for k in rows if k[0] == case.domain))
        TABLE[(case.domain, case.host, ip)] = (case.label, _cert(world, case.host), theirs,
                                               row["dane"], line)
        if case.label == "cname:ta_sni":
            target = world.mx_hosts[case.host].cname
            # Postfix verified the leaf served for its SNI, the target: only that one names
            # a reference identifier; survey judged the same handshake
            assert (theirs, row["dane"], row["dane_sni"], row["tlsa_base"]) == (
                "valid", "valid", target, target), (text, row)
        if case.label == "insecure_host":
            assert row["tlsa_records"] is None and "TLSA" not in text, text
    planned = {k: v for k, v in TABLE.items() if v[0] in ON_PURPOSE}
    assert planned and all(ON_PURPOSE[v[0]] == (v[2], v[3]) for v in planned.values()), planned
    disagree = {k: v for k, v in TABLE.items()
                if v[0] not in ON_PURPOSE and not _agree(v[2], v[3])}
    assert not disagree, disagree


def test_posttls_finger_applies_dane_under_an_insecure_mx_whatever_the_policy(
        dane_world, unbound, dane_scan):
    """smtp_tls_dane_insecure_mx_policy is smtp(8)'s: posttls-finger -l dane uses the TLSA
    of a secure host under an insecure MX RRset whatever it says (logging the match as
    "Trusted"), so it cannot show the ``may`` reading this dataset takes (docs/dane.md)."""
    root, _out, _info, port = dane_world
    _chosen_, cases, _rows = dane_scan
    case = next(c for c in cases if c.label == "insecure_mx")
    for policy in ("dane", "may"):
        text = posttls_finger(root, unbound, case.destination, port,
                              f"smtp_tls_dane_insecure_mx_policy = {policy}")
        (root / f"finger-insecure_mx-{policy}.txt").write_text(text)
        assert INSECURE_MX in text and MATCHED.search(text), text
        assert "Trusted TLS connection established" in text, text
