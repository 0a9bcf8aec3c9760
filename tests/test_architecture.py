"""The layering and the sizes the project promises, checked on the source: the core imports no
Qt and nothing above it; the window does not import the CLI; the product imports no test fake
or developer tool; no import cycles, including imports hidden inside functions; no module over
400 lines, no function over 60, no class over 25 methods. Each rule has a planted violation
that it must catch. And the import-order crash of issue 14: whatever core module a program
imports first, loading a model afterwards works."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bench.import_order import LOAD_AFTER

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kobold_gui"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CLASS_METHODS = 25
QT = ("PySide6", "pyqtgraph", "superqt", "shiboken6")
# What the shipped product never imports: the tests (and their fakes) and the developer tools.
NOT_PRODUCT = ("tests", "kobold_gui.dev")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str) -> set[str]:
    """Every module imported anywhere in the source (top level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


SOURCES = {_module_name(p): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}
IMPORTS = {name: _imports(source) for name, source in SOURCES.items()}
GRAPH = {name: {m for m in found if m in SOURCES and m != name} for name, found in IMPORTS.items()}


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def layer_violations(imports: Mapping[str, set[str]]) -> list[str]:
    """Imports across the floors: core -> Qt or anything above it; ui -> cli; product ->
    test fakes or developer tools."""
    bad = []
    for name, found in imports.items():
        if _in(name, "kobold_gui.core"):
            up = ("kobold_gui.ui", "kobold_gui.cli", "kobold_gui.server", *NOT_PRODUCT)
            bad += [f"{name} imports {m}" for m in found if _in(m, *QT, *up)]
        if _in(name, "kobold_gui.ui"):
            bad += [f"{name} imports {m}" for m in found if _in(m, "kobold_gui.cli")]
        if not _in(name, "kobold_gui.dev"):
            bad += [f"{name} imports {m}" for m in found if _in(m, *NOT_PRODUCT)]
    return sorted(set(bad))


def import_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """The first cycle found, as a path of modules, or None."""

    def visit(node: str, stack: list[str], done: set[str]) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return None
        for dep in sorted(graph[node]):
            # A package's __init__ importing its own submodules is not a cycle.
            if not dep.startswith(node + "."):
                cycle = visit(dep, [*stack, node], done)
                if cycle:
                    return cycle
        done.add(node)
        return None

    done: set[str] = set()
    for name in sorted(graph):
        cycle = visit(name, [], done)
        if cycle:
            return cycle
    return None


def size_violations(name: str, source: str) -> Iterator[str]:
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{name}: {lines} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{name}:{node.lineno} {node.name}(): {length} lines"
        elif isinstance(node, ast.ClassDef):
            methods = [
                b for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
            if len(methods) > MAX_CLASS_METHODS:
                yield f"{name}:{node.lineno} class {node.name}: {len(methods)} methods"


# -- the rules on the real source ------------------------------------------------------------
def test_no_import_crosses_the_floors() -> None:
    assert layer_violations(IMPORTS) == []


def test_no_import_cycles() -> None:
    cycle = import_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def core_area(module: str) -> str | None:
    """kobold_gui.core.launch.batching -> core.launch; a module directly in core/ is its own."""
    parts = module.split(".")
    return ".".join(parts[1:3]) if parts[:2] == ["kobold_gui", "core"] and len(parts) > 2 else None


def area_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    areas: dict[str, set[str]] = {}
    for name, deps in graph.items():
        area = core_area(name)
        if area is not None:
            found = {core_area(d) for d in deps} - {area, None}
            areas.setdefault(area, set()).update(a for a in found if a is not None)
    return areas


def test_the_cores_areas_stand_on_each_other_without_a_cycle() -> None:
    """Areas are floors: types at the bottom (units, llama), launch above hardware and the
    plan, the engine above launch. A cycle between two areas means a module is in the
    wrong room."""
    cycle = import_cycle(area_graph(GRAPH))
    assert cycle is None, "areas in a cycle: " + " -> ".join(cycle or [])


def test_a_planted_cycle_between_areas_is_found() -> None:
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["kobold_gui.core.plan.memory_plan"].add("kobold_gui.core.launch.resolve")
    assert import_cycle(area_graph(graph)) is not None


def test_no_module_function_or_class_is_too_large() -> None:
    found = [v for name, source in SOURCES.items() for v in size_violations(name, source)]
    assert found == []


def test_every_imported_package_is_declared() -> None:
    """A package the product imports is one pyproject.toml installs (or the standard
    library), never one that happens to come along with another."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {_distribution_name(d) for d in declared}
    # Import names that differ from their distribution's name.
    provided_by = {
        "llama_cpp": "llama-cpp-python",
        "pynvml": "nvidia-ml-py",
        "PySide6": "pyside6-essentials",
        "shiboken6": "pyside6-essentials",
        "yaml": "pyyaml",
        "sse_starlette": "sse-starlette",
        "huggingface_hub": "huggingface-hub",
    }
    missing = set()
    for name, found in IMPORTS.items():
        if _in(name, "kobold_gui.dev"):
            continue
        for module in found:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in ("kobold_gui", "__future__"):
                continue
            if provided_by.get(top, top).lower().replace("_", "-") not in names:
                missing.add(f"{top} (in {name})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def _distribution_name(requirement: str) -> str:
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower().replace("_", "-")


def test_no_private_module_of_another_package_is_imported() -> None:
    private = sorted(
        f"{name} imports {m}"
        for name, found in IMPORTS.items()
        for m in found
        if not m.startswith("kobold_gui")
        and any(p.startswith("_") and not p.startswith("__") for p in m.split(".")[1:-1])
    )
    assert private == []


# -- each rule catches a planted violation ---------------------------------------------------
def test_a_planted_cycle_is_found() -> None:
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["kobold_gui.core.launch.options"].add("kobold_gui.core.launch.resolve")
    assert import_cycle(graph) is not None


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("kobold_gui.core.launch.batching", "PySide6.QtCore"),
        ("kobold_gui.core.engine.local", "kobold_gui.ui.chat.chat_panel"),
        ("kobold_gui.ui.window.main_window", "kobold_gui.cli.common"),
        ("kobold_gui.ui.app", "tests.fakes.nvml"),
        ("kobold_gui.cli.common", "kobold_gui.dev.synthetic_gguf"),
    ],
)
def test_a_planted_layer_violation_is_found(module: str, imported: str) -> None:
    imports = {k: set(v) for k, v in IMPORTS.items()}
    imports[module].add(imported)
    assert layer_violations(imports) == [f"{module} imports {imported}"]


def test_planted_size_violations_are_found() -> None:
    long_function = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    many_methods = "class C:\n" + "".join(
        f"    def m{i}(self): pass\n" for i in range(MAX_CLASS_METHODS + 1)
    )
    long_module = "x = 1\n" * (MAX_MODULE_LINES + 1)
    assert list(size_violations("m", long_function)) == ["m:1 f(): 61 lines"]
    assert list(size_violations("m", many_methods)) == ["m:1 class C: 26 methods"]
    assert list(size_violations("m", long_module)) == ["m: 401 lines (at most 400)"]
    assert list(size_violations("m", "def f():\n" + "    x = 1\n" * 59)) == []


# -- the import order that crashed issue 14 ---------------------------------------------------
CORE = sorted(n for n in SOURCES if n.startswith("kobold_gui.core."))


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
