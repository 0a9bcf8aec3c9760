"""The project's import graph by area: which area imports which, and how often.

    python3 tools/import_graph.py            # areas (core/engine, ui/chat, ...), one line each
    python3 tools/import_graph.py --dot      # the same as Graphviz dot
    python3 tools/import_graph.py --modules  # module by module

An area is a package under kobold_gui/core/ or kobold_gui/ui/ (core/engine, ui/chat), or a
top-level package (cli, server, dev); a module directly in core/ or ui/ is its own area
(core/settings). Imports inside functions count too. Reads the source; imports nothing.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kobold_gui"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def area(module: str) -> str:
    parts = module.split(".")[1:]  # drop "kobold_gui"
    if not parts:
        return "kobold_gui"
    if parts[0] in ("core", "ui") and len(parts) > 1:
        return "/".join(parts[:2])
    return parts[0]


def imports(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found.update(n for n in names if n in known)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imports(path, known) - {name} for name, path in sorted(paths.items())}


def area_edges(modules: dict[str, set[str]]) -> Counter[tuple[str, str]]:
    edges: Counter[tuple[str, str]] = Counter()
    for name, deps in modules.items():
        for dep in deps:
            if area(name) != area(dep):
                edges[(area(name), area(dep))] += 1
    return edges


def main(argv: list[str]) -> None:
    modules = graph()
    if "--modules" in argv:
        for name, deps in modules.items():
            print(name, "->", " ".join(sorted(deps)))
        return
    edges = area_edges(modules)
    if "--dot" in argv:
        print("digraph areas {\n  rankdir=BT;")
        for (a, b), n in sorted(edges.items()):
            print(f'  "{a}" -> "{b}" [label={n}];')
        print("}")
        return
    sizes = Counter(area(m) for m in modules)
    for a in sorted(sizes):
        deps = sorted((b, n) for (x, b), n in edges.items() if x == a)
        listed = ", ".join(f"{b} ({n})" for b, n in deps) or "-"
        print(f"{a} [{sizes[a]} modules] -> {listed}")


if __name__ == "__main__":
    main(sys.argv[1:])
