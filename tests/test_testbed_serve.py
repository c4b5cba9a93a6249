"""Building a world directory and running a world: world.json only when every server is
ready, a clean and prompt stop on SIGTERM/SIGINT."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pyarrow.parquet as pq
import pytest
import trio
from cryptography import x509

from survey.cli import main as cli_main
from survey.proto.ciphers import openssl_to_iana
from survey.testbed import serve
from survey.testbed.listen import read_connection_log
from survey.testbed.model import World

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    serve.build_world(out, domains=80, seed=2, scale="fast")
    return out


def test_build_world_writes_the_directory(world_dir: Path) -> None:
    world = World.load(world_dir / serve.SPEC)
    lines = (world_dir / serve.DOMAINS).read_text().split()
    assert lines == [f"{d.rank},{d.name}" for d in world.domains] and len(lines) == 80
    index = json.loads((world_dir / "truth" / "truth.json").read_text())
    for table, name in index["files"].items():
        columns = pq.read_schema(world_dir / "truth" / name).names
        assert set(index["columns"]["starttls"][table]) <= set(columns)
    assert index["keys"]["mx"] == ["domain", "mx_host", "ip"]
    assert (world_dir / "zones" / "test.zone").exists()
    assert (world_dir / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert not (world_dir / serve.WORLD_JSON).exists()


async def _dns_ok(ip: str, port: int, name: str) -> bool:
    reply = await dns.asyncquery.udp(dns.message.make_query(name, "A"), ip, port=port,
                                     timeout=2)
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


async def test_run_world_in_process(world_dir: Path, nursery) -> None:
    (world_dir / serve.WORLD_JSON).write_text("{}")  # stale: removed before anything starts
    info = await nursery.start(functools.partial(serve.run_world, world_dir, dns_port=0,
                                                 smtp_port=0, https_port=0))
    on_disk = json.loads((world_dir / serve.WORLD_JSON).read_text())
    assert on_disk["state"] == "running" and on_disk["resolver"] == info["resolver"]
    assert on_disk["services"]["dns"] == "ready"
    assert on_disk["truth"]["files"]["mx"] == "mx.parquet"
    assert on_disk["scanner"]["resolvers"] == [
        f"{info['resolver']['ip']}:{info['resolver']['port']}"]
    assert await _dns_ok(info["resolver"]["ip"], info["resolver"]["port"], "mx1.bigmail.test")
    if info["services"]["smtp"] == "ready":
        world = World.load(world_dir / serve.SPEC)
        ip, spec = next((ip, s) for ip, s in world.smtp_servers.items()
                        if s.behaviour == "normal" and ":" not in ip)
        stream = await trio.open_tcp_stream(ip, info["smtp"]["port"])
        async with stream:
            greeting = b""
            with trio.fail_after(5):
                while not greeting.endswith(b"\r\n"):
                    greeting += await stream.receive_some(4096)
        assert greeting.decode() == spec.greeting.render()
    nursery.cancel_scope.cancel()


async def test_world_json_says_stopped_after_cancel(world_dir: Path) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve.run_world, world_dir, dns_port=0,
                                              smtp_port=0, https_port=0))
        nursery.cancel_scope.cancel()
    assert json.loads((world_dir / serve.WORLD_JSON).read_text())["state"] == "stopped"


def test_cli_needs_domains_or_an_existing_world(tmp_path, capsys) -> None:
    assert cli_main(["world", "--out", str(tmp_path / "empty"), "--serve"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["world", "--domains", "5", "--profile", "nope",
                     "--out", str(tmp_path / "x")]) == 2


def test_cli_shares(tmp_path, capsys) -> None:
    assert cli_main(["world", "--domains", "30", "--out", str(tmp_path), "--shares"]) == 0
    shares = json.loads(capsys.readouterr().out)
    assert shares["structure:provider"] > 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_stops_promptly_on_signal(tmp_path, signum) -> None:
    out = tmp_path / "w"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "survey.cli", "world", "--domains", "60", "--seed", "4",
         "--scale", "fast", "--out", str(out), "--serve", "--any-ports"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (out / serve.WORLD_JSON).exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "world.json never appeared"
            time.sleep(0.05)
        info = json.loads((out / serve.WORLD_JSON).read_text())
        # everything named in world.json answers at once
        assert trio.run(_dns_ok, info["resolver"]["ip"], info["resolver"]["port"],
                        "mx1.bigmail.test")
        if info["services"]["smtp"] == "ready":
            import socket

            with socket.create_connection(("127.1.0.1", info["smtp"]["port"]), timeout=5):
                pass
        sent = time.monotonic()
        proc.send_signal(signum)
        rc = proc.wait(timeout=10)
        assert time.monotonic() - sent < 5
        assert rc == (130 if signum == signal.SIGINT else 0), proc.stderr.read().decode()
        assert json.loads((out / serve.WORLD_JSON).read_text())["state"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the truth agrees with the running servers (real clients: trio + Python ssl) ----------

def _client_ctx(cafile: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    # what a sender that verifies certificates offers (as the scanner's certificate probe):
    # NULL suites too, but no anonymous, PSK or SRP suite, so every server shows its chain
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:!aNULL:!PSK:!SRP:@SECLEVEL=0")
    ctx.check_hostname = False
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Lines:
    def __init__(self, stream) -> None:
        self.stream, self.buf = stream, b""

    async def reply(self) -> bytes:
        """One complete SMTP reply, raw."""
        while True:
            end = 0
            for m in re.finditer(rb"[0-9]{3}([ -])[^\r\n]*\r\n", self.buf):
                if m.start() != end:
                    break
                end = m.end()
                if m.group(1) == b" ":
                    raw, self.buf = self.buf[:end], self.buf[end:]
                    return raw
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data


def _caps(raw: bytes) -> list[str]:
    return sorted(line[4:] for line in raw.decode().split("\r\n")[1:] if line)


async def _probe_smtp(ip: str, port: int, sni: str, settings: dict) -> dict:
    """A small independent STARTTLS client: the facts a correct scanner reports."""
    out: dict = {"status": None}
    for _attempt in range(1 + settings["retries"]):
        try:
            with trio.fail_after(settings["connect_timeout"]):
                stream = await trio.open_tcp_stream(ip, port)
        except (OSError, trio.TooSlowError):
            return {"status": "connect_failed"}
        lines = _Lines(stream)
        try:
            with trio.fail_after(settings["greeting_timeout"]):
                greeting = await lines.reply()
        except trio.TooSlowError:
            await stream.aclose()
            return {"status": "read_timeout"}
        except (EOFError, trio.BrokenResourceError, OSError):
            return {"status": "reset"}
        out["banner"] = greeting.decode()
        if greeting.startswith(b"4") and b"limit" not in greeting.lower() \
                and b"too many" not in greeting.lower():
            await stream.aclose()
            out["status"] = "smtp_reject_4xx"
            continue  # temporary: retry within the budget
        out["status"] = None
        break
    if out["status"] == "smtp_reject_4xx":
        return out
    if greeting.startswith(b"4"):
        return dict(out, status="rate_limited")
    if greeting.startswith(b"5"):
        return dict(out, status="smtp_reject_5xx")
    with trio.fail_after(settings["command_timeout"] * 2):
        await stream.send_all(b"EHLO scanner.test\r\n")
        ehlo = await lines.reply()
        if not ehlo.startswith(b"250"):
            return dict(out, status="smtp_reject_4xx" if ehlo.startswith(b"4")
                        else "smtp_reject_5xx")
        out["ehlo_capabilities"] = _caps(ehlo)
        out["starttls_offered"] = "STARTTLS" in out["ehlo_capabilities"]
        if not out["starttls_offered"]:
            return dict(out, status="no_starttls")
        await stream.send_all(b"STARTTLS\r\n")
        reply = await lines.reply()
        if not reply.startswith(b"220"):
            return dict(out, status="starttls_rejected")
        tls = trio.SSLStream(stream, _client_ctx(), server_hostname=sni)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError):
            return dict(out, status="tls_handshake_failed")
        out["tls_version"] = {"TLSv1": "TLSv1.0"}.get(tls.version(), tls.version())
        name = tls.cipher()[0]
        out["cipher_suite"] = openssl_to_iana(name) or name  # the registry: legacy suites too
        der = tls.getpeercert(binary_form=True)
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        out["san_dns"] = sorted(san)
        tls_lines = _Lines(tls)
        await tls.send_all(b"EHLO scanner.test\r\n")
        out["ehlo_capabilities_tls"] = _caps(await tls_lines.reply())
        await tls.send_all(b"QUIT\r\n")
        await tls_lines.reply()
    return dict(out, status="ok")


async def _verifies(ip: str, port: int, sni: str, cafile: str) -> bool:
    """Does the chain verify against the world's CA at the current time (names aside)?"""
    stream = await trio.open_tcp_stream(ip, port)
    lines = _Lines(stream)
    with trio.fail_after(5):
        await lines.reply()
        await stream.send_all(b"EHLO scanner.test\r\n")
        await lines.reply()
        await stream.send_all(b"STARTTLS\r\n")
        await lines.reply()
        tls = trio.SSLStream(stream, _client_ctx(cafile), server_hostname=sni)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError):
            return False
        await tls.aclose()
        return True


def test_several_processes_serve_one_world_each_address_in_one(tmp_path) -> None:
    # survey world --processes 2 (members.py): both members take connections, every
    # address is served by one of them (so per-address behaviour stays exact), DNS answers,
    # and SIGTERM stops the supervisor and its members
    out = tmp_path / "w"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "survey.cli", "world", "--domains", "60", "--seed", "4",
         "--scale", "fast", "--out", str(out), "--serve", "--any-ports", "--processes", "2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / serve.WORLD_JSON).exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "world.json never appeared"
            time.sleep(0.05)
        info = json.loads((out / serve.WORLD_JSON).read_text())
        members = info["processes"]["pids"]
        assert info["processes"]["count"] == 2 and len(set(members)) == 2
        assert proc.pid not in members
        resolver = info["resolver"]
        for _ in range(10):   # fresh source ports: the kernel spreads them over both
            assert trio.run(_dns_ok, resolver["ip"], resolver["port"], "mx1.bigmail.test")
        import socket

        ips = sorted(World.load(out / serve.SPEC).smtp_servers)[:40]
        for ip in ips * 2:
            with socket.create_connection((ip, info["smtp"]["port"]), timeout=5):
                pass

        def smtp_records() -> list:
            return [r for r in read_connection_log(out / serve.CONNECTION_LOG)
                    if r.service == "smtp"]

        deadline = time.monotonic() + 30   # a connection is logged when its handler ends
        while len(smtp_records()) < 2 * len(ips) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()
        assert json.loads((out / serve.WORLD_JSON).read_text())["state"] == "stopped"
        for pid in members:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        records = smtp_records()
        assert len(records) == 2 * len(ips)
        served_by: dict[str, set[int]] = {}
        for r in records:
            served_by.setdefault(r.ip, set()).add(r.pid)
        assert all(len(pids) == 1 for pids in served_by.values()), served_by
        assert {pid for pids in served_by.values() for pid in pids} == set(members)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



@pytest.fixture(scope="module")
def big_world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bigworld")
    serve.build_world(out, domains=1000, seed=5, scale="fast")
    return out


async def test_truth_matches_live_smtp_servers(big_world_dir: Path, nursery) -> None:
    info = await nursery.start(functools.partial(serve.run_world, big_world_dir, dns_port=0,
                                                 smtp_port=0, https_port=0))
    assert info["services"]["smtp"] == "ready", info["services"]
    world = World.load(big_world_dir / serve.SPEC)
    port = info["smtp"]["port"]
    hosts = {r["ip"]: r for r in pq.read_table(big_world_dir / "truth/hosts.parquet")
             .to_pylist()}
    mx = pq.read_table(big_world_dir / "truth/mx.parquet").to_pylist()
    leaves = {r["sha256"]: r for r in pq.read_table(big_world_dir / "truth/certs.parquet")
              .to_pylist()}
    unknown = {(u["key"][0], u["column"]) for u in
               json.loads((big_world_dir / "truth/unknown.json").read_text())}
    # one mx row per distinct server configuration, so every behaviour and TLS set-up
    # is probed without probing all of them
    chosen: dict = {}
    for r in mx:
        if r["ip"] is None:
            continue
        s = world.smtp_servers[r["ip"]]
        if s.behaviour in ("endless_banner", "long_line", "garbage", "tls_truncated"):
            continue  # floods and stalls need a capped client: tests/test_testbed_hostile.py
        tls = s.tls
        key = (s.behaviour, tls and (tls.versions, tls.ciphers, tls.suites,
                                     tls.server_preference, tls.cert_kind), r["cert_status"])
        chosen.setdefault(key, r)
    assert len(chosen) > 40
    settings = info["scanner"]
    results: dict = {}

    async def probe(r) -> None:
        results[(r["domain"], r["mx_host"], r["ip"])] = (
            await _probe_smtp(r["ip"], port, r["mx_host"], settings),
            await _verifies(r["ip"], port, r["mx_host"], info["ca_bundle"])
            if r["host_status"] == "ok" else None)

    limiter = trio.CapacityLimiter(16)

    async def limited(r) -> None:
        async with limiter:
            await probe(r)

    async with trio.open_nursery() as probes:
        for r in chosen.values():
            probes.start_soon(limited, r)
    behaviours = set()
    for r in chosen.values():
        got, verified = results[(r["domain"], r["mx_host"], r["ip"])]
        truth = hosts[r["ip"]]
        behaviours.add(world.smtp_servers[r["ip"]].behaviour)
        assert got["status"] == truth["status"], (r, got)
        for col in ("banner", "ehlo_capabilities", "starttls_offered", "tls_version",
                    "cipher_suite", "ehlo_capabilities_tls"):
            if (r["ip"], col) in unknown or col not in got:
                continue
            assert got[col] == truth[col], (col, r["ip"], got[col], truth[col])
        if truth["status"] == "ok":
            leaf = leaves[f"mx:{r['domain']}|{r['mx_host']}|{r['ip']}"]
            assert got["san_dns"] == leaf["san_dns"], r
            # This client verifies at security level 0 (TLS 1.0 needs it), so it cannot
            # judge the level-1 rule for weak signatures and keys: tests/test_certs_openssl.py
            # and the posttls-finger interop test do.
            if r["cert_untrusted_reason"] not in ("weak_signature", "weak_key"):
                assert verified == bool(r["cert_trusted"] and r["cert_time_valid"]), r
    assert len(behaviours) >= 12
    nursery.cancel_scope.cancel()


async def _fetch_policy(ip: str, port: int, host: str, cafile: str, timeout: float,
                        max_bytes: int) -> tuple[str, str | None]:
    """(mta_sts_policy_status-ish outcome, body) with the fetch rules of docs/design.md."""
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with trio.fail_after(timeout):
            stream = trio.SSLStream(await trio.open_tcp_stream(ip, port), ctx,
                                    server_hostname=host)
            await stream.do_handshake()
            await stream.send_all(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                                  "Connection: close\r\n\r\n".encode())
            data = b""
            while len(data) < max_bytes + 65536:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
    except trio.TooSlowError:
        return "timeout", None
    except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
        if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
                exc.__cause__, ssl.SSLCertVerificationError):
            return "certificate", None
        return "connect", None
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (h.split(":", 1) for h in header_lines if ":" in h)}
    if 300 <= status < 400:
        return "redirect", None
    if status != 200:
        return "http_status", None
    if headers.get("content-type", "").split(";")[0].strip().lower() != "text/plain":
        return "content_type", None
    if len(body) > max_bytes:
        return "too_large", None
    return "body", body.decode()


async def test_truth_matches_live_policy_hosts(big_world_dir: Path, nursery) -> None:
    info = await nursery.start(functools.partial(serve.run_world, big_world_dir, dns_port=0,
                                                 smtp_port=0, https_port=0))
    assert info["services"]["https"] == "ready", info["services"]
    world = World.load(big_world_dir / serve.SPEC)
    domains = {r["domain"]: r for r in pq.read_table(big_world_dir / "truth/domains.parquet")
               .to_pylist()}
    by_behaviour: dict = {}
    for name, p in world.policy_hosts.items():
        if p.ip is not None and domains[name]["mta_sts_policy_status"] != "not_attempted":
            by_behaviour.setdefault(p.behaviour, p)
    assert len(by_behaviour) >= 15
    settings = info["scanner"]
    outcomes: dict = {}

    async def fetch(p) -> None:
        outcomes[p.domain] = await _fetch_policy(
            p.ip, info["https"]["port"], p.host, info["ca_bundle"],
            settings["policy_timeout"], settings["policy_max_bytes"])

    async with trio.open_nursery() as fetches:
        for p in by_behaviour.values():
            fetches.start_soon(fetch, p)
    for p in by_behaviour.values():
        truth = domains[p.domain]
        outcome, body = outcomes[p.domain]
        if outcome == "body":
            assert body == p.body
            assert truth["mta_sts_policy_status"] in ("ok", "invalid"), p
            if truth["mta_sts_policy_status"] == "ok":
                assert f"mode: {truth['mta_sts_mode']}" in body
        else:
            assert (truth["mta_sts_policy_status"], truth["mta_sts_policy_error"]) == (
                "fetch_error", outcome), p
    nursery.cancel_scope.cancel()


def test_a_world_beyond_the_open_files_limit_says_so(tmp_path) -> None:
    """A world holds a descriptor per address it plays dead and per open connection: past
    the hard limit it must say which limit, not only "Too many open files"."""
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "survey.cli", "world", "--domains", "60", "--seed", "4",
         "--scale", "fast", "--out", str(tmp_path / "w"), "--serve", "--any-ports"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        preexec_fn=low_limit)
    assert done.returncode == 1, done.stderr
    assert "open-files limit of 12" in done.stderr
    assert "Traceback" not in done.stderr
