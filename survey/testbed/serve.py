"""Build a world directory, and run a world: DNS + SMTP + HTTPS, then world.json.

Theory of operation
-------------------
``build_world`` writes everything that does not need a running process:
``spec.json`` (the model), ``domains.csv`` (the scan input, Tranco-style
``rank,domain`` lines), ``truth/`` (Parquet per table, ``unknown.json``, ``truth.json``
= the truth block of world.json), ``zones/`` (zone file + NSD/Unbound
snippets) and ``ca.pem``.

``run_world`` starts the servers one by one with ``nursery.start`` (each
reports its bound port when it listens), then — and only then — writes
``world.json`` atomically (temporary file + rename), so a harness can wait for
the file to appear and trust every port in it. A stale world.json is removed
first. On cancellation (SIGINT/SIGTERM under ``serve_forever``) the servers
stop, in-flight connections are cancelled (a tarpit must not hold the world
open) and world.json is rewritten with ``"state": "stopped"`` so a scorer
can still find the truth.

SMTP and HTTPS come from SERVERS' modules (``smtp_server.serve_smtp``,
``https_server.serve_https``); a world whose modules are missing runs DNS
only and says so in world.json (``services``). Keys are generated per process
(``pki.Pki``), so ``ca.pem`` is rewritten at each start: use the one named in
world.json while the world runs.
"""

from __future__ import annotations

import datetime as dt
import errno
import gc
import importlib
import json
import logging
import os
import resource
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from survey.interrupts import INTERRUPTED, leaf
from survey.store.lock import LockError, exclusive
from survey.testbed import truth as truth_mod
from survey.testbed import zones
from survey.testbed.dns_server import serve_dns
from survey.testbed.generator import generate
from survey.testbed.model import World

log = logging.getLogger(__name__)

SPEC = "spec.json"
WORLD_JSON = "world.json"
DNSSEC_ANCHOR = "dnssec-anchor.zone"
DOMAINS = "domains.csv"
TRUTH_DIR = "truth"
TRUTH_INDEX = "truth.json"
ZONES_DIR = "zones"
CONNECTION_LOG = "connections.jsonl"
CA_BUNDLE = "ca.pem"
WORLD_JSON_FORMAT = 1


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def build_world(out: str | Path, *, domains: int, seed: int = 0,
                profile: str | Path = "default", scale: str = "default") -> World:
    """Generate a world and write its directory (everything but world.json).

    Holds the directory's lock (store/lock.py) while it writes: a world being
    served or built elsewhere is refused with LockError, never overwritten.
    """
    out = Path(out)
    with exclusive(out, "survey world (building)"):
        return _build_world(out, domains=domains, seed=seed, profile=profile, scale=scale)


def _build_world(out: Path, *, domains: int, seed: int, profile: str | Path,
                 scale: str) -> World:
    out.mkdir(parents=True, exist_ok=True)
    (out / WORLD_JSON).unlink(missing_ok=True)
    world = generate(domains, seed, profile, scale=scale)
    world.save(out / SPEC)
    with open(out / DOMAINS, "w", encoding="utf-8") as fh:
        fh.writelines(f"{d.rank},{d.name}\n" for d in world.domains)  # Tranco-style
    info = truth_mod.write_truth(world, out / TRUTH_DIR)
    _write_json_atomic(out / TRUTH_DIR / TRUTH_INDEX, info)
    zones.write_zones(world, out / ZONES_DIR)
    if world.zones:    # a signed world: its trust anchor, for the scanner (world.json)
        from survey.testbed.signing import Signer

        (out / DNSSEC_ANCHOR).write_text(
            "; the DS of this world's own root key (survey/testbed/signing.py)\n"
            + Signer(world).anchor_text(), encoding="ascii")
    else:
        (out / DNSSEC_ANCHOR).unlink(missing_ok=True)
    try:
        from survey.testbed.pki import Pki

        Pki(out)
    except ImportError:  # pragma: no cover - pki ships with the testbed
        log.warning("no survey.testbed.pki: ca.pem not written")
    return world


def _optional_server(module: str, name: str) -> tuple[Any, str | None]:
    try:
        return getattr(importlib.import_module(module), name), None
    except Exception as exc:  # noqa: BLE001 - a missing or broken module: run without it
        return None, f"unavailable: {type(exc).__name__}: {exc}"


def world_json(world_dir: Path, world: World, *, dns: tuple[str, int],
               smtp: int | None, https: int | None, services: dict[str, str],
               state: str = "running") -> dict[str, Any]:
    world_dir = world_dir.resolve()
    truth_dir = world_dir / TRUTH_DIR
    truth_info = json.loads((truth_dir / TRUTH_INDEX).read_text())
    truth_info["dir"] = str(truth_dir)
    scanner = asdict(world.scanner)
    scanner.update(resolvers=[f"{dns[0]}:{dns[1]}"], smtp_port=smtp, https_port=https,
                   testbed=True)
    return {
        "format": WORLD_JSON_FORMAT,
        "state": state,
        "pid": os.getpid(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "world_dir": str(world_dir),
        "seed": world.seed,
        "profile": world.profile,
        "domains": len(world.domains),
        "domain_list": str(world_dir / DOMAINS),
        "spec": str(world_dir / SPEC),
        "resolver": {"ip": dns[0], "port": dns[1]},
        "smtp": {"port": smtp, "spec_port": world.ports.smtp},
        "https": {"port": https, "spec_port": world.ports.https},
        "services": services,
        "ca_bundle": str(world_dir / CA_BUNDLE),
        "connection_log": str(world_dir / CONNECTION_LOG),
        "zones": str(world_dir / ZONES_DIR),
        "dnssec_anchor": (str(world_dir / DNSSEC_ANCHOR) if world.zones else None),
        "truth": truth_info,
        "scanner": scanner,
    }


async def run_world(world_dir: str | Path, *, dns_port: int | None = None,
                    smtp_port: int | None = None, https_port: int | None = None,
                    max_connections: int | None = None,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve the world in ``world_dir`` until cancelled; started(world.json dict).

    ``max_connections``: connections each of SMTP and HTTPS serves at once
    (None: listen.DEFAULT_MAX_CONNECTIONS; the slow-servers benchmark holds more).
    """
    world_dir = Path(world_dir)
    with exclusive(world_dir, "survey world --serve"):
        await _run_world(world_dir, dns_port=dns_port, smtp_port=smtp_port,
                         https_port=https_port, max_connections=max_connections,
                         task_status=task_status)


async def _run_world(world_dir: Path, *, dns_port: int | None, smtp_port: int | None,
                     https_port: int | None, max_connections: int | None,
                     task_status) -> None:
    (world_dir / WORLD_JSON).unlink(missing_ok=True)
    world = World.load(world_dir / SPEC)
    # The world is millions of long-lived objects: keep the cyclic GC from walking
    # them again and again while the servers run (a full pass would stall the loop).
    gc.freeze()
    pki = _pki(world_dir)
    connlog = _connection_log(world_dir, pki)
    info: dict[str, Any] = {}
    try:
        async with trio.open_nursery() as nursery:
            dns, smtp, https, services = await _start_services(
                nursery, world, pki, connlog, _ports(world, dns_port, smtp_port, https_port),
                max_connections)
            info = world_json(world_dir, world, dns=dns, smtp=smtp, https=https,
                              services=services)
            _write_json_atomic(world_dir / WORLD_JSON, info)
            log.info("world ready: %s", world_dir / WORLD_JSON)
            task_status.started(info)
    finally:
        if info:
            _write_json_atomic(world_dir / WORLD_JSON, _stopped(info))
        if connlog is not None:
            connlog.close()


def _stopped(info: dict[str, Any]) -> dict[str, Any]:
    return dict(info, state="stopped",
                stopped_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def _ports(world: World, dns: int | None, smtp: int | None,
           https: int | None) -> dict[str, int]:
    """The ports to bind: the given ones, else the spec's (0: any)."""
    ports = world.ports
    return {"dns": ports.dns if dns is None else dns,
            "smtp": ports.smtp if smtp is None else smtp,
            "https": ports.https if https is None else https}


def _pki(world_dir: Path) -> Any:
    """The world's PKI (writes ca.pem), or None when no TLS server can run."""
    if not any(_optional_server(m, n)[0] for m, n in _TLS_SERVERS):
        return None
    from survey.testbed.pki import Pki

    return Pki(world_dir)


def _connection_log(world_dir: Path, pki: Any) -> Any:
    if pki is None:
        return None
    from survey.testbed.listen import ConnectionLog

    return ConnectionLog(world_dir / CONNECTION_LOG, keep=False)


_TLS_SERVERS = (("survey.testbed.smtp_server", "serve_smtp"),
                ("survey.testbed.https_server", "serve_https"))


async def _start_services(nursery: trio.Nursery, world: World, pki: Any, connlog: Any,
                          ports: dict[str, int], max_connections: int | None,
                          group: Any = None) -> tuple[Any, Any, Any, dict[str, str]]:
    """Start DNS, SMTP and HTTPS in ``nursery``: (dns (host, port), smtp port, https port,
    services' states). ``group``: this process is one member of several (listen.Group)."""
    services: dict[str, str] = {}
    tlsa_data = None
    if pki is not None and world.zones:
        from survey.testbed.signing import tlsa_placeholders

        tlsa_data = tlsa_placeholders(pki)
    dns = await nursery.start(_dns_task, world, ports["dns"], tlsa_data, group is not None)
    services["dns"] = "ready"

    async def start(service: str, module: str, name: str, port: int) -> Any:
        serve, missing = _optional_server(module, name)
        if serve is None:
            services[service] = missing or "unavailable"
            return None
        started = await nursery.start(_server_task, serve, world, port, pki, connlog,
                                      max_connections, group)
        services[service] = "ready"
        return started

    (smtp_module, smtp_name), (https_module, https_name) = _TLS_SERVERS
    smtp = await start("smtp", smtp_module, smtp_name, ports["smtp"])
    https = await start("https", https_module, https_name, ports["https"])
    return dns, smtp, https, services


async def _dns_task(world: World, port: int, tlsa_data: Any = None, shared: bool = False,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    await serve_dns(world, port=port, tlsa_data=tlsa_data, shared=shared,
                    task_status=task_status)


async def _server_task(serve: Any, world: World, port: int, pki: Any, connlog: Any,
                       max_connections: int | None = None, group: Any = None,
                       task_status=trio.TASK_STATUS_IGNORED) -> None:
    extra: dict[str, Any] = {} if max_connections is None else {
        "max_connections": max_connections}
    if group is not None:
        extra["group"] = group
    await serve(world, port=port, pki=pki, connlog=connlog, task_status=task_status, **extra)


async def _serve_until_signal(world_dir: Path, ports: dict[str, int | None],
                              announce: bool) -> int | None:
    """Serve until SIGINT or SIGTERM; the signal that stopped the world."""
    stopped_by = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(lambda task_status=trio.TASK_STATUS_IGNORED: run_world(
                world_dir, task_status=task_status, **ports))
            if announce:
                print(_summary(info), file=sys.stderr, flush=True)
            async for signum in signals:
                if announce:
                    print(f"survey world: {signal.Signals(signum).name}, stopping",
                          file=sys.stderr, flush=True)
                stopped_by = signum
                nursery.cancel_scope.cancel()
                break
    return stopped_by


def _summary(info: dict[str, Any]) -> str:
    r = info["resolver"]
    parts = [f"world ready: {info['domains']} domains",
             f"DNS {r['ip']}:{r['port']}",
             f"SMTP port {info['smtp']['port']}", f"HTTPS port {info['https']['port']}"]
    missing = [f"{k} {v}" for k, v in info["services"].items() if v != "ready"]
    text = ", ".join(parts) + f"\n  {info['world_dir']}/{WORLD_JSON}"
    if missing:
        text += "\n  not running: " + "; ".join(missing)
    return text


def _open_files_up_to_the_hard_limit() -> None:
    """A world holds a descriptor per open connection and per dead address: take what the
    system allows (the soft limit is often 1,024), as servers such as nginx do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_forever(world_dir: str | Path, *, dns_port: int | None = None,
                  smtp_port: int | None = None, https_port: int | None = None,
                  announce: bool = True, max_connections: int | None = None,
                  processes: int = 1) -> int:
    """Run a world in the foreground until SIGINT or SIGTERM; the exit status.

    ``processes`` > 1: served by that many processes (members.py), each with
    ``max_connections`` of its own.
    """
    ports = {"dns_port": dns_port, "smtp_port": smtp_port, "https_port": https_port,
             "max_connections": max_connections}
    _open_files_up_to_the_hard_limit()
    try:
        if processes > 1:
            from survey.testbed.members import serve_members

            return serve_members(Path(world_dir), processes, announce=announce, **ports)
        stopped_by = trio.run(_serve_until_signal, Path(world_dir), ports, announce)
    except (OSError, LockError, BaseExceptionGroup) as exc:
        held = leaf(exc, LockError)
        if held is not None:
            print(f"survey world: {held}", file=sys.stderr)
            return 2
        oserror = leaf(exc, OSError)
        if oserror is None:
            raise
        if isinstance(oserror, OSError) and oserror.errno == errno.EMFILE:
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            print(f"survey world: cannot start: {oserror}: this world needs more than the "
                  f"open-files limit of {limit} (`ulimit -Hn`; a dead address takes one, an "
                  "open connection one): raise it, or serve a smaller world", file=sys.stderr)
            return 1
        print(f"survey world: cannot start: {oserror} (try --any-ports, or ports >= 1024 "
              "when not root)", file=sys.stderr)
        return 1
    # Ctrl-C ends a command with 130 (as a shell reports it); SIGTERM is the orderly stop
    return INTERRUPTED if stopped_by == signal.SIGINT else 0
