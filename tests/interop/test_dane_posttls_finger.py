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
* ``posttls-finger -c -l dane [MX host]:PORT`` in a private mount namespace whose
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
from pathlib import Path

import dns.message
import dns.query
import pytest

from survey.store import open_dataset
from survey.testbed import serve
from survey.testbed.generator import load_profile
from survey.testbed.model import DnsNode, World
from tests.interop.peers import UNSHARE_WRAPPER
from tests.requirements import needs

pytestmark = [pytest.mark.interop,
              needs("posttls-finger", "unbound", "unshare", "mount", root=True)]

SURVEY = [sys.executable, "-m", "survey.cli"]
SEED, DOMAINS = 11, 120
# (domain, MX host, IP) -> (TLSA planted, certificate served, posttls-finger, survey)
TABLE: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}

OUTCOME = re.compile(r"(Verified|Trusted|Untrusted|Anonymous) TLS connection established "
                     r"to [^\[]*\[([^\]]+)\]")
NO_TLSA = 'no TLSA records found, resorting to "secure"'
NO_MATCH = "no matching DANE TLSA records"     # X509_V_ERR_DANE_NO_MATCH (65)
# Postfix 3.7 warns once per record it cannot use and, with none left, verifies as at
# "secure" (PKIX, no CA file here: Untrusted); later versions add the summary line
UNUSABLE = re.compile(r"unsupported TLSA (?:certificate usage|selector|matching type)"
                      r"|all TLSA records unusable")


def pytest_terminal_summary_lines() -> list[str]:
    lines = ["| domain | MX host | IP | TLSA planted | certificate | posttls-finger -l dane "
             "| survey dane |", "|---|---|---|---|---|---|---|"]
    for (domain, host, ip), (kind, cert, theirs, ours) in sorted(TABLE.items()):
        lines.append(f"| {domain} | {host} | {ip} | {kind} | {cert} | {theirs} | {ours} |")
    return lines


def finger_outcome(text: str) -> tuple[str, str]:
    """(the survey ``dane`` value posttls-finger's transcript stands for, the IP)."""
    found = OUTCOME.search(text)
    assert found, text
    outcome, ip = found.groups()
    if outcome == "Verified":
        return "valid", ip
    if NO_MATCH in text:
        return "no_match", ip
    if UNUSABLE.search(text):
        return "no_usable_records", ip
    # no TLSA: verified as at "secure" (PKIX; no CA file here), so Untrusted; Postfix 3.7
    # says NO_TLSA only with -v
    return "not_applicable", ip


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _profile(path: Path) -> Path:
    profile = load_profile("default")
    profile["name"] = "dane-interop"
    profile["dnssec"]["signed"] = 0.7          # every DANE kind in 120 domains (seed 11)
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
    domains = root / "domains.txt"
    domains.write_text("".join(f"{d}\n" for d in chosen))
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
    return chosen, {(r["domain"], r["mx_host"], r["ip"]): r for r in rows}


def posttls_finger(root: Path, resolver: str, host: str, port: int) -> str:
    conf = root / "postfix"
    conf.mkdir(exist_ok=True)
    (conf / "main.cf").write_text("compatibility_level = 3.6\n"
                                  "smtp_dns_support_level = dnssec\n")
    resolv = root / "resolv.conf"
    resolv.write_text(f"nameserver {resolver}\noptions timeout:2 attempts:2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
    env["MAIL_CONFIG"] = str(conf)
    done = subprocess.run(["unshare", "-m", "sh", "-c", UNSHARE_WRAPPER, str(resolv),
                           "posttls-finger", "-c", "-l", "dane", f"[{host}]:{port}"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    return done.stdout + done.stderr


def test_survey_dane_agrees_with_posttls_finger_on_every_kind(dane_world, unbound, dane_scan):
    root, _out, _info, port = dane_world
    chosen, rows = dane_scan
    assert {kind for _host, kind, _cert in chosen.values()} >= {"ee", "ta", "mismatch", "rollover",
                                                          "unusable"}
    for domain, (host, kind, cert) in chosen.items():
        text = posttls_finger(root, unbound, host, port)
        theirs, ip = finger_outcome(text)
        row = rows.get((domain, host, ip))
        assert row is not None, (domain, host, ip, sorted(rows))
        TABLE[(domain, host, ip)] = (kind, cert, theirs, row["dane"])
    disagree = {k: v for k, v in TABLE.items() if v[2] != v[3]}
    assert not disagree, disagree
