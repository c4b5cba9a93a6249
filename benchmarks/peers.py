"""Peers on the same servers (issue 10, item 1).

The interop lab (tests/interop/lab.py: real Postfix listeners, Unbound, nginx)
is enumerated, one listener at a time, by ``survey scan --profile ciphers`` and
by sslscan, testssl.sh (Debian) and sslyze (PyPI, in its own virtualenv
``.venv-peers``: it pins an older ``cryptography`` than ours). Per tool and
listener: wall time, CPU (the child's rusage), connections (counted by Postfix:
``connect from`` lines of that listener's ``syslog_name`` in the maillog while
the tool ran) and findings ((version, suite) pairs), compared with what the
listener was configured to serve (tests/interop/expected.py, from OpenSSL's own
expansion of the cipher lists). Runs are sequential, so each tool has the
machine to itself while it is timed.

survey scans every listener in one run (a survey's natural unit: many
servers at once, each at one connection at a time), and its wall per server
is that run's wall over the number of listeners. Each listener is also
scanned alone (``alone``: interpreter start, DNS, MTA-STS fetch and dataset
writing included), reported beside it. The peers take one server per run.

``fixed_s`` is the wall of the same command over an empty list (interpreter,
imports, trust store, manifest: paid once per run, however many servers), and
``wall_s_after_fixed`` the run's wall without it over the servers: the cost a
survey of many servers pays per server. ``alone_after_fixed_s``: a listener's
``alone`` wall without it. Reported, not targets.

Targets. Wall, like with like: survey's wall per server over the listeners
(its one run's wall / n) <= sslscan's wall per server over the same listeners
(its n runs' walls summed / n), and <= 0.3 x sslyze's. Not per listener: the
run's wall per server is one figure for all of them (the run is as long as
its longest listener, plus the fixed cost), so set against each listener's
own peer wall it measured how that listener compares with the set's average
(restricted, 6 suites: sslscan's quickest; legacy, 110: its slowest), not
survey against the peer. Per listener: survey's connections < every peer's
and <= supported pairs + versions probed + 2; survey's findings = the
configured truth.

``--compare-rev REV`` (repeatable) also runs survey's part with the scanner
of another git revision (``git archive``, bytecode compiled), side by side:
before/after in one run. ``--rounds N`` (default 3) runs every scanner and
sslscan N times in turn and reports medians: on two loaded cores one run's
wall ranged over 2.5x (survey's one run over three listeners 1.29-3.33 s at
load 9-14, its CPU 0.99-1.10 s); testssl.sh and sslyze run once.

    python benchmarks/peers.py [--listeners modern,legacy,restricted]
        [--tools survey,sslscan,testssl.sh,sslyze] [--compare-rev REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c

SSLYZE = c.REPO / ".venv-peers" / "bin" / "sslyze"
SSLYZE_KEYS = {"ssl_3_0_cipher_suites": "SSLv3", "tls_1_0_cipher_suites": "TLSv1.0",
               "tls_1_1_cipher_suites": "TLSv1.1", "tls_1_2_cipher_suites": "TLSv1.2",
               "tls_1_3_cipher_suites": "TLSv1.3"}


def connections(maillog: Path, label: str) -> int:
    """``connect from`` lines of one listener so far (its syslog_name is postfix/<label>)."""
    if not maillog.exists():
        return 0
    pattern = re.compile(rf"postfix/{re.escape(label)}/smtpd\[\d+\]: connect from ")
    with open(maillog, errors="replace") as fh:
        return sum(1 for line in fh if pattern.search(line))


def timed(lab, label: str, command: list[str], **kwargs) -> dict:
    """One run: wall, the child's CPU (its own rusage), the listener's connections."""
    before = connections(lab.maillog, label)
    with tempfile.TemporaryFile() as errors:
        result = c.run_measured(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors, **kwargs)
        errors.seek(0)
        tail = errors.read()[-500:].decode(errors="replace")
    time.sleep(1.0)            # Postfix writes its log asynchronously
    return {"wall_s": result["wall_s"], "cpu_s": result["cpu_s"],
            "returncode": result["returncode"],
            "connections": connections(lab.maillog, label) - before, "stderr_tail": tail}


def in_private_resolv(lab, command: list[str]) -> list[str]:
    """Peers resolve through /etc/resolv.conf: give them a loopback one (unshare -m)."""
    from tests.interop.peers import UNSHARE_WRAPPER

    resolv = lab.root / "bench-resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return ["unshare", "-m", "sh", "-c", UNSHARE_WRAPPER, str(resolv), *command]


def survey_command(lab, domains: Path, out: Path) -> list[str]:
    from tests.interop.conftest import FAST

    return c.SURVEY + ["scan", str(domains), "--out", str(out), "--quiet", "--testbed",
                       "--resolver", lab.resolver, "--smtp-port", str(lab.smtp_port),
                       "--https-port", str(lab.https_port), "--ca-file",
                       str(lab.pki.ca_file), *FAST, "--profile", "ciphers"]


def scanner_env(source: Path | None) -> dict:
    """``cwd`` and ``env`` that run the scanner of ``source`` (c.checkout), or the tree's."""
    if source is None:
        return {"cwd": c.REPO}
    return {"cwd": source, "env": {**os.environ, "PYTHONPATH": str(source)}}


def survey_fixed_cost(lab, work: Path, label: str, source: Path | None, tag: str) -> dict:
    """The same ``survey scan`` over an empty list, 3 times (median wall and CPU):
    interpreter, imports, trust store, manifest -- what a run pays once however many
    servers it scans."""
    empty = work / "empty.txt"
    empty.write_text("")
    runs = [timed(lab, label, survey_command(lab, empty, work / f"survey-empty-{tag}-{i}"),
                  **scanner_env(source)) for i in range(3)]
    return {"wall_s": c.median([r["wall_s"] for r in runs]),
            "cpu_s": c.median([r["cpu_s"] for r in runs])}


def run_survey(lab, listeners, work: Path, name: str, source: Path | None = None) -> dict:
    """One ``survey scan --profile ciphers`` over the listeners' domains: the run's wall and
    CPU, and per listener (label -> (figures, pairs found))."""
    from survey.store import open_dataset
    from tests.interop.lab import ZONE

    domains = work / f"{name}.txt"
    domains.write_text("".join(f"{x.label}.{ZONE}\n" for x in listeners))
    out = work / f"survey-{name}"
    command = survey_command(lab, domains, out)
    before = {x.label: connections(lab.maillog, x.label) for x in listeners}
    result = timed(lab, listeners[0].label, command, **scanner_env(source))
    if result["returncode"] != 0:
        raise RuntimeError(f"survey scan exited with {result['returncode']}: "
                           f"{result['stderr_tail']}")
    rows = {r["ip"]: r for r in open_dataset(out, "hosts").to_table().to_pylist()}
    per_listener = {}
    for x in listeners:
        row = rows[x.ip]
        per_listener[x.label] = (
            {"connections": connections(lab.maillog, x.label) - before[x.label],
             "status": row["status"], "probe_status": row["probe_status"],
             "connections_in_row": row["connections"], "versions": row["versions_supported"]},
            {(s["version"], s["name"]) for s in row["cipher_suites"] or []})
    return {"wall_s": result["wall_s"], "cpu_s": result["cpu_s"], "listeners": per_listener}


def survey_round(lab, listeners, work: Path, source: Path | None, tag: str) -> dict:
    """One scanner's part of a round: the run over every listener, the fixed cost, and
    each listener alone."""
    batch = run_survey(lab, listeners, work, f"all-{tag}", source)
    fixed = survey_fixed_cost(lab, work, listeners[0].label, source, tag)
    alone = {x.label: run_survey(lab, [x], work, f"{x.label}-{tag}", source)
             for x in listeners}
    return {"batch": batch, "fixed": fixed, "alone": alone}


def survey_summary(rounds: list[dict], listeners) -> dict:
    """Medians over the rounds of one scanner's figures, per listener, with its findings
    (those of the first round: every round must find the same)."""
    n = len(listeners)
    run_wall = c.median([r["batch"]["wall_s"] for r in rounds])
    fixed = c.median([r["fixed"]["wall_s"] for r in rounds])
    out: dict = {"run_wall_s": run_wall, "run_cpu_s": c.median([r["batch"]["cpu_s"]
                                                                for r in rounds]),
                 "servers_in_run": n, "wall_s": run_wall / n, "fixed_s": fixed,
                 "fixed_cpu_s": c.median([r["fixed"]["cpu_s"] for r in rounds]),
                 "wall_s_after_fixed": (run_wall - fixed) / n, "rounds": len(rounds),
                 "run_walls_s": [round(r["batch"]["wall_s"], 3) for r in rounds],
                 "listeners": {}}
    for x in listeners:
        first, found = rounds[0]["batch"]["listeners"][x.label]
        alone_wall = c.median([r["alone"][x.label]["wall_s"] for r in rounds])
        figures = {**first, "alone": {
            "wall_s": alone_wall,
            "cpu_s": c.median([r["alone"][x.label]["cpu_s"] for r in rounds]),
            "connections": rounds[0]["alone"][x.label]["listeners"][x.label][0]["connections"]},
            "alone_after_fixed_s": alone_wall - fixed,
            "same_in_every_round": all(r["batch"]["listeners"][x.label][1] == found
                                       and r["batch"]["listeners"][x.label][0]["connections"]
                                       == first["connections"] for r in rounds)}
        out["listeners"][x.label] = (figures, found)
    return out


def run_sslscan(lab, listener, work: Path) -> tuple[dict, set]:
    from tests.interop.peers import parse_sslscan, sslscan_command

    report = work / f"sslscan-{listener.label}.xml"
    report.unlink(missing_ok=True)
    result = timed(lab, listener.label, in_private_resolv(
        lab, sslscan_command(f"{listener.ip}:{lab.smtp_port}", report)))
    return result, parse_sslscan(report, listener.label).all_suites()


def run_testssl(lab, listener, work: Path) -> tuple[dict, set]:
    from tests.interop.peers import parse_testssl, testssl_command

    report = work / f"testssl-{listener.label}.json"
    report.unlink(missing_ok=True)      # testssl.sh refuses to overwrite it (--rounds)
    result = timed(lab, listener.label, in_private_resolv(
        lab, testssl_command(f"{listener.ip}:{lab.smtp_port}", report)),
        env={**os.environ, "TERM": "dumb"})
    return result, parse_testssl(report, listener.label).all_suites()


def run_sslyze(lab, listener, work: Path) -> tuple[dict, set]:
    from survey.proto.ciphers import by_iana_name

    report = work / f"sslyze-{listener.label}.json"
    report.unlink(missing_ok=True)
    command = [str(SSLYZE), "--starttls", "smtp", "--sslv3", "--tlsv1", "--tlsv1_1",
               "--tlsv1_2", "--tlsv1_3", f"--json_out={report}",
               f"{listener.ip}:{lab.smtp_port}"]
    result = timed(lab, listener.label, in_private_resolv(lab, command))
    found = set()
    doc = json.loads(report.read_text())
    for server in doc.get("server_scan_results", []):
        scans = server.get("scan_result") or {}
        for key, version in SSLYZE_KEYS.items():
            accepted = ((scans.get(key) or {}).get("result") or {}).get(
                "accepted_cipher_suites") or []
            for item in accepted:
                name = item["cipher_suite"]["name"]
                suite = by_iana_name(name)
                found.add((version, suite.iana_name if suite else name))
    return result, found


PEERS = {"sslscan": run_sslscan, "testssl.sh": run_testssl, "sslyze": run_sslyze}
# Run in the first round only: their walls are many times survey's (testssl.sh sleeps around
# its hellos, 15-35 s a listener), so one run decides their comparison, and --rounds stays cheap.
ONCE = {"testssl.sh", "sslyze"}


def peer_summary(runs: list[tuple[dict, set]]) -> tuple[dict, set]:
    """A peer's runs on one listener: the median wall and CPU, the first run's findings."""
    first, found = runs[0]
    return ({**first, "wall_s": c.median([r["wall_s"] for r, _ in runs]),
             "cpu_s": c.median([r["cpu_s"] for r, _ in runs]),
             "walls_s": [round(r["wall_s"], 3) for r, _ in runs],
             "same_in_every_round": all(f == found for _, f in runs)}, found)


def with_truth(result: dict, found: set, truth: set) -> dict:
    result["pairs_found"] = len(found)
    result["missing"] = sorted(map(list, truth - found))
    result["extra"] = sorted(map(list, found - truth))
    result["equals_truth"] = found == truth
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default="modern,legacy,restricted")
    parser.add_argument("--tools", default=",".join(["survey", *PEERS]))
    parser.add_argument("--compare-rev", metavar="REV", action="append", default=[],
                        help="also run survey's part with the scanner of this git revision "
                             "(repeatable)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every scanner and sslscan this many times in turn (medians; "
                             "testssl.sh and sslyze run once)")
    args = parser.parse_args()

    from survey.proto.ciphers import VERSIONS
    from tests.interop.expected import configured
    from tests.interop.lab import BY_LABEL, Lab

    listeners = [BY_LABEL[name] for name in args.listeners.split(",")]
    tools = args.tools.split(",")
    peers = [t for t in tools if t != "survey"]
    if "sslyze" in tools and not SSLYZE.exists():
        raise SystemExit(f"{SSLYZE} is missing: make bench installs it "
                         "(python -m venv .venv-peers && .venv-peers/bin/pip install sslyze)")
    lab = Lab.create()
    results: dict = {}
    targets: dict = {}
    scanners_out: dict = {}
    loads: list = []
    try:
        lab.start()
        with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
            work = Path(tmp)
            scanners: list[tuple[str, Path | None]] = []
            if "survey" in tools:
                scanners = [(rev, c.checkout(rev, work / f"src{i}"))
                            for i, rev in enumerate(args.compare_rev)] + [("this tree", None)]
            survey_rounds: dict[str, list[dict]] = {label: [] for label, _ in scanners}
            peer_runs: dict = {(t, x.label): [] for t in peers for x in listeners}
            for round_ in range(args.rounds):
                loads.append(os.getloadavg()[0])
                for i, (label, source) in enumerate(scanners):
                    c.log(f"survey ({label}) on {', '.join(x.label for x in listeners)}, "
                          f"then each alone (round {round_ + 1} of {args.rounds})")
                    survey_rounds[label].append(
                        survey_round(lab, listeners, work, source, f"{round_}-{i}"))
                    last = survey_rounds[label][-1]
                    c.log(f"  one run {last['batch']['wall_s']:.2f} s, "
                          f"{last['batch']['cpu_s']:.2f} s CPU; empty list "
                          f"{last['fixed']['wall_s']:.2f} s")
                for tool in peers:
                    if tool in ONCE and round_:
                        continue
                    for listener in listeners:
                        result, found = PEERS[tool](lab, listener, work)
                        peer_runs[tool, listener.label].append((result, found))
                        c.log(f"{tool} on {listener.label}: {result['wall_s']:.2f} s, "
                              f"{result['connections']} connections, {len(found)} pairs")
            loads.append(os.getloadavg()[0])
            summaries = {label: survey_summary(rounds, listeners)
                         for label, rounds in survey_rounds.items()}
            for label, summary in summaries.items():
                scanners_out[label] = {k: v for k, v in summary.items() if k != "listeners"}
                scanners_out[label]["listeners"] = {
                    name: {"alone_wall_s": figures["alone"]["wall_s"],
                           "alone_cpu_s": figures["alone"]["cpu_s"],
                           "connections": figures["connections"],
                           "equals_truth": found == configured(BY_LABEL[name]).suite_set()}
                    for name, (figures, found) in summary["listeners"].items()}
            survey = summaries.get("this tree")
            peer_sums: dict[str, float] = {}
            for listener in listeners:
                truth = configured(listener).suite_set()
                per_tool = results[listener.label] = {}
                if survey is not None:
                    figures, found = survey["listeners"][listener.label]
                    per_tool["survey"] = with_truth(
                        {**{k: v for k, v in survey.items() if k != "listeners"}, **figures},
                        found, truth)
                for tool in peers:
                    result, found = peer_summary(peer_runs[tool, listener.label])
                    per_tool[tool] = with_truth(result, found, truth)
                    peer_sums[tool] = peer_sums.get(tool, 0.0) + result["wall_s"]
                if survey is None:
                    continue
                mine = per_tool["survey"]
                budget = len(truth) + len(VERSIONS) + 2     # SSLv3 .. TLS 1.3 probed
                t = {}
                if peers:
                    t["connections_vs_fewest_peer"] = c.target(
                        mine["connections"] / min(per_tool[p]["connections"] for p in peers),
                        "<", 1.0)
                if "sslscan" in peers:     # not a target (docstring): one listener's own
                    sslscan = per_tool["sslscan"]["wall_s"]
                    mine["wall_vs_this_listeners_sslscan"] = mine["wall_s"] / sslscan
                    mine["alone_after_fixed_vs_sslscan"] = mine["alone_after_fixed_s"] / sslscan
                t["connections_vs_pairs_plus_versions_plus_2"] = c.target(
                    mine["connections"], "<=", budget)
                # every round found the same pairs over the same connections (--rounds)
                t["findings_equal_truth"] = c.target(
                    int(mine["equals_truth"] and mine["same_in_every_round"]), ">=", 1)
                for name, value in t.items():
                    targets[f"{listener.label}.{name}"] = value
            if survey is not None:
                per_server = {tool: total / len(listeners) for tool, total in peer_sums.items()}
                results["wall_per_server"] = {"survey": survey["wall_s"], **per_server}
                if "sslscan" in per_server:
                    targets["wall_per_server_vs_sslscan"] = c.target(
                        survey["wall_s"] / per_server["sslscan"], "<=", 1.0)
                if "sslyze" in per_server:
                    targets["wall_per_server_vs_sslyze"] = c.target(
                        survey["wall_s"] / per_server["sslyze"], "<=", 0.3)
    finally:
        lab.stop()
        lab.remove()
    c.emit("peers", settings={"listeners": [x.label for x in listeners], "tools": tools,
                              "rounds": args.rounds, "compare_rev": args.compare_rev,
                              "server": "postfix (Debian), interop lab",
                              "load_1min_at_each_round_and_end": loads},
           results=results, scanners=scanners_out, targets=targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
