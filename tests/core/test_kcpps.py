"""KoboldCPP settings files: a current file and an old one with legacy keys, read into a
launch, written back, and read again; what is not applied is named."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kobold_gui.core.kcpps import keys as kcpps_keys
from kobold_gui.core.kcpps.files import (
    EXTRAS_KEY,
    KcppsError,
    apply_config_file,
    import_settings,
    read_kcpps,
)
from kobold_gui.core.kcpps.writer import export_settings, write_kcpps
from kobold_gui.core.launch.batching import BLAS_STOPS, stop_at_or_below
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_batch
from kobold_gui.core.launch.values import ALL_GPUS, GpuSelection

DATA = Path(__file__).parent.parent / "data" / "kcpps"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def kcpps_dir(tmp_path: Path, default_model: Path) -> Path:
    """The sample files beside the model file they name (a relative path, as KoboldCPP saves
    it when started from the model's folder)."""
    for f in DATA.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / default_model.name).symlink_to(default_model)
    return tmp_path


def test_current_file_applies_every_launch_setting(kcpps_dir: Path) -> None:
    result = read_kcpps(kcpps_dir / "koboldcpp-1.102.kcpps")
    c = result.config
    assert (c.contextsize, c.gpulayers, c.blasbatchsize, c.threads) == (16384, 99, 1024, 6)
    assert (c.tensor_split, c.maingpu, c.gpus) == ((3.0, 1.0), 1, ALL_GPUS)
    assert (c.flashattention, c.kvtype, c.kvoffload, c.splitmode) == ("on", "q8_0", "on", "layer")
    assert result.model == (kcpps_dir / "SmolLM2-135M-Instruct.Q4_1.gguf").absolute()
    assert not result.template


def test_current_file_names_what_is_not_applied(kcpps_dir: Path) -> None:
    result = read_kcpps(kcpps_dir / "koboldcpp-1.102.kcpps")
    named = {n.key: n for n in result.not_applied}
    # the values this user set that kobold-gui has no use for, and nothing at its default
    assert set(named) == {"launch", "websearch", "sdmodel"}
    assert "server" in named["websearch"].reason
    assert "image" in named["sdmodel"].reason
    assert result.server == {"port": 5002}  # for kobold-gui's API server
    assert "sdmodel" in result.summary() and "Applied" in result.summary()
    assert "port to the API server" in result.summary()


def test_legacy_file_keys_are_converted_as_koboldcpp_does(kcpps_dir: Path) -> None:
    result = read_kcpps(kcpps_dir / "koboldcpp-1.6x-legacy.kcpps")
    c = result.config
    assert c.blasbatchsize == 256  # blasbatchsize -> batchsize
    assert c.flashattention == "on"  # flashattention: true -> noflashattention: false
    assert c.kvtype == "q4_0"  # quantkv index 2
    assert c.kvoffload == "off"  # "lowvram" inside usecublas
    assert (
        c.gpus == GpuSelection((1,)) and c.tensor_split == ()
    )  # GPU id inside usecublas, no split
    assert (c.contextsize, c.gpulayers, c.threads) == (4096, 43, 5)
    assert c.splitmode == "row"  # "rowsplit" inside usecublas: mapped, with a warning
    warned = [n for n in result.notes if n.applied]
    assert [n.key for n in warned] == ["usecublas"]
    assert "row split is not possible on CUDA" in warned[0].reason
    assert warned[0].value == ["lowvram", "1", "mmq", "rowsplit"]
    assert {n.key for n in result.not_applied} == {"launch", "noshift", "hordeconfig"}


def test_unknown_keys_are_named_and_bad_values_do_not_stop_the_import() -> None:
    raw = {
        "contextsize": 8192,
        "batchsize": -1,  # "don't batch": nothing to map it to
        "gpulayers": "many",
        "quantkv": "q5_1",
        "splitmode": "tensor",
        "usevulkan": [0],
        "somefuturekey": {"a": 1},
    }
    result = import_settings(raw)
    assert result.config == LaunchConfig(contextsize=8192)
    named = {n.key: n.reason for n in result.not_applied}
    assert set(named) == {
        "batchsize",
        "gpulayers",
        "quantkv",
        "splitmode",
        "usevulkan",
        "somefuturekey",
    }
    assert "not a KoboldCPP setting" in named["somefuturekey"]
    assert "whole number" in named["gpulayers"]


def test_a_share_of_zero_leaves_a_gpu_out() -> None:
    result = import_settings({"tensor_split": [2, 0, 1], "usecuda": ["normal", "2"]})
    assert (result.config.gpus, result.config.tensor_split, result.config.maingpu) == (
        GpuSelection((0, 2)),
        (2.0, 1.0),
        2,
    )


def test_quantized_kv_without_flash_attention_turns_flash_attention_to_auto() -> None:
    result = import_settings({"quantkv": "q8_0", "noflashattention": True})
    assert (result.config.kvtype, result.config.flashattention) == ("q8_0", "auto")
    assert [n.key for n in result.not_applied] == ["noflashattention"]


def test_template_with_download_link_and_auto_values() -> None:
    raw = {
        "istemplate": True,
        "model_param": "https://example.invalid/model.gguf",
        "threads": -1,
        "gpulayers": -1,
        "usecuda": None,
    }
    result = import_settings(raw)
    assert result.template and result.model is None
    assert (result.config.threads, result.config.gpulayers) == (0, -1)
    assert "download" in result.not_applied[0].reason


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    result = import_settings({"model": ["nope.gguf"]}, tmp_path)
    assert result.model is None
    assert [(n.key, n.reason) for n in result.not_applied] == [
        ("model", "the model file was not found")
    ]


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '"text"'])
def test_not_a_settings_file_is_one_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.kcpps"
    path.write_text(content)
    with pytest.raises(KcppsError, match="not a KoboldCPP settings file"):
        read_kcpps(path)
    with pytest.raises(KcppsError, match="not found"):
        read_kcpps(tmp_path / "missing.kcpps")


def test_a_model_picked_as_settings_file_is_refused_without_reading_it(
    tmp_path: Path, default_model: Path
) -> None:
    with pytest.raises(KcppsError, match="not a KoboldCPP settings file: too large"):
        read_kcpps(default_model)  # 94 MiB of GGUF


def test_written_file_has_every_key_koboldcpp_writes(tmp_path: Path, default_model: Path) -> None:
    config = LaunchConfig(blasbatchsize=2048, contextsize=8192, gpulayers=20, kvtype="q4_0")
    path, _notes = write_kcpps(tmp_path / "mine", config, default_model)
    assert path.name == "mine.kcpps"  # the suffix KoboldCPP adds
    data = json.loads(path.read_text())
    # a new file: the newest release's keys (1.117), with its defaults where nothing was set
    assert set(kcpps_keys.default_file()) <= set(data)
    assert "useswa" not in data and "usecublas" not in data and "blasbatchsize" not in data
    assert (data["multiuser"], data["defaultgenamt"], data["draftamount"]) == (10, 1536, 4)
    # the values KoboldCPP reads, in the types its argparse gives them
    assert data["batchsize"] == 2048
    assert (data["contextsize"], data["gpulayers"], data["quantkv"]) == (8192, 20, "q4_0")
    assert data["model_param"] == str(default_model.absolute())
    assert data["threads"] == -1 and data["noflashattention"] is False
    assert data["usecuda"] == ["normal"] and data["usecpu"] is False
    assert data["tensor_split"] is None and data["istemplate"] is False
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as other apps' files


@pytest.mark.parametrize(
    "config",
    [
        LaunchConfig(),
        LaunchConfig(flashattention="off", kvoffload="off", threads=12, maingpu=1),
        LaunchConfig(
            gpus=GpuSelection((0, 2)), tensor_split=(3.0, 1.0), splitmode="row", kvtype="q8_0"
        ),
        LaunchConfig(
            gpus=GpuSelection((5,)), blasbatchsize=300, batchpolicy="tied", vrammargin=1024
        ),
        LaunchConfig(gpus=GpuSelection((1,)), splitmode="none", ubatch=256, batchpolicy="custom"),
        LaunchConfig(gpus=GpuSelection((0, 1)), splitmode="tensor", tensor_split=(1.0, 1.0)),
        LaunchConfig().with_values(rpc="gpu-box:50052,10.0.0.2:6000", gpus="none"),
    ],
)
def test_kobold_gui_round_trip_keeps_every_option(tmp_path: Path, config: LaunchConfig) -> None:
    path, _notes = write_kcpps(tmp_path / "launch.kcpps", config, None)
    assert read_kcpps(path).config == config


def test_file_edited_in_koboldcpp_wins_over_kobold_guis_extra_key(tmp_path: Path) -> None:
    config = LaunchConfig(flashattention="auto", batchpolicy="tied", contextsize=4096)
    data, _notes = export_settings(config, None)
    data["contextsize"] = 12288  # KoboldCPP's launcher changed and re-saved it
    result = import_settings(data)
    assert result.config.contextsize == 12288
    assert result.config.flashattention == "on"  # KoboldCPP's value, not the stale "auto"
    assert result.config.batchpolicy == "tied"  # KoboldCPP has no key for it: kept
    assert EXTRAS_KEY not in {n.key for n in result.notes}


def test_tensor_split_is_layer_for_koboldcpp_and_tensor_for_kobold_gui(tmp_path: Path) -> None:
    config = LaunchConfig(gpus=GpuSelection((0, 1)), splitmode="tensor")
    data, notes = export_settings(config, None)
    assert data["splitmode"] == "layer"  # KoboldCPP has no tensor split
    assert ("splitmode", "tensor") in {(n.key, n.value) for n in notes}
    data["contextsize"] = 8192  # edited in KoboldCPP, split mode left at layer
    assert import_settings(data).config.splitmode == "tensor"
    data["splitmode"] = "row"  # changed in KoboldCPP: KoboldCPP's choice wins
    assert import_settings(data).config.splitmode == "row"


def test_current_file_round_trip_through_kobold_gui(kcpps_dir: Path, tmp_path: Path) -> None:
    first = read_kcpps(kcpps_dir / "koboldcpp-1.102.kcpps")
    path, notes = write_kcpps(tmp_path / "again.kcpps", first.config, first.model, first)
    original = json.loads((kcpps_dir / "koboldcpp-1.102.kcpps").read_text())
    written = json.loads(path.read_text())
    assert {k: v for k, v in written.items() if k != EXTRAS_KEY} == original
    written = json.loads(path.read_text())
    assert set(original) <= set(written)
    assert path.stat().st_mode & 0o777 != 0o600
    again = read_kcpps(path)
    assert again.config == first.config and again.model == first.model
    assert notes == []  # nothing of this launch is lost on KoboldCPP's side


def test_export_notes_what_koboldcpp_cannot_express() -> None:
    config = LaunchConfig(
        blasbatchsize=300,
        gpus=GpuSelection((0, 1)),
        splitmode="none",
        batchpolicy="tied",
        vrammargin=100,
    )
    data, notes = export_settings(config, None)
    assert data["batchsize"] == 256 and data["tensor_split"] == [1.0, 1.0]
    keys = [n.key for n in notes]
    assert keys == ["batchsize", "tensor_split", "splitmode", "batchpolicy", "vrammargin"]


def test_command_line_values_override_the_file(kcpps_dir: Path) -> None:
    given = {"contextsize": 2048, "tensor_split": [1, 1], "threads": None}
    result = apply_config_file(kcpps_dir / "koboldcpp-1.102.kcpps", given)
    assert result.config.contextsize == 2048  # given
    assert result.config.tensor_split == (1.0, 1.0)  # given, as KoboldCPP's list
    assert result.config.threads == 6  # not given: the file's


@pytest.mark.parametrize("blas", [25, 300, 1000, 4095])
def test_a_batch_between_stops_is_saved_as_the_stop_below_and_launched_as_given(
    blas: int,
) -> None:
    """KoboldCPP's launcher loads only its stops, so a .kcpps gets the stop below (never a
    larger batch); the launch, like KoboldCPP running a .kcpps, keeps the value itself."""
    config = LaunchConfig(blasbatchsize=blas, contextsize=8192)
    data, notes = export_settings(config, None)
    assert data["batchsize"] == stop_at_or_below(blas)
    assert data["batchsize"] in BLAS_STOPS and data["batchsize"] < blas
    assert [n.key for n in notes if n.key == "batchsize"] == ["batchsize"]
    assert import_settings(data).config.blasbatchsize == blas  # kobold-gui's key keeps it
    del data[EXTRAS_KEY]  # as KoboldCPP saves it back: the stop
    assert import_settings(data).config.blasbatchsize == stop_at_or_below(blas)
    assert import_settings({"batchsize": blas}).config.blasbatchsize == blas  # as KoboldCPP
    assert resolve_batch(config).n_batch == blas


def test_kcpps_splits_are_read_once_and_bad_ones_named() -> None:
    assert import_settings({"tensor_split": "3 1"}).config.tensor_split == (3.0, 1.0)
    assert import_settings({"tensor_split": []}).config.tensor_split == ()
    result = import_settings({"tensor_split": ["a", 1], "contextsize": 2048})
    assert result.config.tensor_split == () and result.config.contextsize == 2048
    (note,) = result.not_applied
    assert note.key == "tensor_split" and note.reason.startswith("not a split: expected numbers")
