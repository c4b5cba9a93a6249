"""``manifest.json``: the provenance of one scan, written atomically.

The scanner decides what goes in (docs/design.md "The dataset contract"); this module only
guarantees that the file on disk is always a whole JSON document and that a
missing or corrupt manifest is reported in one clear sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from survey.store.location import RemotePath, location, write_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """The scan directory has no readable manifest."""


def write_manifest(scan_dir: Path | str | RemotePath,
                   manifest: dict[str, Any]) -> Path | RemotePath:
    scan_dir = location(scan_dir)
    scan_dir.mkdir(parents=True, exist_ok=True)
    document = {"manifest_version": MANIFEST_VERSION, **manifest}
    final = scan_dir / MANIFEST_NAME
    text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(final, text.encode("utf-8"))
    return final


def read_manifest(scan_dir: Path | str | RemotePath) -> dict[str, Any]:
    path = location(scan_dir) / MANIFEST_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (is this a scan directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{path}: the manifest is not a JSON object")
    return document
