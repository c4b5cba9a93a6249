"""What every benchmark shares: the JSON it prints, real servers it starts, worlds it builds.

Theory of operation
-------------------
A benchmark prints exactly one JSON object on stdout: its name, the settings,
the raw measurements, and ``targets`` — each ``{"value", "target", "pass"}``
where ``target`` is a string such as ``">= 0.7"``. Machines here are noisy, so
every target is a ratio of two things measured side by side in the same run
(or a budget per unit of work), never a comparison with a remembered time.
Progress and diagnostics go to stderr.

Servers a benchmark starts (NSD, openssl s_server, a testbed world) listen on
127.0.0.0/8 only and are stopped when the benchmark ends, failed or not.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _terminated(signum, frame):
    raise SystemExit(128 + signum)   # run the finally blocks: stop the servers we started


signal.signal(signal.SIGTERM, _terminated)
PYTHON = sys.executable
SURVEY = [PYTHON, "-m", "survey.cli"]
# Built worlds, kept across runs: building a 10,000-domain world takes longer than scanning it
CACHE = Path(os.environ.get("SURVEY_BENCH_CACHE", Path(tempfile.gettempdir()) /
                            "survey-bench"))


def log(*parts: object) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


def cached_world(name: str, domains: int, seed: int, *options: str) -> Path:
    """``CACHE/name``: a world built once by ``survey world`` with ``options`` (e.g.
    ``--scale fast`` or ``--profile FILE``), then reused while its files are whole."""
    directory = CACHE / name
    if not (directory / "spec.json").exists() or not (directory / "domains.csv").exists():
        log(f"building a {domains}-domain world in {directory}")
        subprocess.run(SURVEY + ["world", "--domains", str(domains), "--seed", str(seed),
                                 *options, "--out", str(directory)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return directory


def target(value: float | None, op: str, bound: float) -> dict:
    """One target: ``{"value", "target", "pass"}``; ``op`` is ``<=``, ``<`` or ``>=``."""
    if value is None:
        ok = False
    elif op == "<=":
        ok = value <= bound
    elif op == ">=":
        ok = value >= bound
    elif op == "<":
        ok = value < bound
    else:
        raise ValueError(op)
    shown = round(value, 4) if isinstance(value, float) else value
    return {"value": shown, "target": f"{op} {bound:g}", "pass": bool(ok)}


def emit(name: str, **fields: object) -> None:
    """Print the benchmark's one JSON object (``targets`` summarised in ``pass``)."""
    targets = fields.get("targets") or {}
    doc = {"benchmark": name, "pass": all(t["pass"] for t in targets.values()), **fields}
    print(json.dumps(doc, indent=1, default=str), flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port(ip: str = "127.0.0.1", kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on ``ip`` (checked, then released)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((ip, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def wait_for_port(ip: str, port: int, timeout: float = 30.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {ip}:{port} after {timeout} s") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a process this benchmark started (by its pid only)."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_world(directory: Path, *extra: str) -> subprocess.Popen:
    """`survey world --serve` on a built world; returns once its world.json says it is up."""
    (directory / "world.json").unlink(missing_ok=True)
    proc = subprocess.Popen(SURVEY + ["world", "--serve", "--any-ports", "--out",
                                      str(directory), *extra], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (directory / "world.json").exists():
        if proc.poll() is not None:
            raise RuntimeError("the world server exited before it was ready")
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError("the world was not ready within 600 s")
        time.sleep(0.5)
    return proc


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], **kwargs) -> dict:
    """Run a command to completion; its wall, CPU and peak RSS (the child alone).

    ``os.wait4`` gives the rusage of exactly this child, whatever else runs.
    Its peak RSS includes what it shared with this process until it exec'd:
    call this from a small process. A piped stdout is read after the child
    exits: keep it small.
    """
    started = time.monotonic()
    proc = subprocess.Popen(cmd, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else None
    # voluntary context switches: how often the child slept for want of work (an event
    # loop's wake-ups when it is not CPU-bound; each costs CPU of its own)
    return {"returncode": proc.returncode, "wall_s": wall, "stdout": output,
            "cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "sleeps": usage.ru_nvcsw}


def checkout(rev: str, into: Path) -> Path:
    """``survey/`` of git revision ``rev`` in ``into`` (``git archive``), with its bytecode
    compiled as ``make bench`` compiles the tree's: where PYTHONDONTWRITEBYTECODE is set, a
    run of the other scanner would otherwise compile ~80 modules (0.4 s of CPU) each time.
    Run it with ``PYTHONPATH=into`` and ``cwd=into``: ahead of the tree's editable install."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "survey"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(into / "survey")], check=True,
                   stdout=subprocess.DEVNULL)
    return into


def measured_scan(cmd: list[str], **kwargs) -> dict:
    """``run_measured`` for a ``survey scan`` whose output is not wanted: raises with the
    end of its stderr when it fails, so a benchmark never reports a broken run."""
    with tempfile.TemporaryFile() as errors:
        result = run_measured(cmd, stdout=subprocess.DEVNULL, stderr=errors, **kwargs)
        if result["returncode"] != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(cmd[2:4])} exited with {result['returncode']}: "
                               f"{errors.read()[-2000:].decode(errors='replace')}")
    result.pop("stdout", None)
    return result


@contextlib.contextmanager
def nsd(zone_file: Path, ip: str = "127.77.0.1") -> Iterator[tuple[str, int]]:
    """A real NSD serving ``zone_file`` as ``test.`` on ``ip`` and a free high port.

    Response rate limiting is off: it exists to blunt reflection attacks, and at
    its default 200 answers a second per client it would drop or truncate most
    of a benchmark's queries.
    """
    binary = shutil.which("nsd") or "/usr/sbin/nsd"
    if not os.path.exists(binary):
        raise RuntimeError("nsd is not installed (make bench installs it: apt-get install nsd)")
    port = free_port(ip)
    with tempfile.TemporaryDirectory(prefix="bench-nsd-") as tmp:
        conf = Path(tmp) / "nsd.conf"
        conf.write_text(f"""server:
    ip-address: {ip}@{port}
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{tmp}"
    database: ""
    zonelistfile: "{tmp}/zone.list"
    xfrdfile: "{tmp}/xfrd.state"
    pidfile: "{tmp}/nsd.pid"
    logfile: "{tmp}/nsd.log"
    server-count: 1
    verbosity: 0
    hide-version: yes
    zonefiles-write: 0
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "test"
    zonefile: "{Path(zone_file).resolve()}"
""")
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_for_port(ip, port, timeout=120, proc=proc)
            _wait_for_dns(ip, port, proc)
            yield ip, port
        finally:
            stop(proc)


def _wait_for_dns(ip: str, port: int, proc, timeout: float = 120.0) -> None:
    """NSD listens before its zone is loaded: wait for an authoritative SOA answer."""
    import dns.message
    import dns.query
    import dns.rcode

    deadline = time.monotonic() + timeout
    query = dns.message.make_query("test.", "SOA")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nsd exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            answer = dns.query.udp(query, ip, port=port, timeout=0.5)
            if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                return
        except Exception:   # noqa: BLE001, S110 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError("nsd did not serve the zone in time")
