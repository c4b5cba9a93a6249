"""One writer at a time: an exclusive lock on a scan (or world) directory.

Theory of operation
-------------------
Two scans writing one ``--out`` would each commit their own batches and
leave every domain twice under a manifest that says "complete". So a writer
holds ``DIR/.lock`` for its whole life:

* Locally (a path, or a ``file://`` URL) it is an OS lock (``flock``) on that
  file. The kernel drops it when the process ends however it ends (SIGKILL
  included), so a crashed scan never leaves a stale lock behind; the file
  itself stays and only names the last holder.
* On an object store (s3://, gs://, ...) there is no such lock. The writer
  puts a *lease* object ``DIR/.lock`` naming itself (host, pid, a random
  token) with a heartbeat time it renews every ``HEARTBEAT`` seconds from a
  thread. Another writer takes it over only when the heartbeat is older than
  ``STALE`` seconds (the holder died). Object stores have no compare-and-swap,
  so two writers starting within the same instant could both believe they
  won; each re-reads the lease after writing it and gives up unless its own
  token is there, which narrows that window to the store's own
  read-after-write delay.

A second writer gets ``LockError`` with one line naming the holder. The
name starts with a dot, so dataset readers and the scan's own "empty
directory" check ignore it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from survey.store.location import RemotePath, location

LOCK_NAME = ".lock"
HEARTBEAT = 15.0      # seconds between lease renewals (object stores)
STALE = 120.0         # a lease not renewed for this long belongs to a dead writer


class LockError(RuntimeError):
    """Another writer holds the directory (the message names it)."""


def holder_identity(what: str) -> dict[str, Any]:
    return {"what": what, "host": socket.gethostname(), "pid": os.getpid(),
            "token": secrets.token_hex(8), "since": time.time(),
            "command": " ".join(sys.argv[:1] + [a for a in sys.argv[1:]])[:500]}


def describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    since = holder.get("since")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
            if isinstance(since, (int, float)) else "")
    return (f"{holder.get('what', 'a writer')} pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}{when}")


@contextmanager
def exclusive(directory: Path | str | RemotePath, what: str = "scan") -> Iterator[dict[str, Any]]:
    """Hold ``directory``'s lock for the ``with`` block; LockError if someone else does."""
    directory = location(directory)
    if isinstance(directory, RemotePath) and not directory.is_local:
        with _lease(directory, what) as me:
            yield me
        return
    local = Path(directory.path) if isinstance(directory, RemotePath) else Path(directory)
    with _flock(local, what) as me:
        yield me


@contextmanager
def _flock(directory: Path, what: str) -> Iterator[dict[str, Any]]:
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(f"{directory} is in use by {describe(_read_local(path))}; "
                            "wait for it to end or choose another directory") from None
        me = holder_identity(what)
        data = json.dumps(me).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        yield me
    finally:
        os.close(fd)       # releases the lock; the file stays (harmless, names the last holder)


def _read_local(path: Path) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return found
    except (OSError, ValueError):
        return None


def _read_lease(path: RemotePath) -> dict[str, Any] | None:
    try:
        lease: dict[str, Any] = json.loads(path.read_bytes())
        return lease
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}     # unreadable: treat as held by someone unknown until it goes stale


@contextmanager
def _lease(directory: RemotePath, what: str, *, heartbeat: float = HEARTBEAT,
           stale: float = STALE) -> Iterator[dict[str, Any]]:
    path = directory / LOCK_NAME
    held = _read_lease(path)
    if held is not None and time.time() - float(held.get("heartbeat", 0) or 0) < stale:
        raise LockError(f"{directory} is in use by {describe(held)} (lease renewed "
                        f"{time.time() - float(held.get('heartbeat', 0)):.0f} s ago); "
                        "wait for it to end or choose another directory")
    me = holder_identity(what)

    def put() -> None:
        path.fs.pipe_file(path.path, json.dumps({**me, "heartbeat": time.time()}).encode())

    put()
    time.sleep(0.2)
    mine = _read_lease(path)
    if not mine or mine.get("token") != me["token"]:
        raise LockError(f"{directory} was taken by {describe(mine)} at the same moment")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(heartbeat):
            try:
                current = _read_lease(path)
                if current and current.get("token") != me["token"]:
                    return          # taken over (we were presumed dead): stop renewing
                put()
            except Exception:       # noqa: BLE001, S112 - a failed renewal retries next beat
                continue

    thread = threading.Thread(target=renew, name="survey-lease", daemon=True)
    thread.start()
    try:
        yield me
    finally:
        stop.set()
        thread.join(timeout=5)
        try:
            current = _read_lease(path)
            if current and current.get("token") == me["token"]:
                path.unlink(missing_ok=True)
        except Exception:           # noqa: BLE001, S110 - it will go stale
            pass
