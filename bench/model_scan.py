"""Time of the scan for other apps' models on a tree of 10 000 files laid out as LM Studio,
GPT4All, Jan, the Hugging Face cache and Ollama lay them out (small files: the scan reads four
bytes of each .gguf, never more), beside a bare os.walk of the same folders.

    .venv/bin/python -m bench.model_scan [--files 10000] [--drop-caches]

--drop-caches (root, Linux) empties the page cache before the first scan: a cold disk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kobold_gui.core.models.roots import Places, default_roots
from kobold_gui.core.models.scan import scan_models

HEADER = b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 24


def build_tree(home: Path, files: int) -> int:
    """Write about `files` files; one in ten is a .gguf (nine of those real GGUF headers).
    Returns the number written."""
    written = 0
    per_repo = 10
    repos = files // per_repo
    for i in range(repos):
        app = i % 5
        if app == 0:  # LM Studio: publisher/repo/files
            folder = home / ".lmstudio/models" / f"pub{i % 40}" / f"repo{i}-GGUF"
        elif app == 1:  # GPT4All: one flat folder (and its localdocs)
            folder = home / ".local/share/nomic.ai/GPT4All" / ("" if i % 2 else f"localdocs{i}")
        elif app == 2:  # Jan: llamacpp/models/<id>/
            folder = home / ".config/Jan/data/llamacpp/models" / f"model-{i}"
        elif app == 3:  # Hugging Face: snapshots link to blobs
            folder = home / ".cache/huggingface/hub" / f"models--org{i % 30}--repo{i}"
        else:  # Ollama: manifests name blobs
            folder = home / ".ollama/models"
        folder.mkdir(parents=True, exist_ok=True)
        written += _fill(app, folder, i, per_repo)
    return written


def _fill(app: int, folder: Path, i: int, count: int) -> int:
    if app == 3:
        snap = folder / "snapshots" / f"{i:040x}"
        (folder / "blobs").mkdir(exist_ok=True)
        snap.mkdir(parents=True, exist_ok=True)
        for k in range(count // 2):
            name = f"{i:032x}{k:032x}"
            (folder / "blobs" / name).write_bytes(HEADER if k == 0 else b"{}")
            (snap / (f"model-{k}.gguf" if k == 0 else f"file{k}.json")).symlink_to(
                Path("../..") / "blobs" / name
            )
        return count // 2 * 2
    if app == 4:
        digest = f"{i:064x}"
        manifest = folder / "manifests/registry.ollama.ai/library" / f"m{i}" / "latest"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        layer = {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}
        manifest.write_text(json.dumps({"layers": [layer]}))
        (folder / "blobs").mkdir(exist_ok=True)
        (folder / "blobs" / f"sha256-{digest}").write_bytes(HEADER)
        for k in range(count - 2):
            (folder / "blobs" / f"sha256-{i:032x}{k:032x}").write_bytes(b"{}")
        return count
    for k in range(count):
        if k == 0:
            (folder / f"model-{i}.Q4_K_M.gguf").write_bytes(HEADER if i % 10 else b"PK\x03\x04")
        else:
            (folder / f"notes-{i}-{k}.txt").write_text("x")
    return count


def bare_walk(roots: list[Path]) -> int:
    return sum(len(files) for root in roots for _r, _d, files in os.walk(root))


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--drop-caches", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kobold-scan-bench-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        written = build_tree(home, args.files)
        print(f"tree: {written} files written in {time.perf_counter() - t0:.1f} s under {home}")
        roots = default_roots(Places(home, "linux", {}))
        cold = "cold (page cache dropped)" if args.drop_caches and drop_caches() else "first"
        first = scan_models(roots)
        scans = [scan_models(roots) for _ in range(args.repeat)]
        walks = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            listed = bare_walk([r.path for r in roots])
            walks.append(time.perf_counter() - t)
        warm = statistics.median(s.seconds for s in scans)
        print(f"roots: {len(roots)} ({', '.join(sorted({r.source for r in roots}))})")
        print(f"entries looked at: {first.entries}; models found: {len(first.models)}")
        print(f"{'':28s}{'scan_models':>14s}{'bare os.walk':>14s}")
        print(f"{cold + ' run':28s}{first.seconds * 1000:12.1f} ms{'':>14s}")
        print(
            f"{'warm, median of ' + str(args.repeat):28s}{warm * 1000:12.1f} ms"
            f"{statistics.median(walks) * 1000:11.1f} ms"
        )
        print(f"files listed by os.walk: {listed}")


if __name__ == "__main__":
    main()
