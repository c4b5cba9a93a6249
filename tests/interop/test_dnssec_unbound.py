"""survey's DNSSEC statuses against Unbound's, lookup by lookup (issue 18, Deliver 5).

The signed testbed world of tests/test_dnssec.py (every behaviour: secure, insecure
delegation, unsigned zone under a signed one, CNAMEs across both, expired / not yet valid /
altered / stripped signatures, a DS matching no key) is served on loopback; Unbound
(started here, stopped after) forwards everything to it and validates from the same trust
anchor. Unbound's verdict per lookup: SERVFAIL = bogus (and with +cd the data still
comes), AD = secure, neither = insecure. survey's validator asks the world directly.
The agreement table is printed (``-s``) and every row must agree.

Zones here are signed by survey's own on-line signer (testbed/signing.py); zones signed by
ldns-signzone and served by NSD are compared in test_dnssec_ldns_nsd.py and, as generated
shapes, in test_dnssec_generated.py.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import trio

from survey.dnssec import Anchors
from survey.net.dns import Resolver
from survey.net.dnssec import Validator
from survey.testbed.dns_server import DnsServer
from survey.testbed.signing import Signer
from tests.requirements import needs
from tests.test_dnssec import CASES, signed_world

pytestmark = needs("unbound")


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, below the kernel's ephemeral range: a
    port the kernel hands out may be some other process's outgoing TCP port by the time a
    daemon binds it (Unbound then fails with "Address already in use")."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free port for a DNS daemon")


def _unbound(tmp_path, world_port: int, anchor: str, *, validating: bool = True
             ) -> tuple[subprocess.Popen, int]:
    """Unbound on a free loopback port, forwarding everything to ``world_port``; validating
    from ``anchor`` (or, ``validating=False``, a plain recursive resolver: no AD ever)."""
    port = _free_port()
    (tmp_path / "anchor").write_text(anchor)
    conf = tmp_path / "unbound.conf"
    conf.write_text(f"""server:
    interface: 127.0.0.1
    port: {port}
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{tmp_path}"
    pidfile: "{tmp_path}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    {'trust-anchor-file: "%s/anchor"' % tmp_path if validating else ""}
    local-zone: "test." nodefault
    module-config: "{'validator iterator' if validating else 'iterator'}"
    aggressive-nsec: no
    qname-minimisation: no
    access-control: 127.0.0.0/8 allow
    cache-max-ttl: 0
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{world_port}
""")
    proc = subprocess.Popen([shutil.which("unbound") or "unbound", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query("version.server.", "TXT", rdclass="CH"),
                          "127.0.0.1", timeout=0.5, port=port)
            return proc, port
        except (OSError, dns.exception.Timeout):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("unbound did not start")


def _unbound_status(port: int, name: str, rdtype: str) -> str:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
    if reply.rcode() == dns.rcode.SERVFAIL:
        checked = dns.message.make_query(name, rdtype, want_dnssec=True)
        checked.flags |= dns.flags.CD
        data = dns.query.udp(checked, "127.0.0.1", port=port, timeout=5)
        return "bogus" if data.rcode() != dns.rcode.SERVFAIL else "servfail"
    return "secure" if reply.flags & dns.flags.AD else "insecure"


async def test_survey_and_unbound_agree_on_every_lookup(nursery, tmp_path):
    world = signed_world()
    server = DnsServer(world, host="127.0.0.1")
    host, world_port = await nursery.start(server.serve)
    anchor = Signer(world).anchor_text()
    proc, port = _unbound(tmp_path, world_port, anchor)
    try:
        validator = Validator(Resolver([(host, world_port)], timeout=1, lifetime=3),
                              Anchors.from_text(anchor))
        table = []
        for name, rdtype, *_ in CASES:
            ours = (await validator.lookup(name, rdtype)).dnssec
            # blocking dnspython in a thread: the world answers Unbound from this event loop
            theirs = await trio.to_thread.run_sync(_unbound_status, port, name, rdtype)
            table.append((name, rdtype, ours, theirs))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print("\nlookup | survey | unbound")
    for name, rdtype, ours, theirs in table:
        print(f"{name} {rdtype} | {ours} | {theirs}")
    assert [(n, t, o) for n, t, o, _ in table] == [(n, t, u) for n, t, _, u in table]
