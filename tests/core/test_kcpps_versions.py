"""KoboldCPP files both ways, per release: files as KoboldCPP 1.54, 1.77 and 1.117 write them
(tests/data/kcpps, produced by running each release's own argparse and save code) are
imported and saved; the saved file keeps every key of the source, and rewrites only what the
launch changed, in that release's keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kobold_gui.core.kcpps import keys
from kobold_gui.core.kcpps.files import EXTRAS_KEY, KcppsImport, read_kcpps
from kobold_gui.core.kcpps.writer import write_kcpps
from kobold_gui.core.launch.values import GpuSelection

DATA = Path(__file__).parent.parent / "data" / "kcpps"
RELEASE_FILES = sorted(
    p.name for p in DATA.glob("koboldcpp-1.*-*.kcpps") if p.name.split("-")[1][2:].isdigit()
)


@pytest.fixture
def files(tmp_path: Path, default_model: Path) -> Path:
    for name in RELEASE_FILES:
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "model.gguf").symlink_to(default_model)  # the files name model.gguf
    return tmp_path


def _save(tmp_path: Path, source: KcppsImport, **changes: Any) -> dict[str, Any]:
    config = source.config.with_values(**changes) if changes else source.config
    path, _notes = write_kcpps(tmp_path / "saved.kcpps", config, source.model, source)
    return dict(json.loads(path.read_text()))


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys_ = (set(before) | set(after)) - {EXTRAS_KEY}
    return {k: (before.get(k), after.get(k)) for k in keys_ if before.get(k) != after.get(k)}


def test_there_are_files_of_each_release() -> None:
    versions = {name.split("-")[1] for name in RELEASE_FILES}
    assert versions == {"1.54", "1.77", "1.117"}


@pytest.mark.parametrize("name", RELEASE_FILES)
def test_import_then_save_gives_back_every_key_of_the_source(files: Path, name: str) -> None:
    source = read_kcpps(files / name)
    assert source.model == (files / "model.gguf").absolute()
    assert source.version == name.split("-")[1]
    original = json.loads((files / name).read_text())
    assert _diff(original, _save(files, source)) == {}


@pytest.mark.parametrize("name", RELEASE_FILES)
def test_a_changed_setting_is_the_only_key_that_changes(files: Path, name: str) -> None:
    source = read_kcpps(files / name)
    saved = _save(files, source, contextsize=6144, gpulayers=7)
    assert _diff(source.raw, saved) == {
        "contextsize": (source.raw["contextsize"], 6144),
        "gpulayers": (source.raw["gpulayers"], 7),
    }


def test_1_54_batch_goes_to_blasbatchsize_and_lowvram_into_usecublas(files: Path) -> None:
    source = read_kcpps(files / "koboldcpp-1.54-cuda.kcpps")
    saved = _save(files, source, blasbatchsize=1024, kvoffload="off")
    assert _diff(source.raw, saved) == {
        "blasbatchsize": (256, 1024),
        "usecublas": (["normal", "1", "mmq"], ["lowvram", "1", "mmq"]),
    }
    assert "batchsize" not in saved and "usecuda" not in saved and "lowvram" not in saved


def test_1_77_main_gpu_of_a_split_is_the_usecublas_digit(files: Path) -> None:
    source = read_kcpps(files / "koboldcpp-1.77-split.kcpps")
    assert (source.config.maingpu, source.config.tensor_split) == (1, (3.0, 1.0))
    saved = _save(files, source, tensor_split=(1.0, 1.0))
    assert _diff(source.raw, saved) == {"tensor_split": ([3.0, 1.0], [1.0, 1.0])}
    assert "maingpu" not in saved  # 1.77 has no such key: GPU 1 stays the main GPU
    saved = _save(files, source, maingpu=0)
    assert saved["usecublas"] == ["normal", "0", "mmq"]


def test_1_117_keys_and_names(files: Path) -> None:
    source = read_kcpps(files / "koboldcpp-1.117-cuda.kcpps")
    saved = _save(files, source, kvtype="q4_0", blasbatchsize=512, splitmode="row")
    assert _diff(source.raw, saved) == {
        "quantkv": ("q8_0", "q4_0"),  # a name, as 1.117 writes it
        "batchsize": (2048, 512),
        "splitmode": ("layer", "row"),
    }
    assert "useswa" not in saved and saved["noswa"] is False  # never the 1.102 key
    assert saved["usemmap"] is True and saved["multiuser"] == 2  # not applied: kept


def test_cpu_launch_is_usecpu_never_usecuda(files: Path) -> None:
    source = read_kcpps(files / "koboldcpp-1.117-cuda.kcpps")
    saved = _save(files, source, gpus=GpuSelection(()))
    assert (saved["usecuda"], saved["usecpu"]) == (None, True)
    cpu = read_kcpps(files / "koboldcpp-1.117-cpu-nofa.kcpps")
    saved = _save(files, cpu, contextsize=8192)
    assert (saved["usecuda"], saved["usecpu"]) == (None, True)
    old = read_kcpps(files / "koboldcpp-1.54-cuda.kcpps")
    assert _save(files, old, gpus=GpuSelection(()))["usecublas"] is None


def test_vulkan_launch_stays_vulkan(files: Path) -> None:
    for name in ("koboldcpp-1.117-vulkan.kcpps", "koboldcpp-1.77-vulkan.kcpps"):
        source = read_kcpps(files / name)
        saved = _save(files, source, gpulayers=5)
        assert _diff(source.raw, saved) == {"gpulayers": (source.raw["gpulayers"], 5)}
        assert saved["usevulkan"] == [0] and not saved.get("usecuda")


def test_quantized_kv_without_flash_attention_is_saved_as_it_was(files: Path) -> None:
    source = read_kcpps(files / "koboldcpp-1.117-cpu-nofa.kcpps")
    assert source.config.flashattention == "auto"  # a quantized V cache needs it here
    (note,) = [n for n in source.notes if n.key == "noflashattention"]
    assert note.value is True  # the file's value, not its inverse
    saved = _save(files, source, threads=3)
    assert (saved["noflashattention"], saved["quantkv"]) == (True, "q4_0")


@pytest.mark.parametrize("version", ["1.54", "1.77", "1.117"])
def test_notes_name_only_what_the_user_set(files: Path, version: str) -> None:
    """A file saved by each release with nothing changed (only the model given): nothing is
    named, compared with that release's own defaults."""
    result = read_kcpps(files / f"koboldcpp-{version}-defaults.kcpps")
    assert result.version == version
    assert result.notes == () and result.server == {}


def test_server_settings_go_to_the_api_server(files: Path) -> None:
    result = read_kcpps(files / "koboldcpp-1.117-cuda.kcpps")
    assert result.server == {"port": 5003, "host": "127.0.0.1", "password": "pw", "multiuser": 2}
    assert not {"port", "host", "password", "multiuser"} & {n.key for n in result.notes}
    old = read_kcpps(files / "koboldcpp-1.54-cuda.kcpps")
    assert old.server == {"port": 5002, "host": "127.0.0.1", "multiuser": 3}


def test_a_new_file_is_written_in_the_newest_releases_keys(tmp_path: Path) -> None:
    source = read_kcpps(DATA / "koboldcpp-1.117-vulkan.kcpps")
    path, _ = write_kcpps(tmp_path / "new", source.config.with_values(gpus="0"), None)
    data = json.loads(path.read_text())
    defaults = keys.default_file()
    assert set(data) - {EXTRAS_KEY} == set(defaults)
    assert data["usecuda"] == ["normal", "0"] and data["usevulkan"] is None
