"""The interop lab: real Postfix, Unbound and nginx on loopback, configured per test session.

Theory of operation
-------------------
Our testbed and our scanner could share a misunderstanding; real mail software
breaks that symmetry. The lab is a small mail Internet under ``interop.test``:

* **Postfix** -- one instance (``postfix -c DIR start``) whose master.cf has one
  smtpd listener per TLS setting, each on its own 127.77.1.x address and the
  same high port, with ``-o`` overrides (``LISTENERS``).
* **Unbound** -- the resolver: an authoritative ``local-zone`` for the lab's
  domains (MX, null MX, implicit MX, MTA-STS and TLSRPT TXT records, split TXT
  strings included) on 127.77.0.53 and a high port. Everything outside the zone
  is answered NXDOMAIN locally (``local-zone: "." static``) and, belt and
  braces, forwarded to a dead loopback port: it never recurses off the machine.
* **nginx** -- the MTA-STS policy hosts, one server block per ``mta-sts.<domain>``
  behind SNI on 127.77.2.1 and a high port (``POLICY_HOSTS``).

Each daemon gets its own directory under a temporary root (0755, so Postfix's
unprivileged processes can reach their queue), its own config, pid and log
files; nothing of the machine's configuration is read or changed. ``Lab.start``
starts the daemons in order, waits until each answers, and on any failure stops
what it started; ``Lab.stop`` stops all of them (each step tolerates a daemon
that is already gone). The ``expect`` fields say what each piece was configured
to do; the tests compare scanners against them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.interop.pki import LabPki, Served
from tests.requirements import needs

# The lab's daemons and tools (tests/interop/setup.sh installs them); Postfix starts as root.
LAB_PROGRAMS = ("postfix", "unbound", "unbound-checkconf", "nginx", "openssl")
NEEDS_LAB = needs(*LAB_PROGRAMS, root=True)

ZONE = "interop.test"
DNS_IP = "127.77.0.53"
HTTPS_IP = "127.77.2.1"
LAB_CHECK_AGENT = "interop-lab-check"   # the lab's own checks, told apart in nginx's log

# Cipher lists (OpenSSL syntax) the listeners are configured with.
POSTFIX_MEDIUM = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"      # Postfix's default
LEGACY_CIPHERS = POSTFIX_MEDIUM + ":@SECLEVEL=0"
RESTRICTED_TLS12 = ("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
                    "DHE-RSA-AES256-GCM-SHA384:AES256-SHA")
RESTRICTED_TLS13 = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
# The anon listener: anonymous suites first, its own order, no TLS 1.3 (which has none) --
# it picks an anonymous suite for a client that offers one. TLS 1.2 stays on: Debian 12's
# Postfix client (security level 2) cannot do TLS 1.0/1.1 at all, so posttls-finger could
# not reach a listener capped lower.
ANON_CIPHERS = "aNULL:HIGH:MEDIUM:!PSK:!SRP:@SECLEVEL=0"


@dataclass(frozen=True)
class Listener:
    """One smtpd listener: its address, its TLS settings and its certificate kind."""

    label: str
    ip: str
    tls: str                # none | default | modern | legacy | restricted | reject | anon
    cert: str | None        # valid | expired | self_signed | untrusted | chain:KIND (None:
                            # no TLS)
    extra_names: tuple[str, ...] = ()
    key_types: tuple[str, ...] = ("rsa",)   # ("rsa", "ec"): a dual-certificate server

    @property
    def host(self) -> str:
        return f"{self.label}.mx.{ZONE}"

    @property
    def names(self) -> list[str]:
        return [self.host, *self.extra_names]


LISTENERS = (
    Listener("plain", "127.77.1.1", "none", None),
    Listener("modern", "127.77.1.2", "modern", "valid", (f"implicit.{ZONE}",)),
    Listener("legacy", "127.77.1.3", "legacy", "valid", key_types=("rsa", "ec")),
    Listener("restricted", "127.77.1.4", "restricted", "valid"),
    Listener("selfsigned", "127.77.1.5", "default", "self_signed"),
    Listener("expired", "127.77.1.6", "default", "expired"),
    Listener("untrusted", "127.77.1.7", "default", "untrusted"),
    Listener("reject", "127.77.1.8", "reject", "valid"),
    Listener("anon", "127.77.1.9", "anon", "valid"),
)
BY_LABEL = {listener.label: listener for listener in LISTENERS}


def _chain_listeners() -> tuple[Listener, ...]:
    """One listener per chain kind of survey.testbed.chains, on 127.77.3.x, each serving
    that kind's chain for its own host (``<kind>.chains.interop.test``)."""
    from survey.testbed.chains import KIND_NAMES

    return tuple(Listener(f"{name.replace('_', '-')}.chains", f"127.77.3.{i + 1}", "default",
                          f"chain:{name}") for i, name in enumerate(KIND_NAMES))


# Not in LISTENERS: the peers (testssl.sh, sslscan) and the cipher tests leave them alone;
# tests/interop/test_posttls_finger.py asks Postfix's own client about each one.
CHAIN_LISTENERS = _chain_listeners()
ALL_LISTENERS = LISTENERS + CHAIN_LISTENERS


def _smtpd_options(listener: Listener, lab_dir: Path, served: list[Served]) -> list[str]:
    """The ``-o`` overrides of one master.cf smtpd entry."""
    opts = [f"syslog_name=postfix/{listener.label}"]
    if listener.tls == "none":
        return opts + ["smtpd_tls_security_level=none"]
    opts += ["smtpd_tls_security_level=may",
             "smtpd_tls_chain_files=" + ",".join(str(s.combined_file) for s in served),
             "smtpd_tls_loglevel=1"]
    if listener.tls == "modern":
        opts += ["smtpd_tls_protocols=>=TLSv1.2"]
    elif listener.tls == "legacy":
        opts += ["smtpd_tls_protocols=>=TLSv1", f"tls_medium_cipherlist={LEGACY_CIPHERS}"]
    elif listener.tls == "restricted":
        opts += ["smtpd_tls_protocols=>=TLSv1.2", "smtpd_tls_ciphers=high",
                 f"tls_high_cipherlist={RESTRICTED_TLS12}", "tls_preempt_cipherlist=yes",
                 f"tls_config_file={lab_dir / 'openssl-restricted.cnf'}",
                 "tls_config_name=restricted"]
    elif listener.tls == "reject":
        opts += ["smtpd_delay_reject=no", "smtpd_client_restrictions=reject"]
    elif listener.tls == "anon":
        opts += ["smtpd_tls_protocols=<=TLSv1.2", "smtpd_tls_mandatory_protocols=<=TLSv1.2",
                 f"tls_medium_cipherlist={ANON_CIPHERS}", "tls_preempt_cipherlist=yes"]
    return opts


@dataclass(frozen=True)
class PolicyHost:
    """One nginx server block: ``mta-sts.<domain>`` and what it answers."""

    domain: str
    kind: str     # enforce | testing | invalid | notfound | redirect | wrongcert | html
    mx: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return f"mta-sts.{self.domain}"

    def body(self) -> str:
        mode = {"testing": "testing", "invalid": "enforce"}.get(self.kind, "enforce")
        version = "STSv2" if self.kind == "invalid" else "STSv1"
        lines = [f"version: {version}", f"mode: {mode}",
                 *(f"mx: {mx}" for mx in self.mx), "max_age: 86400"]
        return "\r\n".join(lines) + "\r\n"


def _d(label: str) -> str:
    return f"{label}.{ZONE}"


MODERN_MX = BY_LABEL["modern"].host
POLICY_HOSTS = (
    PolicyHost(_d("modern"), "enforce", (MODERN_MX,)),
    PolicyHost(_d("split"), "enforce", (f"*.mx.{ZONE}",)),
    PolicyHost(_d("testing"), "testing", (MODERN_MX,)),
    PolicyHost(_d("invalid"), "invalid", (MODERN_MX,)),
    PolicyHost(_d("notfound"), "notfound"),
    PolicyHost(_d("redirect"), "redirect"),
    PolicyHost(_d("wrongcert"), "wrongcert", (MODERN_MX,)),
    PolicyHost(_d("html"), "html", (MODERN_MX,)),
    PolicyHost(_d("nomatch"), "enforce", ("mail.elsewhere.test",)),
    PolicyHost(_d("selfsigned"), "enforce", (f"*.mx.{ZONE}",)),
    PolicyHost(_d("expired"), "testing", (f"*.mx.{ZONE}",)),
    PolicyHost(_d("untrusted"), "enforce", (f"*.mx.{ZONE}",)),
)

STS_TXT = '"v=STSv1; id=20260101T000000;"'
RPT_TXT = f'"v=TLSRPTv1; rua=mailto:tlsrpt@{ZONE}"'

# The zone: (owner label under ZONE or "" for the apex, type, rdata). A records of
# the listeners and policy hosts are added by ``zone_records``.
DOMAIN_RECORDS = [
    ("plain", "MX", f"10 {BY_LABEL['plain'].host}."),
    ("modern", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.modern", "TXT", STS_TXT),
    ("_smtp._tls.modern", "TXT", RPT_TXT),
    ("legacy", "MX", f"10 {BY_LABEL['legacy'].host}."),
    ("_mta-sts.legacy", "TXT", '"v=STSv1; id=not valid!"'),
    ("restricted", "MX", f"10 {BY_LABEL['restricted'].host}."),
    ("selfsigned", "MX", f"10 {BY_LABEL['selfsigned'].host}."),
    ("_mta-sts.selfsigned", "TXT", STS_TXT),
    ("expired", "MX", f"10 {BY_LABEL['expired'].host}."),
    ("_mta-sts.expired", "TXT", STS_TXT),
    ("untrusted", "MX", f"10 {BY_LABEL['untrusted'].host}."),
    ("_mta-sts.untrusted", "TXT", STS_TXT),
    ("reject", "MX", f"10 {BY_LABEL['reject'].host}."),
    ("anon", "MX", f"10 {BY_LABEL['anon'].host}."),
    ("nullmx", "MX", "0 ."),
    ("implicit", "A", BY_LABEL["modern"].ip),
    ("alias", "MX", f"10 alias.mx.{ZONE}."),
    ("alias.mx", "A", BY_LABEL["modern"].ip),
    # MTA-STS policy variants, all delivering to the modern listener.
    ("split", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.split", "TXT", '"v=STSv1; " "id=split2026;"'),
    ("_smtp._tls.split", "TXT", (f'"v=TLSRPTv1; " "rua=mailto:reports@{ZONE},'
                                 f'https://tlsrpt.{ZONE}/v1"')),
    ("testing", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.testing", "TXT", STS_TXT),
    ("_smtp._tls.testing", "TXT", RPT_TXT),
    ("_smtp._tls.testing", "TXT", f'"v=TLSRPTv1; rua=mailto:other@{ZONE}"'),
    ("invalid", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.invalid", "TXT", STS_TXT),
    ("_smtp._tls.invalid", "TXT", '"v=TLSRPTv2; rua=mailto:x@interop.test"'),   # not one
    ("_smtp._tls.invalid", "TXT", '"v=TLSRPTv1;"'),                      # no rua: invalid
    ("notfound", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.notfound", "TXT", STS_TXT),
    ("redirect", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.redirect", "TXT", STS_TXT),
    ("wrongcert", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.wrongcert", "TXT", STS_TXT),
    ("html", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.html", "TXT", STS_TXT),
    ("nomatch", "MX", f"10 {MODERN_MX}."),
    ("_mta-sts.nomatch", "TXT", STS_TXT),
]
SCAN_DOMAINS = sorted({owner for owner, _, _ in DOMAIN_RECORDS
                       if "." not in owner and not owner.startswith("_")} | {"missing"})


CHAIN_DOMAINS = [listener.label for listener in CHAIN_LISTENERS]   # under ZONE


def zone_records() -> list[tuple[str, str, str]]:
    records = list(DOMAIN_RECORDS)
    records += [(f"{listener.label}.mx", "A", listener.ip) for listener in LISTENERS]
    records += [(listener.label, "MX", f"10 {listener.host}.") for listener in CHAIN_LISTENERS]
    records += [(f"{listener.label}.mx", "A", listener.ip) for listener in CHAIN_LISTENERS]
    records += [(f"mta-sts.{p.domain.removesuffix('.' + ZONE)}", "A", HTTPS_IP)
                for p in POLICY_HOSTS]
    return records


# -- the daemons ---------------------------------------------------------------------------


class LabError(RuntimeError):
    """A daemon did not start; the message carries its log."""


def free_port(ips: list[str]) -> int:
    """A port that is free on every one of ``ips`` (TCP and UDP)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((ips[0], 0))
            port = probe.getsockname()[1]
        if port < 20000:
            continue
        try:
            for ip in ips:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((ip, port))
        except OSError:
            continue
        return port
    raise LabError(f"no free port on {ips}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


def _wait(check, what: str, log: Path, timeout: float = 20.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not become ready in {timeout:g} s:\n{_tail(log)}")
        time.sleep(0.05)


def smtp_greeting(ip: str, port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection((ip, port), timeout=timeout) as s:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
        return data


def _dns_answers(ip: str, port: int, name: str) -> bool:
    import dns.exception
    import dns.message
    import dns.query
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), ip, port=port, timeout=0.5)
    except dns.exception.Timeout:
        return False
    return bool(reply.answer)


@dataclass
class Lab:
    root: Path
    pki: LabPki
    smtp_port: int = 0
    dns_port: int = 0
    https_port: int = 0
    _stops: list = field(default_factory=list)

    @classmethod
    def create(cls) -> Lab:
        root = Path(tempfile.mkdtemp(prefix="survey-interop-"))
        root.chmod(0o755)
        return cls(root, LabPki(root / "pki"))

    # -- Unbound -------------------------------------------------------------------------

    def unbound_conf(self) -> str:
        data = "\n".join(
            f"    local-data: '{(owner + '.') if owner else ''}{ZONE}. 300 IN {rtype} {rdata}'"
            for owner, rtype, rdata in zone_records())
        d = self.root / "unbound"
        return f"""server:
    interface: {DNS_IP}@{self.dns_port}
    port: {self.dns_port}
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: "{d}/unbound.log"
    verbosity: 1
    module-config: "iterator"
    num-threads: 1
    do-not-query-localhost: no
    local-zone: "." static
    local-zone: "{ZONE}." static
{data}
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@9
remote-control:
    control-enable: no
"""

    def start_unbound(self) -> None:
        d = self.root / "unbound"
        d.mkdir()
        self.dns_port = free_port([DNS_IP])
        conf = d / "unbound.conf"
        conf.write_text(self.unbound_conf())
        check = subprocess.run(["unbound-checkconf", str(conf)], capture_output=True, text=True,
                               check=False)
        if check.returncode:
            raise LabError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        log = d / "unbound.log"
        with open(d / "stdout.log", "wb") as out:
            proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        self._stops.append(lambda: _stop_process(proc))
        _wait(lambda: _dns_answers(DNS_IP, self.dns_port, f"modern.mx.{ZONE}"), "unbound",
              log, proc=proc)

    # -- Postfix -------------------------------------------------------------------------

    def postfix_main_cf(self) -> str:
        d = self.root / "postfix"
        return f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{ZONE}
mydomain = {ZONE}
myorigin = $myhostname
mydestination =
relayhost =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtpd_relay_restrictions = reject
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtpd_banner = $myhostname ESMTP interop
smtpd_tls_security_level = none
smtpd_tls_session_cache_database =
smtp_dns_support_level = disabled
disable_dns_lookups = yes
"""

    def postfix_master_cf(self) -> str:
        lines = []
        for listener in ALL_LISTENERS:
            files = [self.pki.issue(listener.label, listener.names, listener.cert, key)
                     for key in listener.key_types] if listener.cert else []
            lines.append(f"{listener.ip}:{self.smtp_port} inet n - n - - smtpd")
            lines += [f"  -o {opt}" for opt in
                      _smtpd_options(listener, self.root / "postfix" / "conf", files)]
        lines += ["tlsmgr unix - - n 1000? 1 tlsmgr",
                  "anvil unix - - n - 1 anvil",
                  "rewrite unix - - n - - trivial-rewrite",
                  "cleanup unix n - n - 0 cleanup",
                  "qmgr unix n - n 300 1 qmgr",
                  "postlog unix-dgram n - n - 1 postlogd"]
        return "\n".join(lines) + "\n"

    def start_postfix(self) -> None:
        d = self.root / "postfix"
        conf = d / "conf"           # outside the queue: postfix-script wants it all root's
        conf.mkdir(parents=True)
        (d / "queue").mkdir(mode=0o755)
        (d / "data").mkdir(mode=0o700)
        shutil.chown(d / "data", "postfix", "postfix")
        self.smtp_port = free_port([listener.ip for listener in ALL_LISTENERS])
        (conf / "main.cf").write_text(self.postfix_main_cf())
        (conf / "master.cf").write_text(self.postfix_master_cf())
        (conf / "openssl-restricted.cnf").write_text(
            "restricted = restricted_settings\n"
            "[restricted_settings]\nssl_conf = restricted_ssl\n"
            "[restricted_ssl]\nsystem_default = restricted_default\n"
            f"[restricted_default]\nCiphersuites = {RESTRICTED_TLS13}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
        started = subprocess.run(["postfix", "-c", str(conf), "start"], capture_output=True,
                                 text=True, env=env, timeout=60, check=False)
        self._stops.append(lambda: self._stop_postfix(d, env))
        if started.returncode:
            raise LabError(f"postfix start: {started.stdout}{started.stderr}\n"
                           f"{_tail(d / 'maillog')}")
        for listener in ALL_LISTENERS:
            _wait(lambda ip=listener.ip: smtp_greeting(ip, self.smtp_port)[:1] in (b"2", b"5"),
                  f"postfix {listener.label}", d / "maillog")

    @staticmethod
    def _stop_postfix(d: Path, env: dict) -> None:
        pid_file = d / "queue" / "pid" / "master.pid"
        subprocess.run(["postfix", "-c", str(d / "conf"), "stop"], capture_output=True, env=env,
                       timeout=60, check=False)
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split()[0])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)      # raises once the master is gone
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    # -- nginx ---------------------------------------------------------------------------

    def nginx_conf(self) -> str:
        d = self.root / "nginx"
        servers = []
        for host in POLICY_HOSTS:
            names = [f"wrong.{ZONE}"] if host.kind == "wrongcert" else [host.host]
            files = self.pki.issue(f"policy-{host.domain}", names, "valid")
            if host.kind == "notfound":
                location = "return 404;"
            elif host.kind == "redirect":
                location = (f"return 301 https://{POLICY_HOSTS[0].host}:{self.https_port}"
                            "/.well-known/mta-sts.txt;")
            else:
                mime = "text/html" if host.kind == "html" else "text/plain"
                body = host.body().replace("\r\n", "\\r\\n")
                location = f'default_type {mime}; return 200 "{body}";'
            servers.append(f"""    server {{
        listen {HTTPS_IP}:{self.https_port} ssl;
        server_name {host.host};
        ssl_certificate {files.chain_file};
        ssl_certificate_key {files.key_file};
        location = /.well-known/mta-sts.txt {{ {location} }}
        location / {{ return 404; }}
    }}""")
        return f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format lab '$ssl_server_name "$request" $status "$http_user_agent"';
    access_log {d}/access.log lab;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
{chr(10).join(servers)}
}}
"""

    def start_nginx(self) -> None:
        d = self.root / "nginx"
        d.mkdir()
        self.https_port = free_port([HTTPS_IP])
        conf = d / "nginx.conf"
        conf.write_text(self.nginx_conf())
        base = ["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)]
        check = subprocess.run(base + ["-t"], capture_output=True, text=True, check=False)
        if check.returncode:
            raise LabError(f"nginx -t: {check.stderr}")
        with open(d / "stderr.log", "wb") as err:
            proc = subprocess.Popen(base + ["-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        self._stops.append(lambda: _stop_process(proc))

        def listening() -> bool:
            with socket.create_connection((HTTPS_IP, self.https_port), timeout=0.5):
                return True
        _wait(listening, "nginx", d / "error.log", proc=proc)

    # -- all of it -----------------------------------------------------------------------

    def start(self) -> Lab:
        try:
            self.start_unbound()
            self.start_postfix()
            self.start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):
                stop()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def resolver(self) -> str:
        return f"{DNS_IP}:{self.dns_port}"

    @property
    def maillog(self) -> Path:
        return self.root / "postfix" / "maillog"

    @property
    def access_log(self) -> Path:
        """nginx: one line a request, ``SNI "REQUEST" STATUS "USER-AGENT"``."""
        return self.root / "nginx" / "access.log"


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
