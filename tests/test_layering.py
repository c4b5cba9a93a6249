"""The sans-IO rule: nothing under survey/proto imports I/O modules.

Checked on the source (every import statement, at any depth) and at run time
(importing every proto module in a fresh interpreter pulls in none of them).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROTO = Path(__file__).resolve().parent.parent / "survey" / "proto"
FORBIDDEN = {"trio", "socket", "ssl", "asyncio", "selectors", "dns", "urllib.request", "http.client", "http.server",
             "subprocess", "survey.net", "survey.scan"}


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_proto_sources_import_no_io():
    files = sorted(PROTO.rglob("*.py"))
    assert files, "survey/proto has no modules"
    offenders = {
        str(p.relative_to(PROTO)): sorted(n for n in imported_names(p) if is_forbidden(n))
        for p in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_proto_loads_no_io_module():
    modules = [f"survey.proto.{p.stem}" for p in sorted(PROTO.glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bad = [m for m in loaded.stdout.split() if m.split(".")[0] in {"trio", "ssl", "_ssl", "socket"}]
    assert bad == []


def test_the_check_can_fail():
    assert is_forbidden("trio") and is_forbidden("ssl") and is_forbidden("survey.net.dns")
    assert not is_forbidden("sslib") and not is_forbidden("dataclasses")
