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

from bench.import_order import LOAD_AFTER

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
    GRAPH["kobold_gui.core.launch.options"].add("kobold_gui.core.launch.resolve")
    try:
        with pytest.raises(AssertionError, match="import cycle"):
            test_no_import_cycles()
    finally:
        GRAPH["kobold_gui.core.launch.options"].discard("kobold_gui.core.launch.resolve")


CORE = sorted(n for n in MODULES if n.startswith("kobold_gui.core."))


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


def test_llama_cpps_library_is_loaded_before_numpy() -> None:
    """With the CUDA build, numpy loaded first crashes the model load (native_first.py)."""
    code = (
        "import sys, kobold_gui.core.models.gguf_info\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('numpy' in sys.modules, 'libllama' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True"], out.stderr
    order = (
        "import sys, kobold_gui\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('numpy' in sys.modules, 'libllama' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", order], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"], out.stderr
