"""Find the GGUF models other apps downloaded (LM Studio, GPT4All, Jan, the Hugging Face cache,
Ollama), to load them where they are, never copied. Slow disks and odd folders are the rule
here, so the scan only walks the apps' own folders (core/models/roots.py), never follows a
folder link twice (no loops), reads four bytes per candidate file, and skips what it cannot
read. Run it off the GUI thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kobold_gui.core.models.files import is_later_split_part
from kobold_gui.core.models.names import ollama_blob, ollama_name
from kobold_gui.core.models.roots import OLLAMA, ScanRoot, default_roots

__all__ = ["FoundModel", "ScanResult", "is_gguf", "ollama_name", "scan_models"]

GGUF_MAGIC = b"GGUF"
MAX_DEPTH = 8  # hub cache: models--org--name/snapshots/<rev>/<subfolder>/<file>


@dataclass(frozen=True)
class FoundModel:
    path: Path  # the file to load (for Ollama, its blob)
    name: str  # what the user sees: the app's name for the model
    source: str  # the app

    @property
    def label(self) -> str:
        return f"{self.name} — {self.source}"


@dataclass(frozen=True)
class ScanResult:
    models: tuple[FoundModel, ...]
    skipped: tuple[str, ...] = ()  # folders or files that could not be read, with why
    seconds: float = 0.0
    entries: int = 0  # directory entries looked at
    roots: tuple[ScanRoot, ...] = field(default=())


def is_gguf(path: Path | str) -> bool:
    """True when the file starts with the GGUF magic (follows a file link; False if broken)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


class _Walker:
    """Walks folders without following a folder link into a folder it has seen (loops)."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()
        self.skipped: list[str] = []
        self.entries = 0

    def files(self, top: Path, max_depth: int = MAX_DEPTH) -> Iterator[tuple[Path, int]]:
        """(file path, depth) for every file under top, links to files included."""
        stack = [(top, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                st = folder.stat()
                if (st.st_dev, st.st_ino) in self.seen:
                    continue
                self.seen.add((st.st_dev, st.st_ino))
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as e:
                self.skipped.append(f"{folder}: {e.strerror or e}")
                continue
            self.entries += len(entries)
            for entry in entries:
                try:
                    if entry.is_dir():  # follows links; `seen` stops loops
                        if depth < max_depth and not entry.name.startswith("."):
                            stack.append((Path(entry.path), depth + 1))
                    elif entry.is_file():
                        yield Path(entry.path), depth
                except OSError:
                    continue  # a broken link or an entry gone since the listing


def _wanted(name: str) -> bool:
    lower = name.lower()
    return (
        lower.endswith(".gguf")
        and not lower.startswith("mmproj")  # vision projectors, not language models
        and not is_later_split_part(name)
    )


def _scan_tree(root: ScanRoot, walker: _Walker) -> Iterator[FoundModel]:
    for path, _depth in walker.files(root.path):
        if _wanted(path.name) and is_gguf(path):
            name = path.relative_to(root.path).as_posix()
            yield FoundModel(path, name, root.source)


def _hub_refs(repo: Path) -> dict[str, str]:
    """revision -> the refs/ name pointing at it (refs/main holds main's commit), main first."""
    refs: dict[str, str] = {}
    try:
        files = sorted(p for p in (repo / "refs").rglob("*") if p.is_file())
    except OSError:
        return refs
    for ref in sorted(files, key=lambda p: p.name != "main"):
        try:
            revision = ref.read_text(encoding="utf-8", errors="replace")[:100].strip()
        except OSError:
            continue
        refs.setdefault(revision, ref.relative_to(repo / "refs").as_posix())
    return refs


def _scan_hub(root: ScanRoot, walker: _Walker) -> Iterator[FoundModel]:
    """models--org--name/snapshots/<revision>/<file>: named org/name/<file>, and where the
    revisions hold different files of one name, org/name/<file> @ main (or the short hash)."""
    try:
        repos = sorted(p for p in root.path.iterdir() if p.name.startswith("models--"))
    except OSError as e:
        walker.skipped.append(f"{root.path}: {e.strerror or e}")
        return
    for repo in repos:
        repo_name = repo.name[len("models--") :].replace("--", "/")
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        refs = _hub_refs(repo)
        found = [
            (path, path.relative_to(snapshots).parts)
            for path, _depth in walker.files(snapshots)
            if _wanted(path.name) and is_gguf(path)
        ]
        found.sort(key=lambda f: (f[1][0] not in refs, refs.get(f[1][0], f[1][0]), f[1]))
        files: dict[str, set[str]] = {}  # the file's name in the repo -> its distinct contents
        for path, parts in found:
            files.setdefault("/".join(parts[1:]), set()).add(os.path.realpath(path))
        for path, (revision, *inside) in found:
            name = f"{repo_name}/{'/'.join(inside)}"
            if len(files["/".join(inside)]) > 1:
                name += f" @ {refs.get(revision, revision[:7])}"
            yield FoundModel(path, name, root.source)


def _scan_ollama(root: ScanRoot, walker: _Walker) -> Iterator[FoundModel]:
    """Ollama's models named by their manifests; only blobs that are plain GGUF files."""
    manifests = root.path / "manifests"
    names: dict[Path, list[str]] = {}
    for manifest, depth in walker.files(manifests, max_depth=4):
        if depth < 3:
            continue  # registry/namespace/model/tag
        blob = ollama_blob(root.path, manifest)
        if blob is not None:
            names.setdefault(blob, []).append(ollama_name(manifest, manifests))
    for blob, tags in names.items():
        if is_gguf(blob):
            yield FoundModel(blob, ", ".join(sorted(tags)), OLLAMA)


_LAYOUTS = {"tree": _scan_tree, "hf": _scan_hub, "ollama": _scan_ollama}


def scan_models(roots: Sequence[ScanRoot] | None = None, limit: int = 2000) -> ScanResult:
    """The GGUF models under the apps' folders (default_roots() when None), each file once
    (a file two apps share is listed under the first), sorted by app then name."""
    start = time.perf_counter()
    roots = list(default_roots() if roots is None else roots)
    walker = _Walker()
    found: list[FoundModel] = []
    seen: set[str] = set()
    for root in roots:
        for model in _LAYOUTS[root.layout](root, walker):
            real = os.path.realpath(model.path)
            if real not in seen:
                seen.add(real)
                found.append(model)
            if len(found) >= limit:
                break
    order = {r.source: i for i, r in enumerate(roots)}
    found.sort(key=lambda m: (order.get(m.source, 0), m.name.lower()))
    return ScanResult(
        models=tuple(found),
        skipped=tuple(walker.skipped),
        seconds=time.perf_counter() - start,
        entries=walker.entries,
        roots=tuple(roots),
    )
