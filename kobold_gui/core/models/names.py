"""What a person calls a model file, wherever the app shows one (the title, the load bar, the
metadata, the API's model id): its file name, except for an Ollama blob
(<models>/blobs/sha256-<hex>, a name nobody knows), which goes by the name:tag its manifests
give it (<models>/manifests/<registry>/<namespace>/<model>/<tag>). The manifests of a models
folder are read once and kept; a blob they do not name makes them read again (a model pulled
since). Safe to call from any thread.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY = "registry.ollama.ai"
_MANIFEST_PATTERNS = ("*/*/*/*", "*/*/*/*/*")  # registry/namespace/model/tag (+ a deeper one)

_lock = threading.Lock()
_tags: dict[Path, dict[str, tuple[str, ...]]] = {}  # models folder -> blob name -> names


def ollama_name(manifest: Path, manifests: Path) -> str:
    """registry.ollama.ai/library/llama3/8b -> llama3:8b; others keep their namespace/host."""
    parts = manifest.relative_to(manifests).parts
    *where, model, tag = parts
    if where[:1] == [OLLAMA_REGISTRY]:
        where = where[1:]
        if where == ["library"]:
            where = []
    return "/".join([*where, f"{model}:{tag}"])


def ollama_digest(manifest: Path) -> str | None:
    """The digest of the model layer a manifest names (sha256:<hex>), None if it names none."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        layers = data.get("layers", [])
        return next(
            str(layer["digest"]) for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER
        )
    except (OSError, ValueError, AttributeError, KeyError, TypeError, StopIteration):
        return None


def ollama_blob(models: Path, manifest: Path) -> Path | None:
    """The model blob a manifest names, when it is there."""
    digest = ollama_digest(manifest)
    if digest is None:
        return None
    for name in (digest.replace(":", "-"), digest):  # sha256-<hex>; sha256:<hex> before 0.1.30
        blob = models / "blobs" / name
        if blob.is_file():
            return blob
    return None


def _read_tags(models: Path) -> dict[str, tuple[str, ...]]:
    """Every blob name of a models folder with the names its manifests give it, sorted."""
    manifests = models / "manifests"
    found: dict[str, list[str]] = {}
    for pattern in _MANIFEST_PATTERNS:
        try:
            candidates = sorted(manifests.glob(pattern))
        except OSError:
            continue
        for manifest in candidates:
            digest = ollama_digest(manifest)  # a folder or an unreadable file: None
            if digest is not None:
                name = ollama_name(manifest, manifests)
                found.setdefault(digest.replace(":", "-"), []).append(name)
    return {blob: tuple(sorted(names)) for blob, names in found.items()}


def ollama_models_folder(path: Path) -> Path | None:
    """The Ollama models folder holding this blob, None when the path is not an Ollama blob."""
    if path.parent.name != "blobs" or not path.name.startswith("sha256"):
        return None
    models = path.parent.parent
    return models if (models / "manifests").is_dir() else None


def ollama_names(path: Path) -> tuple[str, ...]:
    """The name:tag names of an Ollama blob (several tags may share one), () for any other file."""
    models = ollama_models_folder(path)
    if models is None:
        return ()
    blob = path.name.replace(":", "-")
    with _lock:
        known = _tags.get(models)
    if known is None or blob not in known:
        known = _read_tags(models)  # outside the lock: a slow disk holds no other caller
        with _lock:
            _tags[models] = known
    return known.get(blob, ())


def display_name(path: Path) -> str:
    """What the user sees for a model file: its file name, an Ollama blob's name:tag."""
    return ", ".join(ollama_names(path)) or path.name


def display_stem(path: Path) -> str:
    """The model's name without the .gguf (the API's koboldcpp/<name>): an Ollama blob's first
    name:tag, else the file's stem."""
    names = ollama_names(path)
    return names[0] if names else path.stem
