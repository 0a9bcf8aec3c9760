"""Where other apps keep the GGUF models they downloaded, on Linux, macOS and Windows.

Each app's default folder, and the folder a user moved it to where the app writes that down:
- LM Studio: ~/.lmstudio/models/<publisher>/<repo>/*.gguf (~/.lmstudio-home-pointer can move
  ~/.lmstudio; "downloadsFolder" in its settings.json moves the models); before 0.3,
  ~/.cache/lm-studio/models.
- GPT4All: flat folder, "Download Path" default ~/.local/share/nomic.ai/GPT4All (Linux),
  ~/Library/Application Support/nomic.ai/GPT4All (macOS), %LOCALAPPDATA%/nomic.ai/GPT4All
  (Windows); moved with modelPath= in GPT4All.ini; the Python bindings use ~/.cache/gpt4all.
- Jan: <data folder>/llamacpp/models/<id>/model.gguf (Jan 0.6+), <data folder>/models/<id>/
  before; the data folder is ~/.config/Jan/data (Linux), ~/Library/Application Support/Jan/data
  (macOS), %APPDATA%/Jan/data (Windows), ~/jan for old releases, or settings.json's data_folder.
- Hugging Face hub cache: $HF_HUB_CACHE, $HF_HOME/hub, else ~/.cache/huggingface/hub, with
  models--<org>--<name>/snapshots/<revision>/<file> linking to ../../blobs/<hash>.
- Ollama: $OLLAMA_MODELS, ~/.ollama/models, or /usr/share/ollama/.ollama/models (the Linux
  service), with manifests/<registry>/<namespace>/<model>/<tag> naming blobs/sha256-<hash>.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LM_STUDIO = "LM Studio"
GPT4ALL = "GPT4All"
JAN = "Jan"
HUGGING_FACE = "Hugging Face"
OLLAMA = "Ollama"
SOURCES = (LM_STUDIO, GPT4ALL, JAN, HUGGING_FACE, OLLAMA)


@dataclass(frozen=True)
class ScanRoot:
    source: str  # one of SOURCES
    path: Path
    layout: str  # "tree" (walk for .gguf), "hf" (hub cache) or "ollama" (manifests + blobs)


@dataclass(frozen=True)
class Places:
    """The user's folders, for one platform (given so tests can ask about any platform)."""

    home: Path
    platform: str  # "linux", "darwin" or "win32"
    env: Mapping[str, str]

    @classmethod
    def current(cls) -> Places:
        return cls(Path.home(), sys.platform, dict(os.environ))

    def _env_path(self, name: str, default: Path) -> Path:
        value = self.env.get(name)
        return Path(value) if value else default

    @property
    def config(self) -> Path:  # where apps keep their settings
        if self.platform == "win32":
            return self._env_path("APPDATA", self.home / "AppData" / "Roaming")
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        return self._env_path("XDG_CONFIG_HOME", self.home / ".config")

    @property
    def data(self) -> Path:  # where apps keep their data (Qt's AppLocalDataLocation)
        if self.platform == "win32":
            return self._env_path("LOCALAPPDATA", self.home / "AppData" / "Local")
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        return self._env_path("XDG_DATA_HOME", self.home / ".local" / "share")

    @property
    def cache(self) -> Path:
        return self._env_path("XDG_CACHE_HOME", self.home / ".cache")


def _json_value(path: Path, key: str) -> str | None:
    """A string from a small JSON settings file, None when absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _ini_value(path: Path, key: str) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == key and value.strip():
            return value.strip().strip('"')
    return None


def lm_studio_roots(p: Places) -> list[Path]:
    home = p.home / ".lmstudio"
    try:
        pointer = (p.home / ".lmstudio-home-pointer").read_text(encoding="utf-8").strip()
        home = Path(pointer) if pointer else home
    except OSError:
        pass
    roots = [home / "models", p.cache / "lm-studio" / "models"]
    for settings in (home / "settings.json", p.config / "LM Studio" / "settings.json"):
        moved = _json_value(settings, "downloadsFolder")
        if moved:
            roots.insert(0, Path(moved))
    return roots


def gpt4all_roots(p: Places) -> list[Path]:
    roots = [p.data / "nomic.ai" / "GPT4All", p.home / ".cache" / "gpt4all"]
    moved = _ini_value(p.config / "nomic.ai" / "GPT4All.ini", "modelPath")
    if moved:
        roots.insert(0, Path(moved))
    return roots


def jan_roots(p: Places) -> list[Path]:
    folders = [p.config / "Jan" / "data", p.data / "Jan" / "data", p.home / "jan"]
    for settings in (p.config / "Jan" / "settings.json", p.home / "jan" / "settings.json"):
        moved = _json_value(settings, "data_folder")
        if moved:
            folders.insert(0, Path(moved))
    return [f / sub for f in folders for sub in (Path("llamacpp") / "models", Path("models"))]


def hugging_face_roots(p: Places) -> list[Path]:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if p.env.get(name):
            return [Path(p.env[name])]
    if p.env.get("HF_HOME"):
        return [Path(p.env["HF_HOME"]) / "hub"]
    return [p.cache / "huggingface" / "hub"]


def ollama_roots(p: Places) -> list[Path]:
    if p.env.get("OLLAMA_MODELS"):
        return [Path(p.env["OLLAMA_MODELS"])]
    roots = [p.home / ".ollama" / "models"]
    if p.platform == "linux":
        roots.append(Path("/usr/share/ollama/.ollama/models"))
    return roots


def default_roots(places: Places | None = None) -> list[ScanRoot]:
    """Every app's model folders that exist, each once (reads a few small settings files)."""
    p = places or Places.current()
    wanted = [(LM_STUDIO, r, "tree") for r in lm_studio_roots(p)]
    wanted += [(GPT4ALL, r, "tree") for r in gpt4all_roots(p)]
    wanted += [(JAN, r, "tree") for r in jan_roots(p)]
    wanted += [(HUGGING_FACE, r, "hf") for r in hugging_face_roots(p)]
    wanted += [(OLLAMA, r, "ollama") for r in ollama_roots(p)]
    roots: list[ScanRoot] = []
    seen: set[str] = set()
    for source, path, layout in wanted:
        try:
            if not path.is_dir():
                continue
            real = os.path.realpath(path)
        except OSError:
            continue
        if real not in seen:
            seen.add(real)
            roots.append(ScanRoot(source, path, layout))
    return roots
