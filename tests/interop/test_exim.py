"""Politeness as Exim sees it: a full `ciphers` enumeration of one Exim 4.96 listener that
accepts one connection per client address at a time (``smtp_accept_max_per_host = 1``).

Exim counts a session until it has reaped the session's process, so a client that
reconnects within milliseconds of its last QUIT is a second concurrent connection and
gets ``421 Too many concurrent SMTP connections``; issue 20 saw 22 of 62 connections
refused that way, each followed by a 30 s back-off, because the per-address spacing was
not applied between the enumeration's hellos. Here the scanner's own prober, enumerator
and politeness (the defaults: one connection per address, a second between connections)
run against Exim, and Exim's log is the judge: no refusal, and as many connections as
the host row's ``connections`` says.

Exim is Debian's exim4 4.96 (GnuTLS), unpacked by tests/interop/setup.sh (its packages
conflict with Postfix as installed MTAs) and run with this test's own configuration on
loopback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import trio

from survey.scan.config import ScanConfig
from survey.scan.toolkit import Toolkit
from survey.vocabulary import HostStatus, ProbeStatus
from tests.requirements import needs

pytestmark = needs("survey-exim4", "openssl", root=True)

IP, PORT, NAME = "127.77.9.1", 2525, "mx.exim.interop.test"
CONFIG = """\
primary_hostname = {name}
exim_user = Debian-exim
exim_group = Debian-exim
keep_environment =
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
local_interfaces = <; {ip}
daemon_smtp_ports = {port}
smtp_accept_max_per_host = 1
log_selector = +smtp_connection +tls_cipher +millisec
tls_advertise_hosts = *
tls_certificate = {root}/cert.pem
tls_privatekey = {root}/key.pem
acl_smtp_rcpt = refuse_all
begin acl
refuse_all:
  deny
"""


@pytest.fixture
def exim(tmp_path):
    # not under pytest's tmp_path: its parents are root's alone (0700), and Exim's own
    # user must reach its spool and log
    root = Path(tempfile.mkdtemp(prefix="survey-exim-"))
    root.chmod(0o755)
    (root / "spool").mkdir(parents=True)
    (root / "log").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
                    "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
                    "-subj", f"/CN={NAME}"], check=True, capture_output=True)
    for path in [*root.rglob("*"), root]:       # Exim's own user writes spool and log
        shutil.chown(path, "Debian-exim", "Debian-exim")
    # the configuration stays root's: Exim refuses one its user could change
    (tmp_path / "exim.conf").write_text(CONFIG.format(name=NAME, root=root, ip=IP,
                                                      port=PORT))
    started = subprocess.run(["survey-exim4", "-C", str(tmp_path / "exim.conf"), "-bd"],
                             capture_output=True, text=True, timeout=30, check=False)
    assert started.returncode == 0, started.stderr
    log = root / "log" / "mainlog"
    deadline = time.monotonic() + 20
    while "daemon started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "Exim did not start"
        time.sleep(0.1)
    try:
        yield log
    finally:
        pid = int((root / "exim.pid").read_text().split()[0])
        subprocess.run(["kill", str(pid)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_a_full_ciphers_enumeration_gets_no_421_and_counts_every_connection(exim, tmp_path):
    domains = tmp_path / "list.txt"
    domains.write_text("exim.interop.test\n")
    config = ScanConfig(input=domains, out=tmp_path / "scan", mode="testbed",
                        resolvers=[("127.0.0.1", 9)], smtp_port=PORT, profile="ciphers",
                        ehlo_name="scanner.interop.test", mozilla_roots=False)
    assert config.per_ip == 1 and config.per_ip_spacing == 1.0     # the polite defaults
    seen = []
    tools = Toolkit(config, on_base=seen.append)
    started = time.monotonic()
    trio.run(tools.prober.for_name, IP, NAME)
    took = time.monotonic() - started
    attempted = seen[0]
    enumeration = attempted.enumeration
    text = exim.read_text()
    opened = len(re.findall(r"SMTP connection from \S+ \(TCP/IP connection count", text))
    refused = refusals(text)
    assert refused == [], refused
    assert attempted.probe.status == HostStatus.OK
    assert enumeration.probe_status == ProbeStatus.OK and enumeration.backoffs == 0
    assert "TLSv1.3" in enumeration.versions_supported and len(enumeration.cipher_suites) > 10
    assert attempted.connections == opened == tools.politeness.connections
    # a second between connections, as Exim saw them: from each session's end to the next
    # connection (Exim's log with milliseconds)
    gaps = exim_gaps(text)
    assert len(gaps) == opened - 1 and min(gaps) >= config.per_ip_spacing - 0.05, gaps
    assert took >= (opened - 1) * config.per_ip_spacing
    print(f"Exim: {opened} connections, 0 refused, {took:.0f} s, smallest gap "
          f"{min(gaps):.3f} s, {len(enumeration.cipher_suites)} suites")


def refusals(text: str) -> list[str]:
    """The log lines that say Exim refused a connection or answered 421.

    Only the text after each line's timestamp is searched, and 421 only as a word: with
    +millisec a stamp such as ``13:00:01.421``, or a source port such as 44213, is not a
    refusal (CI once failed on such a line)."""
    found = []
    for line in text.splitlines():
        message = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? ", "", line)
        if re.search(r"(?i)too many|refused|(?<![\d.:])421(?!\d)", message):
            found.append(line)
    return found


def test_refusals_reads_the_message_not_the_timestamp_or_the_port():
    lines = ["2026-12-06 13:00:01.421 SMTP connection from [127.0.0.1]:44213 "
             "(TCP/IP connection count = 1)",
             "2026-12-06 13:00:02.100 SMTP connection from [127.0.0.1]:42100 closed by QUIT",
             "2026-12-06 13:00:03.007 Connection from [127.0.0.1] refused: too many "
             "connections from that IP address",
             "2026-12-06 13:00:04.500 H=[127.0.0.1] 421 Too many concurrent SMTP connections"]
    assert refusals("\n".join(lines)) == lines[2:]


def exim_gaps(text: str) -> list[float]:
    """Seconds from each session's end (closed/lost) to the next connection, from the log."""
    from datetime import datetime

    events = []
    for line in text.splitlines():
        stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (.*)", line)
        if not stamp:
            continue
        when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if "TCP/IP connection count" in stamp.group(2):
            events.append(("open", when))
        elif re.search(r"SMTP connection from .* (closed|lost)|unexpected disconnection",
                       stamp.group(2)):
            events.append(("close", when))
    gaps, last_close = [], None
    for kind, when in events:
        if kind == "open" and last_close is not None:
            gaps.append(when - last_close)
            last_close = None
        elif kind == "close":
            last_close = when
    return gaps
