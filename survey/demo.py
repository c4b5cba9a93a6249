"""A first run on a fresh machine: build a simulated mail Internet, scan it, score it, report.

Everything stays on loopback: a testbed world of a few thousand domains under
``.test`` is built under data/worlds/, served by a child process (DNS, SMTP,
HTTPS on 127.0.0.0/8), scanned into data/scans/, scored against the world's
ground truth, and rendered as an HTML report when the report module is
available. The world process is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from survey.interrupts import INTERRUPTED, interrupted
from survey.scan.config import ScanConfig, apply_world, load_world
from survey.scan.progress import Progress
from survey.scan.run import run_scan
from survey.testbed.score import score, summary

WORLD_START_TIMEOUT = 120.0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domains", type=int, default=2000,
                   help="world size (default 2000; a multiple of 1000 for 'published')")
    p.add_argument("--seed", type=int, default=1, help="world seed (default 1)")
    p.add_argument("--profile", default="published",
                   help="world profile: 'published' (default: 10 published figures hold "
                        "exactly; the report marks which are calibrated), "
                        "'default' (a hostile mix: slow and rate-limiting servers, broken "
                        "certificates and policies), or a JSON profile's path")
    p.add_argument("--data", type=Path, default=Path("data"),
                   help="where worlds, scans and the report go (default ./data)")


def _start_world(world_dir: Path) -> subprocess.Popen:
    (world_dir / "world.json").unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "survey.cli", "world", "--serve",
                                "--any-ports", "--out", str(world_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WORLD_START_TIMEOUT
    while not (world_dir / "world.json").exists():
        if process.poll() is not None:
            _, err = process.communicate()
            raise RuntimeError("the world did not start: "
                               + err.decode(errors="replace")[-500:])
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the world did not start within {WORLD_START_TIMEOUT:g} s")
        time.sleep(0.1)
    return process


def _stop_world(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def run(args: argparse.Namespace) -> int:
    try:
        return _demo(args)
    except subprocess.CalledProcessError:
        print("survey demo: building the world failed (the reason is above)", file=sys.stderr)
    except (RuntimeError, OSError) as exc:
        print(f"survey demo: {exc}", file=sys.stderr)
    except BaseException as exc:        # trio wraps a Ctrl-C in exception groups
        if not interrupted(exc):
            raise
        print("\nsurvey demo: interrupted; the world's servers are stopped", file=sys.stderr)
        return INTERRUPTED
    return 2


def _demo(args: argparse.Namespace) -> int:
    data = args.data
    world_dir = data / "worlds" / f"demo-{Path(args.profile).stem}-{args.domains}-{args.seed}"
    scan_dir = data / "scans" / world_dir.name
    started = time.monotonic()
    if not (world_dir / "spec.json").exists():
        print(f"building a world of {args.domains} domains in {world_dir} ...")
        subprocess.run([sys.executable, "-m", "survey.cli", "world", "--domains",
                        str(args.domains), "--seed", str(args.seed), "--profile", args.profile,
                        "--scale", "fast", "--out", str(world_dir)], check=True)
    print("starting the world's DNS, SMTP and HTTPS servers on loopback ...")
    world = _start_world(world_dir)
    try:
        if scan_dir.exists():
            shutil.rmtree(scan_dir)
        config = ScanConfig(input=Path(load_world(world_dir)["domain_list"]), out=scan_dir)
        apply_world(config, load_world(world_dir))
        print(f"scanning into {scan_dir} ...")
        trio.run(run_scan, config, Progress())
    finally:
        _stop_world(world)
    result = score(scan_dir, world_dir)
    print(summary(result))
    latest = _point_latest(scan_dir)
    print("rendering the report (runs every notebook) ...")
    report = _report(scan_dir, data / "report")
    minutes = (time.monotonic() - started) / 60
    print(f"\ndone in {minutes:.1f} min"
          + ("" if result.ok else " (the scan disagrees with the ground truth: see above)")
          + f".\n  world:   {world_dir}\n  dataset: {scan_dir}"
          + (f"  (also {latest})" if latest else "")
          + "\n  schema:  " + ("docs/schema.md" if Path("docs/schema.md").exists()
                               else "`survey schema` prints it")
          + (f"\n  report:  {_relative(report)}" if report else "")
          + "\n  explore: .venv/bin/jupyter lab notebooks/   (make demo installs JupyterLab;"
          + f"\n           a notebook's first cell names the scan it reads: {latest or scan_dir})")
    return 0 if result.ok else 1


def _point_latest(scan_dir: Path) -> Path | None:
    """data/scans/latest -> this scan: the notebooks' default ``scan`` parameter.

    Only a missing path or an existing symlink is replaced: a real directory
    called ``latest`` is the user's, left alone.
    """
    latest = scan_dir.parent / "latest"
    if latest.exists() and not latest.is_symlink():
        return None
    latest.unlink(missing_ok=True)
    latest.symlink_to(scan_dir.name, target_is_directory=True)
    return latest


def _relative(path: Path) -> Path:
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return Path(path)


def _report(scan_dir: Path, out: Path) -> Path | None:
    """Render the HTML report when the report module is installed (issue 8)."""
    try:
        report = importlib.import_module("survey.report")
    except ImportError:
        return None
    return report.render(scan_dir, out)
