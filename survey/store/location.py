"""Where a scan directory lives: a local path, or an fsspec URL (s3://, gs://, abfs://, ...).

Theory of operation
-------------------
The store and the scanner use a small part of the ``pathlib.Path`` API
(``/``, ``exists``, ``is_dir``, ``mkdir``, ``iterdir``, ``glob``, ``name``,
``read_bytes``, ``unlink``). ``RemotePath`` offers that part over any fsspec
filesystem, so one code path writes both. ``location("s3://b/scan")`` gives a
``RemotePath``; a plain path gives a ``Path``.

The one rule that differs is the atomic write (``write_atomic``). Locally: a
temporary name, fsync, rename, fsync of the directory. In an object store a
single PUT is atomic already -- readers see the whole object or none -- and
rename is a copy, so the object is written once under its final name. A
``file://`` URL is local and keeps the local rule.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def location(where: str | os.PathLike | RemotePath) -> Path | RemotePath:
    """A Path for local names, a RemotePath for fsspec URLs."""
    if isinstance(where, RemotePath):
        return where
    if isinstance(where, str) and "://" in where:
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(where)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        return RemotePath(fs, path.rstrip("/"))
    return Path(where)


def location_arg(where: str) -> Path | RemotePath:
    """``location`` for argparse: a URL whose filesystem is missing names its package."""
    import argparse

    try:
        return location(where)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class RemotePath:
    """A path on an fsspec filesystem with the pathlib calls the store uses."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(self.fs, posixpath.join(self.path, name))

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(other) == str(self)

    def __lt__(self, other: RemotePath) -> bool:
        return str(self) < str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self):        # workers get the filesystem's own pickle (its options)
        return (RemotePath, (self.fs, self.path))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name[1:] else self.name

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.fs, posixpath.dirname(self.path))

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def iterdir(self) -> Iterator[RemotePath]:
        if not self.fs.isdir(self.path):
            return iter(())
        names = self.fs.ls(self.path, detail=False)
        return iter([RemotePath(self.fs, n.rstrip("/")) for n in sorted(names)
                     if n.rstrip("/") != self.path])

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """Names in this directory matching ``pattern`` (the directory's own name is taken
        literally, as pathlib does: a scan at ``s3://b/x[1]`` is no pattern)."""
        return iter([p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)])

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def arrow(self) -> tuple[Any, str]:
        """(a pyarrow filesystem, this path on it), for pyarrow.dataset and parquet."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return PyFileSystem(FSSpecHandler(self.fs)), self.path


Location = Path | RemotePath


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def write_atomic(path: Location, data: bytes) -> None:
    """Write ``data`` so that readers see the whole file or nothing (module docstring)."""
    if isinstance(path, RemotePath) and not path.is_local:
        path.fs.pipe_file(path.path, data)
        return
    local = Path(path.path) if isinstance(path, RemotePath) else Path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    temporary = local.parent / f".{local.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, local)
    finally:
        temporary.unlink(missing_ok=True)
    fd = os.open(local.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
