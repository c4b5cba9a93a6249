"""The layering rules as tests.

The sans-IO rule: nothing under survey/proto imports I/O modules. Checked on
the source (every import statement, at any depth) and at run time (importing
every proto module in a fresh interpreter pulls in none of them).

The bottom layer: survey/vocabulary.py imports no survey module, and every
layer (proto included) may import it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SURVEY = Path(__file__).resolve().parent.parent / "survey"
PROTO = SURVEY / "proto"
BOTTOM = SURVEY / "vocabulary.py"
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


def survey_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    relative = any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    return {n for n in imported_names(path) if n == "survey" or n.startswith("survey.")} | (
        {"<relative import>"} if relative else set())


def test_the_vocabulary_is_the_bottom_layer():
    assert BOTTOM.exists()
    assert survey_imports(BOTTOM) == set()
    code = ("import sys, survey.vocabulary\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('survey')))\n")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert sorted(loaded.stdout.split()) == ["survey", "survey.vocabulary"]


def test_every_layer_may_import_the_vocabulary():
    assert not is_forbidden("survey.vocabulary")
    users = {p.relative_to(SURVEY).parts[0] for p in SURVEY.rglob("*.py")
             if "survey.vocabulary" in imported_names(p)}
    assert {"store"} <= users      # the schema takes its vocabularies from it


def test_the_bottom_layer_check_can_fail(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from survey.store import schema\nfrom . import x\n", encoding="utf-8")
    assert survey_imports(module) == {"survey.store", "<relative import>"}
