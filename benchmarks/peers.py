"""Peers on the same servers (issue 10, item 1).

The interop lab (tests/interop/lab.py: real Postfix listeners, Unbound, nginx)
is enumerated, one listener at a time, by ``survey scan --profile ciphers`` and
by sslscan, testssl.sh (Debian) and sslyze (PyPI, in its own virtualenv
``.venv-peers``: it pins an older ``cryptography`` than ours). Per tool and
listener: wall time, connections (counted by Postfix: ``connect from`` lines
of that listener's ``syslog_name`` in the maillog while the tool ran) and
findings ((version, suite) pairs), compared with what the listener was
configured to serve (tests/interop/expected.py, from OpenSSL's own expansion
of the cipher lists). Runs are sequential, so each tool has the machine to
itself while it is timed.

survey scans every listener in one run (a survey's natural unit: many
servers at once, each at one connection at a time), and its wall per server
is that run's wall over the number of listeners; each listener is also
scanned alone (``alone``: interpreter start, DNS, MTA-STS fetch and dataset
writing included), reported beside it. The peers take one server per run.

``fixed_s`` is the wall of the same command over an empty list (interpreter,
imports, trust store, manifest: paid once per run, however many servers), and
``wall_s_after_fixed`` the run's wall without it over the servers: the cost a
survey of many servers pays per server. Reported, not a target.

Targets, per listener: survey's wall <= sslscan's and <= 0.3 x sslyze's;
survey's connections < every peer's and <= supported pairs + versions probed
+ 2; survey's findings = the configured truth.

    python benchmarks/peers.py [--listeners modern,legacy,restricted]
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
    before = connections(lab.maillog, label)
    started = time.monotonic()
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=900,
                          check=False, **kwargs)
    wall = time.monotonic() - started
    time.sleep(1.0)            # Postfix writes its log asynchronously
    return {"wall_s": wall, "returncode": done.returncode,
            "connections": connections(lab.maillog, label) - before,
            "stderr_tail": done.stderr[-500:].decode(errors="replace")}


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


def survey_fixed_cost(lab, work: Path, label: str) -> float:
    """Wall of the same ``survey scan`` over an empty list: interpreter, imports, trust
    store, manifest -- what a run pays once however many servers it scans."""
    empty = work / "empty.txt"
    empty.write_text("")
    walls = [timed(lab, label, survey_command(lab, empty, work / f"survey-empty-{i}"),
                   cwd=c.REPO)["wall_s"] for i in range(3)]
    return c.median(walls)


def run_survey(lab, listeners, work: Path, name: str) -> dict:
    """One ``survey scan --profile ciphers`` over the listeners' domains; per-listener rows."""
    from survey.store import open_dataset
    from tests.interop.lab import ZONE

    domains = work / f"{name}.txt"
    domains.write_text("".join(f"{x.label}.{ZONE}\n" for x in listeners))
    out = work / f"survey-{name}"
    command = survey_command(lab, domains, out)
    before = {x.label: connections(lab.maillog, x.label) for x in listeners}
    result = timed(lab, listeners[0].label, command, cwd=c.REPO)
    rows = {r["ip"]: r for r in open_dataset(out, "hosts").to_table().to_pylist()}
    per_listener = {}
    for x in listeners:
        row = rows[x.ip]
        per_listener[x.label] = (
            {"wall_s": result["wall_s"] / len(listeners), "run_wall_s": result["wall_s"],
             "servers_in_run": len(listeners), "returncode": result["returncode"],
             "connections": connections(lab.maillog, x.label) - before[x.label],
             "status": row["status"], "probe_status": row["probe_status"],
             "connections_in_row": row["connections"], "versions": row["versions_supported"]},
            {(s["version"], s["name"]) for s in row["cipher_suites"] or []})
    return per_listener


def run_sslscan(lab, listener, work: Path) -> tuple[dict, set]:
    from tests.interop.peers import parse_sslscan, sslscan_command

    report = work / f"sslscan-{listener.label}.xml"
    result = timed(lab, listener.label, in_private_resolv(
        lab, sslscan_command(f"{listener.ip}:{lab.smtp_port}", report)))
    return result, parse_sslscan(report, listener.label).all_suites()


def run_testssl(lab, listener, work: Path) -> tuple[dict, set]:
    from tests.interop.peers import parse_testssl, testssl_command

    report = work / f"testssl-{listener.label}.json"
    result = timed(lab, listener.label, in_private_resolv(
        lab, testssl_command(f"{listener.ip}:{lab.smtp_port}", report)),
        env={**os.environ, "TERM": "dumb"})
    return result, parse_testssl(report, listener.label).all_suites()


def run_sslyze(lab, listener, work: Path) -> tuple[dict, set]:
    from survey.proto.ciphers import by_iana_name

    report = work / f"sslyze-{listener.label}.json"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default="modern,legacy,restricted")
    parser.add_argument("--tools", default=",".join(["survey", *PEERS]))
    args = parser.parse_args()

    from survey.proto.ciphers import VERSIONS
    from tests.interop.expected import configured
    from tests.interop.lab import BY_LABEL, Lab

    listeners = [BY_LABEL[name] for name in args.listeners.split(",")]
    tools = args.tools.split(",")
    if "sslyze" in tools and not SSLYZE.exists():
        raise SystemExit(f"{SSLYZE} is missing: make bench installs it "
                         "(python -m venv .venv-peers && .venv-peers/bin/pip install sslyze)")
    lab = Lab.create()
    results: dict = {}
    targets: dict = {}
    try:
        lab.start()
        with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
            work = Path(tmp)
            batch = single = {}
            if "survey" in tools:
                c.log(f"survey on {', '.join(x.label for x in listeners)} (one scan)")
                batch = run_survey(lab, listeners, work, "all")
                fixed = survey_fixed_cost(lab, work, listeners[0].label)
                c.log(f"survey's fixed cost (an empty list): {fixed:.2f} s")
                for result, _ in batch.values():
                    result["fixed_s"] = fixed
                    result["wall_s_after_fixed"] = (
                        (result["run_wall_s"] - fixed) / result["servers_in_run"])
            for listener in listeners:
                truth = configured(listener).suite_set()
                per_tool = results[listener.label] = {}
                if "survey" in tools:
                    c.log(f"survey on {listener.label} alone")
                    single = run_survey(lab, [listener], work, listener.label)
                for tool in tools:
                    if tool == "survey":
                        result, found = batch[listener.label]
                        result["alone"] = single[listener.label][0]
                    else:
                        c.log(f"{tool} on {listener.label}")
                        result, found = PEERS[tool](lab, listener, work)
                    result["pairs_found"] = len(found)
                    result["missing"] = sorted(map(list, truth - found))
                    result["extra"] = sorted(map(list, found - truth))
                    result["equals_truth"] = found == truth
                    per_tool[tool] = result
                    c.log(f"  {result['wall_s']:.1f} s, {result['connections']} connections, "
                          f"{len(found)} pairs ({'=' if found == truth else '!='} truth)")
                survey = per_tool.get("survey")
                if survey is None:
                    continue
                budget = len(truth) + len(VERSIONS) + 2     # SSLv3 .. TLS 1.3 probed
                peers = {t: r for t, r in per_tool.items() if t != "survey"}
                t = {}
                if "sslscan" in peers:
                    t["wall_vs_sslscan"] = c.target(
                        survey["wall_s"] / peers["sslscan"]["wall_s"], "<=", 1.0)
                    # not a target: the same without the run's fixed cost (see survey_fixed_cost)
                    survey["wall_after_fixed_vs_sslscan"] = (
                        survey["wall_s_after_fixed"] / peers["sslscan"]["wall_s"])
                if "sslyze" in peers:
                    t["wall_vs_sslyze"] = c.target(
                        survey["wall_s"] / peers["sslyze"]["wall_s"], "<=", 0.3)
                if peers:
                    t["connections_vs_fewest_peer"] = c.target(
                        survey["connections"] / min(r["connections"] for r in peers.values()),
                        "<", 1.0)
                t["connections_vs_pairs_plus_versions_plus_2"] = c.target(
                    survey["connections"], "<=", budget)
                t["findings_equal_truth"] = c.target(int(survey["equals_truth"]), ">=", 1)
                for name, value in t.items():
                    targets[f"{listener.label}.{name}"] = value
    finally:
        lab.stop()
        lab.remove()
    c.emit("peers", settings={"listeners": [x.label for x in listeners], "tools": tools,
                              "server": "postfix (Debian), interop lab"},
           results=results, targets=targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
