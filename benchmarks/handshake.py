"""Handshake cost against its ceiling (issue 10, item 2).

One real Postfix (the interop lab's, tests/interop/lab.py) serves the lab's
``modern`` listener twice with the same certificate and TLS settings: as
STARTTLS on the lab's SMTP port, and TLS-wrapped (``smtpd_tls_wrappermode``)
on a second port, because ``openssl s_time`` cannot speak STARTTLS (docs/design.md
"Known platform pitfalls").

* the ceiling: ``openssl s_time -new`` against the wrapped port for
  ``--seconds``; its own CPU (``os.wait4``) over the handshakes it counted;
* the scanner: ``survey.net.smtp.probe_starttls`` — the starttls profile's
  whole per-server work (banner, EHLO, STARTTLS, full handshake, chain, EHLO
  again, QUIT) — ``--probes`` times, one at a time like s_time, in this
  process; its CPU (``time.process_time``) over the probes.

Both run alternately for ``--rounds`` rounds; medians are compared. Target:
scanner CPU per handshake at most 3x s_time's.

    python benchmarks/handshake.py [--probes 300] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c


def start_postfix():
    """The interop lab's Postfix alone, plus a wrapper-mode copy of the modern listener."""
    from tests.interop import lab as labmod

    modern = labmod.BY_LABEL["modern"]

    class BenchLab(labmod.Lab):
        smtps_port: int = 0

        def postfix_master_cf(self) -> str:
            text = super().postfix_master_cf()
            lines = text.splitlines()
            head = f"{modern.ip}:{self.smtp_port} inet"
            i = next(n for n, line in enumerate(lines) if line.startswith(head))
            j = i + 1
            while j < len(lines) and lines[j].startswith("  -o "):
                j += 1
            self.smtps_port = labmod.free_port([modern.ip])
            copy = [lines[i].replace(f":{self.smtp_port} ", f":{self.smtps_port} "),
                    *lines[i + 1:j], "  -o smtpd_tls_wrappermode=yes",
                    "  -o syslog_name=postfix/smtps"]
            return "\n".join(lines + copy) + "\n"

    lab = BenchLab.create()
    try:
        lab.start_postfix()
        c.wait_for_port(modern.ip, lab.smtps_port)
    except BaseException:
        lab.stop()
        lab.remove()
        raise
    return lab, modern


def s_time(ip: str, port: int, seconds: int) -> dict:
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    result = c.run_measured([openssl, "s_time", "-connect", f"{ip}:{port}", "-new",
                             "-time", str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    match = re.search(r"(\d+) connections in ([\d.]+)s", result.pop("stdout") or "")
    handshakes = int(match.group(1)) if match else 0
    if not handshakes:
        raise RuntimeError("openssl s_time made no handshake")
    return {**result, "handshakes": handshakes,
            "cpu_us_per_handshake": 1e6 * result["cpu_s"] / handshakes}


def scanner(ip: str, port: int, sni: str, probes: int) -> dict:
    import trio

    from survey.net.guard import DestinationPolicy
    from survey.net.smtp import Timeouts, probe_starttls

    policy = DestinationPolicy("testbed")
    statuses: dict[str, int] = {}
    versions: dict[str, int] = {}

    async def main() -> None:
        for _ in range(probes):
            probe = await probe_starttls(ip, port, policy=policy, ehlo_name="bench.survey.test",
                                         sni=sni, timeouts=Timeouts())
            statuses[probe.status] = statuses.get(probe.status, 0) + 1
            versions[str(probe.tls_version)] = versions.get(str(probe.tls_version), 0) + 1

    cpu, wall = time.process_time(), time.perf_counter()
    trio.run(main)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if statuses.get("ok") != probes:
        raise RuntimeError(f"the scanner's probes did not all succeed: {statuses}")
    return {"wall_s": wall, "cpu_s": cpu, "handshakes": probes, "tls_versions": versions,
            "cpu_us_per_handshake": 1e6 * cpu / probes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    lab, modern = start_postfix()
    try:
        c.log(f"postfix: STARTTLS {modern.ip}:{lab.smtp_port}, "
              f"wrapped {modern.ip}:{lab.smtps_port}")
        scanner(modern.ip, lab.smtp_port, modern.host, 20)        # warm-up
        ceiling_runs, scan_runs = [], []
        for i in range(args.rounds):
            ceiling_runs.append(s_time(modern.ip, lab.smtps_port, args.seconds))
            scan_runs.append(scanner(modern.ip, lab.smtp_port, modern.host, args.probes))
            c.log(f"round {i + 1}: s_time {ceiling_runs[-1]['cpu_us_per_handshake']:.0f} us, "
                  f"scanner {scan_runs[-1]['cpu_us_per_handshake']:.0f} us CPU per handshake")
    finally:
        lab.stop()
        lab.remove()
    ceiling = c.median([r["cpu_us_per_handshake"] for r in ceiling_runs])
    ours = c.median([r["cpu_us_per_handshake"] for r in scan_runs])
    c.emit("handshake", settings={"server": "postfix (Debian), interop lab 'modern' listener",
                                  "probes_per_round": args.probes,
                                  "s_time_seconds": args.seconds, "rounds": args.rounds},
           s_time={"cpu_us_per_handshake_median": ceiling, "runs": ceiling_runs},
           scanner={"cpu_us_per_handshake_median": ours, "runs": scan_runs},
           targets={"scanner_cpu_over_s_time": c.target(ours / ceiling, "<=", 3.0)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
