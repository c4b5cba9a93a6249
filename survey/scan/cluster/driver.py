"""``survey scan --dask ADDRESS``: one scan run as phases of tasks on a Dask cluster.

Theory of operation
-------------------
The driver (the process the user started) cuts the input into domain shards
in ``<out>/_cluster/input/``, fixes the ``Plan``, and runs the phases of
scan/cluster/tasks.py one after another, each a set of independent Dask
tasks: DNS by shard, servers by address partition (in rounds, while MTA-STS
fetches move on to a policy host's next address), certificates by hash
bucket, then the rows of each shard. Only small summaries travel through the
scheduler; everything else is in files under ``--out``, which every worker
must therefore reach (a shared filesystem).

A task whose worker dies is run again by Dask on another worker; tasks
overwrite their own files, so nothing appears twice. After the whole cluster
stops, the same command with ``--resume`` skips every task whose marker
exists. Workers run one task at a time (a task is a whole trio event loop);
``--concurrency`` is the total in flight across workers, and the global
connection and DNS rates are divided among the workers likewise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from survey import __version__
from survey.interrupts import interrupted
from survey.scan.cluster import tasks
from survey.scan.cluster.stage import Plan, done_summary, stage_dir, write_pickle
from survey.scan.config import CONVERSATIONS_PER_PROCESS, ScanConfig
from survey.scan.run import ScanError, check_resume, scan_manifest, with_runs
from survey.scan.targets import estimate_count, read_targets
from survey.scan.toolkit import now
from survey.store import read_manifest, write_manifest
from survey.store.location import Location
from survey.store.lock import LOCK_NAME, exclusive
from survey.store.manifest import ManifestError

MIN_SHARD, MAX_SHARD = 50, 20_000    # domains per DNS/join task, the preferred range
MAX_SHARDS = 512                     # hand-over files grow as shards x partitions
TASKS_PER_WORKER = 4                 # threads of a local worker: tasks it runs at once


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address``, or of a local cluster for ``local:N``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ScanError("--dask needs dask.distributed: pip install 'survey[dask]'") from None
    if address.startswith("local"):
        _, _, count = address.partition(":")
        try:
            workers = int(count) if count else os.cpu_count() or 1
        except ValueError:
            raise ScanError(f"--dask {address!r}: write local:N with N workers") from None
        if workers < 1:
            raise ScanError("--dask local:N needs at least one worker")
        with LocalCluster(n_workers=workers, threads_per_worker=TASKS_PER_WORKER, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise ScanError(f"--dask {address}: cannot reach the scheduler: {exc}") from None
    with client:
        yield client


class DistributedScan:
    def __init__(self, config: ScanConfig, address: str, *, verbose: bool = False) -> None:
        config.check()
        self.config = config
        self.address = address
        self.verbose = verbose
        self.states: dict[str, dict[str, float]] = {}
        self.previous: dict | None = None     # the manifest of the run this one resumes
        self.changed: list[str] = []          # settings a --force resume changed
        self.plan: Plan | None = None          # once fixed; a manifest written on failure counts it

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    # -- the output directory ----------------------------------------------------------------

    def _prepare(self) -> None:
        out = self.config.out
        if str(out).startswith("memory://"):
            raise ScanError("--out memory://... lives in one process; workers need a shared "
                            "filesystem or an object store")
        if (out / "manifest.json").exists():
            if not self.config.resume:
                raise ScanError(f"{out} already holds a scan; use --resume to continue it, "
                                "or choose a new --out")
            try:
                previous = read_manifest(out)
            except ManifestError as exc:
                raise ScanError(str(exc)) from None
            if not previous.get("cluster"):
                raise ScanError(f"{out} holds a single-process scan; continue it with "
                                "--resume and without --dask")
            self.changed = check_resume(previous, self.config, scan_manifest(
                self.config, "", "partial", now(), None, {}))
            self.previous = previous
            self.scan_id = previous["scan_id"]
            self.started = now()
            return
        if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
            raise ScanError(f"{out} is not empty and holds no scan; choose a new --out")
        self.scan_id = now().strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)
        self.started = now()

    def _plan(self, slots: int, workers: int) -> Plan:
        """Cut the input into shards (once per scan) and fix the partitioning.

        As many shards as task slots (worker threads) while shards stay within
        MAX_SHARD domains: one wave per phase, so the slow tail of one task
        overlaps the others' instead of adding up. Beyond MAX_SHARDS shards
        they grow instead, so the shards x partitions hand-over files of a
        150-million-name zone stay at most 512 x 512 per round.
        """
        out, config = self.config.out, self.config
        plan = Plan.load(out)
        if plan is not None:
            return plan
        estimate = estimate_count(config.input, shard=config.shard, limit=config.limit)
        size = max(MIN_SHARD, min(MAX_SHARD, math.ceil(estimate / slots)),
                   math.ceil(estimate / MAX_SHARDS))
        shards, chunk = 0, []
        for target in read_targets(config.input, shard=config.shard, limit=config.limit):
            chunk.append(target)
            if len(chunk) == size:
                write_pickle(tasks.input_path(out, shards), chunk)
                shards, chunk = shards + 1, []
        if chunk or not shards:
            write_pickle(tasks.input_path(out, shards), chunk)
            shards += 1
        plan = Plan(shards=shards, partitions=min(MAX_SHARDS, max(shards, slots)),
                    share=slots, concurrency=max(1, config.concurrency // slots),
                    conversations=max(1, (config.conversations
                                          or CONVERSATIONS_PER_PROCESS * workers) // slots))
        plan.save(out)
        return plan

    # -- phases ----------------------------------------------------------------------------

    def _phase(self, client, phase: str, jobs: list[tuple[str, Callable, tuple]]) -> list[dict]:
        """Run the jobs whose marker is missing; the summaries of all, in job order."""
        from distributed import as_completed

        out = self.config.out
        todo = [(name, fn, args) for name, fn, args in jobs if done_summary(out, name) is None]
        state = self.states.setdefault(phase, {"tasks": len(jobs), "done": len(jobs) - len(todo)})
        started = time.monotonic()
        futures = {client.submit(fn, *args, key=f"{self.scan_id}-{name}", pure=False): name
                   for name, fn, args in todo}
        for future in as_completed(futures):
            try:
                future.result()
            except Exception as exc:   # a task's own error: name it, stop the scan
                client.cancel(list(futures))
                raise ScanError(f"task {futures[future]} failed: {type(exc).__name__}: "
                                f"{exc}") from exc
            state["done"] += 1
            self.say(f"  {phase}: {state['done']}/{state['tasks']} tasks")
        state["seconds"] = round(state.get("seconds", 0) + time.monotonic() - started, 3)
        return [done_summary(out, name) or {} for name, _, _ in jobs]

    def _manifest(self, state: str, plan: Plan | None, cluster: dict,
                  ended: datetime | None = None, run_state: str | None = None) -> dict:
        manifest = scan_manifest(self.config, self.scan_id, state, self.started, ended,
                                 self._stats() if plan else {})
        manifest["cluster"] = {**cluster, "plan": plan.__dict__ if plan else None,
                               "phases": self.states}
        return with_runs(manifest, self.previous, run_state or state, self.changed)

    def _stats(self) -> dict:
        totals: dict[str, int] = {}
        for summary in self._summaries():
            for key, value in summary.items():
                totals[key] = totals.get(key, 0) + value
        totals.pop("domains", None)
        totals.pop("pending_fetches", None)
        return totals

    def _summaries(self) -> Iterator[dict]:
        out = self.config.out
        markers: list[Location] = list((stage_dir(out) / "done").glob("*.json"))
        for path in sorted(markers, key=str):
            if path.name.startswith(("dns-", "r")):
                yield done_summary(out, path.stem) or {}

    def run(self) -> dict:
        with exclusive(self.config.out, "survey scan --dask"):
            return self._run()

    def _run(self) -> dict:
        out = self.config.out
        self._prepare()
        out.mkdir(parents=True, exist_ok=True)
        with dask_client(self.address) as client:
            pids = client.run(os.getpid)
            if not pids:
                raise ScanError(f"--dask {self.address}: the cluster has no workers")
            versions = client.run(tasks.survey_version)
            if set(versions.values()) != {__version__}:
                raise ScanError(f"the workers run other versions of survey than this "
                                f"{__version__}: {sorted(set(versions.values()))}")
            slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
            cluster = {"scheduler": self.address if not self.address.startswith("local")
                       else client.scheduler.address,
                       "local": self.address.startswith("local"),
                       "workers": {address: {"pid": pid} for address, pid in pids.items()}}
            try:
                manifest = self._phases(client, cluster, slots, len(pids))
            except BaseException as exc:
                # say how this run ended, as a single-process scan does
                ended = "interrupted" if interrupted(exc) else "failed"
                with contextlib.suppress(Exception):
                    write_manifest(out, self._manifest("partial", self.plan, cluster, now(),
                                                       ended))
                raise
        write_manifest(out, manifest)
        return manifest

    def _phases(self, client: Any, cluster: dict, slots: int, workers: int) -> dict:
        """Every phase in turn; returns the final manifest (not yet written)."""
        config, out = self.config, self.config.out
        write_manifest(out, self._manifest("partial", None, cluster))
        self.plan = plan = self._plan(slots, workers)
        self.say(f"survey scan on Dask: {workers} workers, {plan.shards} domain shards, "
                 f"{plan.partitions} address partitions")
        write_manifest(out, self._manifest("partial", plan, cluster))
        self._phase(client, "dns", [(f"dns-s{s:05d}", tasks.dns_shard, (config, plan, s))
                                    for s in range(plan.shards)])
        rounds = 0
        while True:
            summaries = self._phase(
                client, f"servers-r{rounds}",
                [(f"r{rounds}-p{p:05d}", tasks.servers, (config, plan, rounds, p,
                                                         plan.shards))
                 for p in range(plan.partitions)])
            rounds += 1
            write_manifest(out, self._manifest("partial", plan, cluster))
            if not sum(s["pending_fetches"] for s in summaries):
                break
        self._phase(client, "certs", [(f"certs-c{b:05d}", tasks.certs, (config, plan, b))
                                      for b in range(plan.partitions)])
        self._phase(client, "join", [(f"join-s{s:05d}", tasks.join,
                                      (config, plan, s, rounds))
                                     for s in range(plan.shards)])
        cluster["workers_at_end"] = {address: {"pid": pid} for address, pid
                                     in client.run(os.getpid).items()}
        return self._manifest("complete", plan, cluster, now())


def run_distributed(config: ScanConfig, address: str, *, verbose: bool = False) -> dict:
    """Run a scan on a Dask cluster to completion; returns the final manifest."""
    return DistributedScan(config, address, verbose=verbose).run()
