"""Models other apps downloaded: folders laid out as LM Studio, GPT4All, Jan, the Hugging Face
hub cache and Ollama lay them out, with real GGUF files; odd entries do not stop the scan."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.models.roots import (
    GPT4ALL,
    HUGGING_FACE,
    JAN,
    LM_STUDIO,
    OLLAMA,
    Places,
    ScanRoot,
    default_roots,
)
from kobold_gui.core.models.scan import ScanResult, ollama_name, scan_models

BLOB = "a" * 64


def _link_or_copy(target: Path, link: Path, *, copy: bool = False) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copy(target, link)
    else:
        link.symlink_to(target)
    return link


def _ollama_manifest(path: Path, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": 1},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "b" * 64},
    ]
    config = {"mediaType": "application/vnd.docker.container.image.v1+json"}
    path.write_text(json.dumps({"schemaVersion": 2, "config": config, "layers": layers}))


def build_apps(home: Path, model: Path, *, copy: bool = False) -> None:
    """Each app's default folders (Linux) with a real model, and the usual clutter."""
    lms = home / ".lmstudio" / "models" / "lmstudio-community" / "SmolLM2-135M-Instruct-GGUF"
    _link_or_copy(model, lms / "SmolLM2-135M-Instruct-Q4_1.gguf", copy=copy)
    _link_or_copy(model, lms / "mmproj-SmolLM2-f16.gguf", copy=copy)  # a projector: skipped
    (lms / "README.md").write_text("model card")

    gpt = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    _link_or_copy(model, gpt / "smollm2-135m.gguf", copy=True)
    (gpt / "not-a-model.gguf").write_bytes(b"PK\x03\x04" + b"\0" * 64)  # .gguf name, a zip
    (gpt / "localdocs_v2.db").write_bytes(b"SQLite format 3\0")

    jan = home / ".config" / "Jan" / "data" / "llamacpp" / "models" / "SmolLM2-135M"
    _link_or_copy(model, jan / "model.gguf", copy=True)
    (jan / "model.yml").write_text("model_path: llamacpp/models/SmolLM2-135M/model.gguf\n")

    hub = home / ".cache" / "huggingface" / "hub"
    repo = hub / "models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF"
    _link_or_copy(model, repo / "blobs" / BLOB, copy=True)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "smollm2-135m-instruct-q4_1.gguf").symlink_to(Path("../..") / "blobs" / BLOB)
    (snap / "gone.gguf").symlink_to(Path("../..") / "blobs" / ("c" * 64))  # broken link
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (hub / ".locks").mkdir()

    ollama = home / ".ollama" / "models"
    _link_or_copy(model, ollama / "blobs" / f"sha256-{'d' * 64}", copy=True)
    (ollama / "blobs" / f"sha256-{'e' * 64}").write_bytes(b"ggjt" + b"\0" * 64)  # old GGML
    manifests = ollama / "manifests"
    _ollama_manifest(
        manifests / "registry.ollama.ai" / "library" / "smollm2" / "135m", f"sha256:{'d' * 64}"
    )
    _ollama_manifest(
        manifests / "registry.ollama.ai" / "library" / "smollm2" / "latest", f"sha256:{'d' * 64}"
    )
    _ollama_manifest(
        manifests / "registry.ollama.ai" / "library" / "oldllama" / "7b", f"sha256:{'e' * 64}"
    )
    (manifests / "registry.ollama.ai" / "library" / "broken").mkdir()
    (manifests / "registry.ollama.ai" / "library" / "broken" / "latest").write_text("{oops")


@pytest.fixture
def apps_home(tmp_path: Path, tiny_model: Path) -> Path:
    home = tmp_path / "user"
    build_apps(home, tiny_model)
    return home


def linux(home: Path, **env: str) -> Places:
    return Places(home, "linux", env)


def test_every_app_is_found_with_its_name(apps_home: Path) -> None:
    result = scan_models(default_roots(linux(apps_home)))
    assert [(m.source, m.name) for m in result.models] == [
        (
            LM_STUDIO,
            "lmstudio-community/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
        ),
        (GPT4ALL, "smollm2-135m.gguf"),
        (JAN, "SmolLM2-135M/model.gguf"),
        (HUGGING_FACE, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q4_1.gguf"),
        (OLLAMA, "smollm2:135m, smollm2:latest"),  # two tags, one blob; the GGML blob is left
    ]
    ollama = result.models[-1]
    assert ollama.path == apps_home / ".ollama/models/blobs" / f"sha256-{'d' * 64}"
    assert ollama.label == "smollm2:135m, smollm2:latest — Ollama"
    assert result.skipped == ()


def test_a_file_two_apps_share_is_listed_once(apps_home: Path) -> None:
    gpt = apps_home / ".local" / "share" / "nomic.ai" / "GPT4All" / "smollm2-135m.gguf"
    _link_or_copy(gpt, apps_home / ".lmstudio" / "models" / "me" / "linked" / "same.gguf")
    names = [m.name for m in scan_models(default_roots(linux(apps_home))).models]
    assert "me/linked/same.gguf" in names and "smollm2-135m.gguf" not in names


def test_found_files_are_loadable_in_place(apps_home: Path) -> None:
    for model in scan_models(default_roots(linux(apps_home))).models:
        info = read_gguf(model.path)  # the file where the app keeps it, never a copy
        assert info.n_layers and str(apps_home) in str(model.path)


def test_odd_entries_do_not_stop_the_scan(apps_home: Path, tiny_model: Path) -> None:
    lms = apps_home / ".lmstudio" / "models"
    (lms / "loop").symlink_to(lms)  # a folder link back up: walked once
    (lms / "self-loop").symlink_to(lms / "self-loop")  # ELOOP
    (lms / "dangling.gguf").symlink_to(lms / "nowhere.gguf")
    _link_or_copy(tiny_model, lms / "zz" / "after-the-odd-ones.gguf", copy=True)
    result = scan_models(default_roots(linux(apps_home)))
    names = [m.name for m in result.models if m.source == LM_STUDIO]
    assert "zz/after-the-odd-ones.gguf" in names and len(names) == 2


@pytest.fixture
def readable_by_all(tiny_model: Path) -> Iterator[Path]:
    """A tree outside pytest's private temp folder, so that an unprivileged process can walk
    it (root reads any folder: the unreadable one is tested as user nobody)."""
    top = Path(tempfile.mkdtemp(prefix="kobold-scan-"))
    top.chmod(0o755)
    build_apps(top / "user", tiny_model, copy=True)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    yield top / "user"
    for root, dirs, _files in os.walk(top):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    shutil.rmtree(top)


def _scan_as_another_user(roots: list[ScanRoot]) -> tuple[list[str], list[str]]:
    """(found names, skipped) of a scan run by a user who cannot read a 000 folder."""
    if os.geteuid() != 0:
        result = scan_models(roots)
        return [m.name for m in result.models], list(result.skipped)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops root, scans, reports, exits
        try:
            os.setgid(65534)
            os.setuid(65534)
            result: ScanResult = scan_models(roots)
            report = {"names": [m.name for m in result.models], "skipped": list(result.skipped)}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = json.loads(f.read() or b"{}")
    os.waitpid(pid, 0)
    return data["names"], data["skipped"]


def test_an_unreadable_folder_is_skipped_and_named(readable_by_all: Path) -> None:
    gpt = readable_by_all / ".local" / "share" / "nomic.ai" / "GPT4All"
    locked = gpt / "private"
    locked.mkdir()
    (locked / "secret.gguf").write_bytes(b"GGUF")
    locked.chmod(0o000)
    names, skipped = _scan_as_another_user(default_roots(linux(readable_by_all)))
    assert "smollm2-135m.gguf" in names and "private/secret.gguf" not in names
    assert len(names) == 5  # every app still found
    assert any("private" in s for s in skipped)


def test_roots_on_macos_and_windows_and_moved_folders(tmp_path: Path) -> None:
    home = tmp_path / "u"
    mac = Places(home, "darwin", {})
    support = home / "Library" / "Application Support"
    win = Places(home, "win32", {"APPDATA": str(home / "R"), "LOCALAPPDATA": str(home / "L")})
    wanted = {
        (GPT4ALL, support / "nomic.ai" / "GPT4All"),
        (JAN, support / "Jan" / "data" / "llamacpp" / "models"),
        (GPT4ALL, home / "L" / "nomic.ai" / "GPT4All"),
        (JAN, home / "R" / "Jan" / "data" / "llamacpp" / "models"),
        (LM_STUDIO, home / ".lmstudio" / "models"),
        (OLLAMA, home / ".ollama" / "models"),
        (HUGGING_FACE, home / ".cache" / "huggingface" / "hub"),
    }
    for _source, path in wanted:
        path.mkdir(parents=True, exist_ok=True)
    got = {(r.source, r.path) for p in (mac, win) for r in default_roots(p)}
    assert wanted <= got
    # folders the user moved, as each app writes it down
    moved = tmp_path / "big-disk"
    (moved / "lms").mkdir(parents=True)
    (moved / "hub").mkdir()
    (moved / "ollama").mkdir()
    (home / ".lmstudio" / "settings.json").write_text(
        json.dumps({"downloadsFolder": str(moved / "lms")})
    )
    env = {"HF_HUB_CACHE": str(moved / "hub"), "OLLAMA_MODELS": str(moved / "ollama")}
    got = {(r.source, r.path) for r in default_roots(Places(home, "linux", env))}
    assert {
        (LM_STUDIO, moved / "lms"),
        (HUGGING_FACE, moved / "hub"),
        (OLLAMA, moved / "ollama"),
    } <= got


def test_ollama_names_follow_its_registry_paths(tmp_path: Path) -> None:
    m = tmp_path / "manifests"
    assert ollama_name(m / "registry.ollama.ai/library/llama3/8b", m) == "llama3:8b"
    assert ollama_name(m / "registry.ollama.ai/user/mine/latest", m) == "user/mine:latest"
    assert (
        ollama_name(m / "hf.co/bartowski/Qwen-GGUF/Q4_K_M", m) == "hf.co/bartowski/Qwen-GGUF:Q4_K_M"
    )


def test_no_app_folders_is_an_empty_list(tmp_path: Path) -> None:
    result = scan_models(default_roots(linux(tmp_path / "nobody-home")))
    assert result.models == () and result.skipped == ()


def test_an_ollama_blob_loads_in_place_with_the_real_engine(apps_home: Path) -> None:
    blob = next(
        m for m in scan_models(default_roots(linux(apps_home))).models if m.source == OLLAMA
    )
    engine = LocalEngine()
    try:
        loaded = engine.load(resolve_launch(LaunchConfig(contextsize=512), blob.path, None, False))
        assert loaded.info.path == blob.path  # a file without .gguf in its name, not copied
        reply = engine.chat(
            [Message("user", "Hi")], SamplingParams(max_tokens=4, temperature=0), lambda _t: None
        )
        assert reply.generated_tokens > 0
    finally:
        engine.close()
