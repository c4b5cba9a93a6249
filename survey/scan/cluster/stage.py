"""The hand-over files between the phases of a distributed scan, and who owns what.

Theory of operation
-------------------
Tasks never talk to each other; each reads the files earlier phases left in
``<out>/_cluster/`` (pyarrow and the reader ignore names starting with "_")
and writes its own, every file under a name fixed by the task's identity and
written atomically (temporary name, fsync, rename). So a task that dies
halfway and runs again elsewhere simply overwrites what it wrote before: no
duplicates, whatever the point of death. A task writes its ``done`` marker
last; a marker means every file of that task is whole.

``Plan`` fixes the partitioning once per scan (and keeps it on resume):
domains are cut into ``shards`` in input order; server addresses and
certificate hashes into ``partitions`` by a stable hash, so every address
belongs to exactly one task at a time -- which is what keeps the per-IP caps
of politeness true across machines.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass
from typing import Any

from survey.store.location import Location, location, write_atomic

STAGE = "_cluster"
PLAN_NAME = "plan.json"


def stable_hash(text: str) -> int:
    """The same number on every machine and run (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Plan:
    shards: int           # domain shards (DNS and join phases)
    partitions: int       # address partitions (server phase) and certificate buckets
    share: int            # processes scanning at once: global rates are divided by it
    concurrency: int      # domains or addresses in flight within one task
    conversations: int | None = None   # connections past their greeting at once within
                                       # one task (None: a plan older than the setting)

    def partition(self, ip: str) -> int:
        return stable_hash(ip) % self.partitions

    def bucket(self, sha256: str) -> int:
        return int(sha256[:15], 16) % self.partitions

    def save(self, out: Location) -> None:
        write_json(stage_dir(out) / PLAN_NAME, asdict(self))

    @classmethod
    def load(cls, out: Location) -> Plan | None:
        path = stage_dir(out) / PLAN_NAME
        return cls(**json.loads(path.read_text())) if path.exists() else None


def stage_dir(out: Location) -> Location:
    return location(out) / STAGE


def write_pickle(path: Location, value: Any) -> None:
    write_atomic(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def read_pickle(path: Location) -> Any:
    return pickle.loads(path.read_bytes())


def read_all(directory: Location) -> list[Any]:
    """Every whole hand-over file in a directory, in name order (none when it is absent)."""
    if not directory.is_dir():
        return []
    files: list[Location] = list(directory.glob("*.pkl"))
    return [read_pickle(p) for p in sorted(files, key=lambda p: p.name)
            if not p.name.startswith(".")]


def write_json(path: Location, value: Any) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True, default=str).encode())


def marker(out: Location, task: str) -> Location:
    return stage_dir(out) / "done" / f"{task}.json"


def mark_done(out: Location, task: str, summary: dict[str, Any]) -> None:
    write_json(marker(out, task), summary)


def done_summary(out: Location, task: str) -> dict[str, Any] | None:
    path = marker(out, task)
    return json.loads(path.read_text()) if path.exists() else None
