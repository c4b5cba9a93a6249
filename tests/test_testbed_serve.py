"""Building a world directory and running a world: world.json only when every server is
ready, a clean and prompt stop on SIGTERM/SIGINT."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pyarrow.parquet as pq
import pytest
import trio

from survey.cli import main as cli_main
from survey.testbed import serve
from survey.testbed.model import World

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    serve.build_world(out, domains=80, seed=2, scale="fast")
    return out


def test_build_world_writes_the_directory(world_dir: Path) -> None:
    world = World.load(world_dir / serve.SPEC)
    names = (world_dir / serve.DOMAINS).read_text().split()
    assert names == [d.name for d in world.domains] and len(names) == 80
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
        assert rc == 0, proc.stderr.read().decode()
        assert json.loads((out / serve.WORLD_JSON).read_text())["state"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
