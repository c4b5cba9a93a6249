"""Nothing lost, nothing silent: `survey` met as a careless or hostile user meets it.

Each case is a command, the exit status it must end with and the one line it
must say (the table in CASES); then the cases that need a running scan: two
writers on one --out, resumes with other settings, Ctrl-C at several moments,
a dead world. One small fast world serves the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from survey.store import read_manifest, read_pandas
from survey.store.lock import LockError, exclusive
from tests.worlds import SURVEY, served_world

DOMAINS = 120


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with served_world(tmp_path_factory.mktemp("world"), domains=DOMAINS, seed=20,
                      scale="fast", profile="default") as directory:
        yield directory


def survey(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(SURVEY + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def scan_args(world: Path, out: Path, *extra) -> list:
    return ["scan", "--world", world, "--out", out, "--profile", "starttls", "--quiet", *extra]


# -- the table: each case's command, exit status and message -------------------------------

def _binary(tmp: Path) -> Path:
    path = tmp / "ls.bin"
    path.write_bytes(Path(sys.executable).resolve().read_bytes()[:200_000])
    return path


def _utf16(tmp: Path) -> Path:
    path = tmp / "utf16.txt"
    path.write_bytes("example.test\nexample.org\n".encode("utf-16"))
    return path


def _fifo(tmp: Path) -> Path:
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


CASES = [
    # (id, arguments after `survey`, expected exit, text the one line contains)
    ("rate-0", ["scan", "{list}", "--out", "{out}", "--rate", "0"], 2,
     "--rate: 0 must be greater than 0"),
    ("rate-negative", ["scan", "{list}", "--out", "{out}", "--rate=-5"], 2,
     "--rate: -5 must be greater than 0"),
    ("rate-nan", ["scan", "{list}", "--out", "{out}", "--rate", "nan"], 2, "not a finite"),
    ("rate-inf", ["scan", "{list}", "--out", "{out}", "--rate", "inf"], 2, "not a finite"),
    ("dns-rate-0", ["scan", "{list}", "--out", "{out}", "--dns-rate", "0"], 2,
     "--dns-rate: 0 must be greater than 0"),
    ("spacing-nan", ["scan", "{list}", "--out", "{out}", "--per-ip-spacing", "nan"], 2,
     "not a finite"),
    ("spacing-0-internet", ["scan", "{list}", "--out", "{out}", "--per-ip-spacing", "0",
                            "--ehlo-name", "scanner.example"], 2,
     "--per-ip-spacing must be greater than 0 on the Internet"),
    ("retry-delay-inf", ["scan", "{list}", "--out", "{out}", "--retry-delay", "inf"], 2,
     "not a finite"),
    ("dns-timeout-0", ["scan", "{list}", "--out", "{out}", "--dns-timeout", "0"], 2,
     "--dns-timeout: 0 must be greater than 0"),
    ("dns-timeout-negative", ["scan", "{list}", "--out", "{out}", "--dns-timeout=-1"], 2,
     "--dns-timeout: -1 must be greater than 0"),
    ("connect-timeout-0", ["scan", "{list}", "--out", "{out}", "--connect-timeout", "0"], 2,
     "--connect-timeout: 0 must be greater than 0"),
    ("concurrency-0", ["scan", "{list}", "--out", "{out}", "--concurrency", "0"], 2,
     "--concurrency: 0 must be at least 1"),
    ("port-too-big", ["scan", "{list}", "--out", "{out}", "--smtp-port", "70000"], 2,
     "not a port number"),
    ("force-without-resume", ["scan", "{list}", "--out", "{out}", "--force",
                              "--ehlo-name", "scanner.example"], 2,
     "--force only goes with --resume"),
    ("input-binary", ["scan", "{binary}", "--out", "{out}", "--testbed",
                      "--resolver", "127.0.0.1:9"], 2, "not a text list of domain names"),
    ("input-utf16", ["scan", "{utf16}", "--out", "{out}", "--testbed",
                     "--resolver", "127.0.0.1:9"], 2, "not a text list of domain names"),
    ("input-directory", ["scan", "{tmp}", "--out", "{out}"], 2, "is a directory"),
    ("input-fifo", ["scan", "{fifo}", "--out", "{out}"], 2, "not a regular file"),
    ("s3-without-s3fs", ["scan", "{list}", "--out", "s3://bucket/scan"], 2, "s3fs"),
    ("score-not-a-scan", ["score", "{tmp}", "--world", "{tmp}"], 2, "no manifest"),
    ("world-too-many-domains", ["world", "--domains", "100000000", "--out", "{out}"], 2,
     "--domains"),
    ("out-not-utf8", ["scan", "{list}", "--out", "{tmp}/x\udcffy"], 2,
     "x\\xffy: the name is not UTF-8"),
    ("report-not-utf8", ["report", "{tmp}/x\udcffy"], 2, "the name is not UTF-8"),
    ("world-bad-profile", ["world", "--domains", "10", "--profile", "{badprofile}",
                           "--out", "{out}"], 2, "profile"),
]


@pytest.mark.parametrize(("args", "status", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_case(tmp_path, args, status, message):
    domains = tmp_path / "list.txt"
    domains.write_text("example.test\n")
    bad_profile = tmp_path / "bad.json"
    bad_profile.write_text('{"shares": {"nonsense": 2}}')
    values = {"list": domains, "out": tmp_path / "out", "tmp": tmp_path,
              "binary": _binary(tmp_path), "utf16": _utf16(tmp_path), "fifo": _fifo(tmp_path),
              "badprofile": bad_profile}
    result = survey(*[str(a).format(**values) for a in args], timeout=60)
    assert result.returncode == status, result.stderr
    assert message in one_line(result)
    out = tmp_path / "out"         # nothing written (a lock file at most)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".lock"]


# -- one writer at a time ------------------------------------------------------------------

def test_the_lock_names_its_holder_and_dies_with_the_block(tmp_path):
    with exclusive(tmp_path, "survey scan"), \
            pytest.raises(LockError, match=f"survey scan pid {os.getpid()}"), \
            exclusive(tmp_path, "survey scan"):
        pass
    with exclusive(tmp_path, "survey scan"):     # released: taken again
        pass


def test_an_object_store_lease_refuses_a_second_writer_and_yields_when_stale():
    import fsspec

    from survey.store import lock
    from survey.store.location import location

    where = location("memory://reliability/lease")
    with exclusive(where, "survey scan"), \
            pytest.raises(LockError, match="in use by survey scan pid"), \
            exclusive(where, "survey scan"):
        pass
    assert not fsspec.filesystem("memory").exists("/reliability/lease/.lock")
    # a lease whose writer stopped renewing it long ago belongs to nobody
    stale = {"what": "survey scan", "pid": 1, "host": "elsewhere", "token": "x",
             "heartbeat": time.time() - lock.STALE - 1}
    (where / ".lock").fs.pipe_file((where / ".lock").path, json.dumps(stale).encode())
    with exclusive(where, "survey scan") as me:
        held = json.loads((where / ".lock").read_bytes())
        assert held["token"] == me["token"]


def test_a_second_writer_on_one_out_is_refused_and_the_first_is_intact(world, tmp_path):
    out = tmp_path / "scan"
    first = subprocess.Popen(SURVEY + [str(a) for a in scan_args(world, out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:                   # the first holds the lock: its pid is in .lock
            try:
                if json.loads((out / ".lock").read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)       # hold it mid-scan
        try:
            second = survey(*scan_args(world, out, "--resume"), timeout=60)
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2
        assert f"in use by survey scan pid {first.pid}" in one_line(second)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    domains = read_pandas(out, "domains")
    assert len(domains) == DOMAINS and not domains["domain"].duplicated().any()
    hosts = read_pandas(out, "hosts")
    assert not hosts.duplicated(subset=["ip", "port"]).any()
    assert read_manifest(out)["state"] == "complete"


def test_a_served_world_is_not_rebuilt_or_served_twice(world):
    rebuilt = survey("world", "--domains", "10", "--out", world, timeout=60)
    assert rebuilt.returncode == 2
    assert "in use by survey world --serve pid" in one_line(rebuilt)
    twice = survey("world", "--serve", "--any-ports", "--out", world, timeout=60)
    assert twice.returncode == 2
    assert "in use by survey world --serve pid" in one_line(twice)
    assert json.loads((world / "world.json").read_text())["state"] == "running"


def test_a_world_whose_server_is_gone_is_refused(world, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = json.loads((world / "world.json").read_text())
    (tmp_path / "world.json").write_text(json.dumps(dict(info, pid=dead.pid)))
    result = survey(*scan_args(tmp_path / "world.json", tmp_path / "scan"), timeout=60)
    assert result.returncode == 2
    assert f"(pid {dead.pid}) is gone" in one_line(result)


# -- resume checks what it resumes -----------------------------------------------------------

def test_a_resume_with_other_settings_is_refused_and_force_records_every_run(world, tmp_path):
    out = tmp_path / "scan"
    first = survey(*scan_args(world, out, "--limit", "30"))
    assert first.returncode == 0, first.stderr
    other_list = tmp_path / "other.csv"
    other_list.write_text("".join((world / "domains.csv").read_text().splitlines(True)[40:70]))
    refused = survey("scan", other_list, *scan_args(world, out, "--limit", "30",
                                                    "--resume")[1:])
    assert refused.returncode == 2
    assert "input list (sha256)" in one_line(refused)
    refused = survey(*scan_args(world, out, "--limit", "40", "--resume", "--profile",
                                "versions"))
    assert refused.returncode == 2
    line = one_line(refused)
    assert "limit: 30 -> 40" in line and "profile: starttls -> versions" in line
    same = survey(*scan_args(world, out, "--limit", "30", "--resume"))
    assert same.returncode == 0, same.stderr
    forced = survey(*scan_args(world, out, "--limit", "40", "--resume", "--force"))
    assert forced.returncode == 0, forced.stderr
    manifest = read_manifest(out)
    runs = manifest["runs"]
    assert [r["state"] for r in runs] == ["complete"] * 3
    assert runs[-1]["forced_changes"] == ["limit: 30 -> 40"]
    assert manifest["resumed_with_changes"] is True
    assert manifest["started_at"] == runs[0]["started_at"] < runs[-1]["started_at"]
    assert len(read_pandas(out, "domains")) == 40


# -- Ctrl-C ----------------------------------------------------------------------------------

@pytest.mark.parametrize("moment", [0.3, 1.5, "mid-scan"])
def test_ctrl_c_ends_a_scan_in_one_line_with_the_resume_command(world, tmp_path, moment):
    out = tmp_path / "scan"
    args = [str(a) for a in scan_args(world, out, "--concurrency", "4", "--batch-rows", "10")]
    process = subprocess.Popen(SURVEY + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    if moment == "mid-scan":     # once a batch is committed
        deadline = time.monotonic() + 60
        while not list((out / "domains").glob("part-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        moment = 0
    time.sleep(moment)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the scan ended before the signal")   # a fast machine: nothing to test
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line]
    assert lines[0].startswith("survey scan: interrupted")
    if len(lines) == 1:          # before the scan began (still importing): nothing to resume
        assert not (out / "manifest.json").exists()
    else:
        assert len(lines) == 2 and lines[1].strip().startswith("survey scan")
        assert "--resume" in lines[1]
    if (out / "manifest.json").exists():
        resumed = survey(*args, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        domains = read_pandas(out, "domains")
        assert len(domains) == DOMAINS and not domains["domain"].duplicated().any()
        assert read_manifest(out)["runs"][0]["state"] == "interrupted"


def test_a_ctrl_c_at_any_moment_of_start_up_ends_with_130_in_one_line(world, tmp_path):
    """The 0.3 s case above once failed with -2: about one Ctrl-C in twelve, 0.1-0.5 s after
    the start, ended with -2 (CPython's exit after a KeyboardInterrupt inside the ``exec`` of
    a dataclass's methods, even though survey caught it) or with 2 (it came out of dnspython's
    zone reader as a syntax error of the trust anchors). Start-up now holds a Ctrl-C back
    until its imports and configuration are whole (survey/interrupts.py)."""
    ended = []
    for i in range(20):
        out = tmp_path / f"scan{i}"
        args = [str(a) for a in scan_args(world, out, "--concurrency", "4")]
        process = subprocess.Popen(SURVEY + args, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        moment = 0.1 + 0.025 * i
        time.sleep(moment)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        ended.append((moment, process.returncode, err.strip().splitlines()[:1]))
    # Exit 0 with nothing said: the Ctrl-C was lost and the scan ran to its end (about one
    # in 300 here, before and after the deferral; cause not found yet). The test before this
    # one skips on it; here it may happen once, and every other ending must be exactly 130.
    lost = [m for m, code, first in ended if code == 0 and not first]
    unexpected = [(m, code, first) for m, code, first in ended if m not in lost and (
        code != 130 or not first or not first[0].startswith("survey scan: interr"))]
    assert unexpected == [] and len(lost) <= 1, (unexpected, lost)


def test_ctrl_c_ends_a_served_world_with_130(tmp_path):
    built = survey("world", "--domains", "5", "--scale", "fast", "--out", tmp_path / "w")
    assert built.returncode == 0, built.stderr
    process = subprocess.Popen(SURVEY + ["world", "--serve", "--any-ports", "--out",
                                         str(tmp_path / "w")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "w" / "world.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert json.loads((tmp_path / "w" / "world.json").read_text())["state"] == "stopped"


# -- a resolver that answers nothing ------------------------------------------------------------

def test_a_silent_resolver_stops_the_scan_with_one_line(tmp_path):
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        domains = tmp_path / "list.txt"
        domains.write_text("".join(f"d{i}.example.test\n" for i in range(80)))
        result = survey("scan", domains, "--out", tmp_path / "scan", "--testbed",
                        "--resolver", f"127.0.0.1:{silent.getsockname()[1]}",
                        "--dns-timeout", "0.2", "--quiet", timeout=120)
    finally:
        silent.close()
    assert result.returncode == 2
    assert "answered none of the first" in one_line(result)
    assert len(read_pandas(tmp_path / "scan", "domains")) == 0


# -- score -------------------------------------------------------------------------------------

def test_score_into_a_closed_pipe_is_quiet(world, tmp_path):
    out = tmp_path / "scan"
    assert survey(*scan_args(world, out, "--limit", "20")).returncode == 0
    pipeline = subprocess.run(
        " ".join(SURVEY) + f" score {out} --world {world} | head -c 10", shell=True,
        capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in pipeline.stderr and "BrokenPipe" not in pipeline.stderr


# -- politeness as the server sees it ------------------------------------------------------------

def test_the_spacing_holds_between_every_connection_in_the_servers_log(world, tmp_path):
    """The world's own connection log: per address, each connection starts at least the
    spacing after the last one ended, the enumeration's hellos included; and the host rows
    count every SMTP connection the server saw (SNI checks aside, counted in the stats)."""
    from survey.testbed.listen import read_connection_log

    spacing = 0.3
    out = tmp_path / "scan"
    started = time.time()
    result = survey("scan", "--world", world, "--out", out, "--profile", "versions",
                    "--limit", "25", "--per-ip-spacing", str(spacing), "--quiet")
    assert result.returncode == 0, result.stderr
    ended = time.time()
    info = json.loads((world / "world.json").read_text())
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if started <= r.start <= ended and r.port == info["smtp"]["port"]]
    by_ip: dict[str, list] = {}
    for r in sorted(log, key=lambda r: r.start):
        by_ip.setdefault(r.ip, []).append(r)
    gaps = [b.start - a.end for rs in by_ip.values() for a, b in zip(rs, rs[1:])]
    assert gaps and max(len(rs) for rs in by_ip.values()) >= 4      # hellos were made
    # the server notes an end when its handler finishes, a little after the client left
    assert min(gaps) >= spacing - 0.05, sorted(gaps)[:5]
    hosts = read_pandas(out, "hosts")
    stats = read_manifest(out)["stats"]
    assert stats["connections"] - stats["policy_fetches"] >= len(log) - 0
    assert int(hosts["connections"].sum()) + stats["sni_probes"] * 3 >= len(log)
    assert int(hosts["connections"].sum()) <= len(log)


# -- the report reads the committed dataset only ------------------------------------------------

def _small_scan(directory: Path, state: str, names=("a.example", "b.example", "c.example")):
    from datetime import UTC, datetime

    from survey.store import DatasetWriter, write_manifest

    now = datetime(2026, 12, 6, tzinfo=UTC)
    with DatasetWriter(directory, writer_id="w", batch_rows=2) as writer:
        for i, name in enumerate(names):
            writer.write_group([
                ("hosts", {"ip": f"192.0.2.{i + 1}", "port": 25, "status": "ok",
                           "probed_at": now}),
                ("domains", {"domain": name, "input": name, "rank": i + 1,
                             "dns_status": "ok", "probed_at": now})])
    write_manifest(directory, {"scan_id": directory.name, "state": state,
                               "runs": [{"state": "interrupted"}, {
                                   "state": state, "forced_changes": ["limit: 2 -> 3"]}]})


@pytest.mark.parametrize("name", ["scan[1]", "scan?", "scan*x"])
def test_a_partial_scan_reads_its_committed_batches_by_literal_paths(tmp_path, name):
    from survey.analysis import cluster
    from survey.analysis.load import Scan
    from survey.store import count_rows, open_dataset

    scan_dir = tmp_path / name
    _small_scan(scan_dir, "partial")
    _small_scan(tmp_path / "scan1", "complete", names=("x.example",) * 1)   # a glob's match
    # a crash between the last batch's hosts part and its domains part
    (scan_dir / "domains" / "part-w-000001.parquet").unlink()
    assert count_rows(scan_dir, "hosts") == 2                 # the uncommitted part left out
    assert open_dataset(scan_dir, "hosts").count_rows() == 2
    scan = Scan(scan_dir)
    assert scan.df("SELECT count(*) AS n FROM hosts")["n"][0] == 2
    counts = cluster.status_counts_with_dask(scan, "hosts", "status")
    assert counts["rows"].sum() == 2
    info = scan.describe()
    assert info["completeness"].startswith("partial: the scan has not finished")
    assert "resumed with different settings: limit: 2 -> 3" in info["runs"]


# -- the vantage's reach ------------------------------------------------------------------------

def test_a_family_left_out_is_never_contacted_and_says_so(world, tmp_path):
    from survey.testbed.listen import read_connection_log

    out = tmp_path / "scan"
    started = time.time()
    result = survey(*scan_args(world, out, "--limit", "15", "--ip-version", "6"))
    assert result.returncode == 0, result.stderr
    info = json.loads((world / "world.json").read_text())
    log = [r for r in read_connection_log(world / "connections.jsonl")
           if r.start >= started and r.port == info["smtp"]["port"]]
    assert not [r for r in log if ":" not in r.ip]        # no IPv4 address contacted
    hosts = read_pandas(out, "hosts")
    v4 = hosts[~hosts["ip"].str.contains(":")]
    assert len(v4) and set(v4["status"]) == {"family_excluded"}
    assert (v4["connections"] == 0).all()
    v6 = hosts[hosts["ip"].str.contains(":")]
    assert "family_excluded" not in set(v6["status"])
    vantage = read_manifest(out)["vantage"]
    assert vantage["ip_version"] == "6" and vantage["reach"] == "loopback"


def test_ctrl_c_ends_a_report_in_one_line_and_leaves_no_kernel(world, tmp_path):
    from survey.report import _descendants

    out = tmp_path / "scan"
    assert survey(*scan_args(world, out, "--limit", "20")).returncode == 0
    report = subprocess.Popen(SURVEY + ["report", str(out), "--out", str(tmp_path / "r")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60          # until its kernels run
    while len(_descendants(report.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    kernels = _descendants(report.pid)
    assert kernels, "no kernel started"
    report.send_signal(signal.SIGINT)
    _, err = report.communicate(timeout=60)
    assert report.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "survey report: interrupted; no report written"
    time.sleep(0.5)
    assert [pid for pid in kernels if Path(f"/proc/{pid}").exists()] == []
    assert not (tmp_path / "r" / "report.html").exists()


def test_ctrl_c_while_a_world_is_built_ends_in_one_line_and_frees_it(tmp_path):
    world = tmp_path / "w"
    process = subprocess.Popen(SURVEY + ["world", "--domains", "300000", "--out", str(world)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60          # until it holds the directory
    while not (world / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the world was built before the signal")
    assert process.returncode == 130, err
    assert err.strip() == "survey world: interrupted"
    with exclusive(world, "survey world"):     # the lock died with the process
        pass


def test_a_ctrl_c_just_after_the_first_manifest_records_the_run_as_interrupted(tmp_path,
                                                                                monkeypatch):
    """CI once caught the signal in the instant between the first manifest and the scan:
    the run stayed 'partial' for ever. No signal can be timed that finely, so the write
    itself raises it."""
    import trio

    from survey.scan import run as scan_run
    from survey.scan.config import ScanConfig

    real_write = scan_run.write_manifest
    writes = []

    def write_then_interrupt(out, manifest):
        real_write(out, manifest)
        writes.append(manifest)
        if len(writes) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(scan_run, "write_manifest", write_then_interrupt)
    domains = tmp_path / "list.txt"
    domains.write_text("a.test\n")
    config = ScanConfig(input=domains, out=tmp_path / "scan", mode="testbed",
                        resolvers=[("127.0.0.1", 9)], ehlo_name="scanner.survey.test",
                        mozilla_roots=False, dnssec=False)
    with pytest.raises(KeyboardInterrupt):
        trio.run(scan_run.run_scan, config)
    assert read_manifest(tmp_path / "scan")["runs"][0]["state"] == "interrupted"
