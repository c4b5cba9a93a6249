"""``manifest.json``: the provenance of one scan, written atomically.

The scanner decides what goes in (DESIGN.md "Manifest"); this module only
guarantees that the file on disk is always a whole JSON document and that a
missing or corrupt manifest is reported in one clear sentence.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """The scan directory has no readable manifest."""


def write_manifest(scan_dir: Path | str, manifest: dict[str, Any]) -> Path:
    scan_dir = Path(scan_dir)
    scan_dir.mkdir(parents=True, exist_ok=True)
    document = {"manifest_version": MANIFEST_VERSION, **manifest}
    final = scan_dir / MANIFEST_NAME
    temporary = scan_dir / f".{MANIFEST_NAME}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def read_manifest(scan_dir: Path | str) -> dict[str, Any]:
    path = Path(scan_dir) / MANIFEST_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (is this a scan directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{path}: the manifest is not a JSON object")
    return document
