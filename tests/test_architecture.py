"""The layering the project promises, checked on the source: the core imports no Qt and
nothing above it; the window does not import the CLI; no import cycles, including imports
hidden inside functions. And the import-order crash of issue 14: whatever core module a
program imports first, loading a model afterwards works."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kobold_gui"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (top level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {m for m in _imports(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def test_the_core_imports_no_qt_and_nothing_above_it() -> None:
    for name, path in MODULES.items():
        if not name.startswith("kobold_gui.core"):
            continue
        bad = [
            m
            for m in _imports(path)
            if m.startswith(("PySide6", "pyqtgraph", "superqt"))
            or m.startswith(("kobold_gui.ui", "kobold_gui.dev", "kobold_gui.cli"))
        ]
        assert not bad, f"{name} imports {bad}"


def test_the_window_does_not_import_the_cli() -> None:
    for name, path in MODULES.items():
        if name.startswith("kobold_gui.ui"):
            bad = [m for m in _imports(path) if m.startswith("kobold_gui.cli")]
            assert not bad, f"{name} imports {bad}"


def test_no_import_cycles() -> None:
    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(GRAPH[node]):
            # A package's __init__ importing its own submodules is not a cycle.
            if not dep.startswith(node + "."):
                visit(dep, [*stack, node], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(GRAPH):
        visit(name, [], done)


def test_the_architecture_check_sees_a_cycle() -> None:
    """The cycle check itself: a graph with a hidden cycle is refused."""
    GRAPH["kobold_gui.core.options"].add("kobold_gui.core.launch")
    try:
        with pytest.raises(AssertionError, match="import cycle"):
            test_no_import_cycles()
    finally:
        GRAPH["kobold_gui.core.options"].discard("kobold_gui.core.launch")


CORE = sorted(n for n in MODULES if n.startswith("kobold_gui.core."))

LOAD_AFTER = """
import importlib, sys
importlib.import_module(sys.argv[1])
from pathlib import Path
from kobold_gui.cli.common import open_inventory
from kobold_gui.core.backend import backend_info
from kobold_gui.core.hardware_probe import probe_hardware
from kobold_gui.core.chat_format import Message
from kobold_gui.core.engine import Engine
from kobold_gui.core.engine_types import SamplingParams
from kobold_gui.core.gguf_info import read_gguf
from kobold_gui.core.launch import resolve_launch
from kobold_gui.core.options import LaunchConfig

path = Path(sys.argv[2])
info = read_gguf(path)
backend = backend_info()
report = probe_hardware(open_inventory().snapshot()) if backend.gpu_offload else None
launch = resolve_launch(LaunchConfig(contextsize=512), path, info, backend.gpu_offload, report)
engine = Engine()
engine.load(launch, info=info)
result = engine.chat([Message("user", "Hi")], SamplingParams(max_tokens=2), lambda _t: None)
assert result.generated_tokens > 0
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("first", CORE)
def test_any_core_module_imported_first_then_a_load_works(first: str, tiny_model: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AFTER, first, str(tiny_model)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
