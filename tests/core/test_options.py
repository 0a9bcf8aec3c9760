from __future__ import annotations

import json
from pathlib import Path

import pytest

from kobold_gui.cli import parse_args
from kobold_gui.core.launch.options import OPTIONS, ConfigError, LaunchConfig, Option, given_options
from kobold_gui.core.launch.resolve import resolve_gpu_layers, resolve_launch
from kobold_gui.core.launch.values import (
    NO_GPUS,
    GpuSelection,
    parse_gpus,
    parse_rpc,
    parse_tensor_split,
)
from kobold_gui.core.remote.probe import Endpoint
from kobold_gui.core.settings import SettingsStore


def _other_value(option: Option) -> str:
    """A valid value that differs from the default, as a user would type it."""
    if option.name == "gpus":
        return "0,1"
    if option.name == "tensor_split":
        return "3,1"
    if option.name == "rpc":
        return "192.168.1.20:50052,192.168.1.21:50052"
    if option.name == "blasbatchsize":  # the CLI takes KoboldCPP's stops only
        return "1024"
    if option.choices:
        return next(c for c in option.choices if c != option.default)
    return str(option.default + 1)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_reaches_the_launch_from_the_command_line(option: Option) -> None:
    value = _other_value(option)
    args = parse_args([option.flag, value])
    given = given_options(vars(args))
    assert set(given) == {option.name}
    config = LaunchConfig().with_values(**given)
    assert getattr(config, option.name) == option.parse(value) != option.default


def test_values_are_parsed_and_validated_by_the_table() -> None:
    config = LaunchConfig.from_mapping({"blasbatchsize": "2048", "contextsize": 8192})
    assert (config.blasbatchsize, config.contextsize) == (2048, 8192)
    with pytest.raises(ConfigError, match="--contextsize: 100 is below the minimum 256"):
        LaunchConfig.from_mapping({"contextsize": 100})
    with pytest.raises(ConfigError, match="expected a whole number"):
        LaunchConfig.from_mapping({"gpulayers": "lots"})
    with pytest.raises(ConfigError, match="not one of auto, on, off"):
        LaunchConfig.from_mapping({"flashattention": "maybe"})
    with pytest.raises(ConfigError, match="unknown launch option"):
        LaunchConfig.from_mapping({"ropescale": 2})


def test_saved_settings_from_a_newer_version_ignore_unknown_keys() -> None:
    config = LaunchConfig.from_mapping({"blasbatchsize": 256, "newthing": 1}, strict=False)
    assert config.blasbatchsize == 256


@pytest.mark.parametrize(
    ("requested", "gpu", "expected"),
    [
        (-1, True, 31),
        (99, True, 31),
        (31, True, 31),
        (30, True, 30),
        (0, True, 0),
        (12, True, 12),
        (-1, False, 0),
        (99, False, 0),
    ],
)
def test_gpu_layers_meanings(requested: int, gpu: bool, expected: int) -> None:
    assert resolve_gpu_layers(requested, 30, gpu)[0] == expected


def test_resolved_launch_pads_context_like_llama_cpp() -> None:
    resolved = resolve_launch(LaunchConfig(contextsize=1000, blasbatchsize=2048), None, None, False)
    assert resolved.n_ctx_effective == 1024
    assert (resolved.batch.n_batch, resolved.batch.n_ubatch) == (1000, 1000)


# -- the typed values, parsed once where they come in --------------------------------------
@pytest.mark.parametrize(
    ("text", "indices"),
    [("all", None), ("", None), (" ALL ", None), ("none", ()), ("1", (1,)), ("2, 0", (0, 2)),
     ("0,2,2", (0, 2))],
)  # fmt: skip
def test_gpus_are_read_from_text_once(text: str, indices: tuple[int, ...] | None) -> None:
    selection = parse_gpus(text)
    assert selection.indices == indices
    assert parse_gpus(selection) is selection  # typed: checked, not read again
    assert parse_gpus(str(selection)) == selection  # the spelling reads back the same


@pytest.mark.parametrize("text", ["two", "-1", ",", "0,a", "1.5"])
def test_bad_gpu_lists_are_refused_with_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--gpus: expected 'all' or indices like 0,1, got"):
        LaunchConfig().with_values(gpus=text)
    with pytest.raises(ConfigError, match="--gpus: indices must be distinct"):
        GpuSelection((2, 0))


@pytest.mark.parametrize(
    ("value", "shares"),
    [("3 1", (3.0, 1.0)), ("3,1", (3.0, 1.0)), ("3, 1", (3.0, 1.0)), ("0.5,0", (0.5, 0.0)),
     (["3", "1"], (3.0, 1.0)), (["3,1"], (3.0, 1.0)), ([3, 1], (3.0, 1.0)), ((75.0, 25.0),
     (75.0, 25.0)), ("", ()), ((), ()), ([], ())],
)  # fmt: skip
def test_tensor_split_is_read_from_text_or_checked_when_typed(
    value: object, shares: tuple[float, ...]
) -> None:
    assert parse_tensor_split(value) == shares
    assert LaunchConfig().with_values(tensor_split=value).tensor_split == shares


@pytest.mark.parametrize(
    ("value", "words"),
    [("a,b", "expected numbers like 3,1"), ("3,1,x", "expected numbers like 3,1"),
     ("-1,2", "cannot be negative"), ((1.0, -1.0), "cannot be negative"),
     ("0,0", "at least one share must be above zero"), ("nan,1", "finite"), ("inf", "finite"),
     ([True, 1], "expected numbers"), (["3", 1], "expected numbers")],
)  # fmt: skip
def test_a_bad_tensor_split_is_a_config_error_with_a_message(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=f"--tensor_split: .*{words}"):
        LaunchConfig().with_values(tensor_split=value)


def test_machines_are_read_once_into_endpoints() -> None:
    config = LaunchConfig().with_values(rpc=" gpu-box:50052, 10.0.0.2:6000,gpu-box:50052 ")
    assert config.rpc == (Endpoint("gpu-box", 50052), Endpoint("10.0.0.2", 6000))
    assert config.with_values(rpc=config.rpc) == config  # typed: kept
    assert parse_rpc(["a:1", Endpoint("b", 2), "a:1"]) == (Endpoint("a", 1), Endpoint("b", 2))
    assert parse_rpc("") == ()
    for bad in ("just-a-name", "a:1,b:", "host:70000"):
        with pytest.raises(ConfigError, match=r"--rpc: .*host:port"):
            LaunchConfig().with_values(rpc=bad)


def test_the_command_line_gives_typed_values() -> None:
    args = parse_args(["--gpus", "2,0", "--rpc", "a:1,b:2", "--tensor_split", "3", "1"])
    given = given_options(vars(args))
    assert given == {
        "gpus": GpuSelection((0, 2)),
        "rpc": (Endpoint("a", 1), Endpoint("b", 2)),
        "tensor_split": (3.0, 1.0),
    }
    assert given_options(vars(parse_args(["--tensor-split", "3,1"])))["tensor_split"] == (3, 1)
    with pytest.raises(ConfigError, match="--tensor_split: expected numbers"):
        given_options(vars(parse_args(["--tensor_split", "3", "x"])))


def test_typed_fields_take_no_text() -> None:
    """Text goes through from_mapping / with_values; the constructor takes typed values."""
    with pytest.raises(TypeError, match="from_mapping or with_values"):
        LaunchConfig(tensor_split="3,1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GpuSelection"):
        LaunchConfig(gpus="0,2")  # type: ignore[arg-type]


def test_saved_and_shown_values_keep_their_text_spelling() -> None:
    """The settings file, a .kcpps's extra key and --show-config --json write the values as
    before the values were typed: the same strings."""
    config = LaunchConfig().with_values(gpus="2, 0", rpc="a:1, b:2", tensor_split="3 1")
    saved = config.to_dict()
    assert (saved["gpus"], saved["rpc"], saved["tensor_split"]) == ("0,2", "a:1,b:2", "3,1")
    assert LaunchConfig().to_dict() | {"blasbatchsize": 512} == {
        "blasbatchsize": 512, "batchpolicy": "koboldcpp", "ubatch": 512, "contextsize": 4096,
        "gpulayers": -1, "gpus": "all", "maingpu": -1, "rpc": "", "tensor_split": "",
        "splitmode": "layer", "kvtype": "f16", "kvoffload": "on", "vrammargin": 512,
        "threads": 0, "flashattention": "auto", "parallel": 0,
    }  # fmt: skip
    assert LaunchConfig.from_mapping(saved) == config
    shown = resolve_launch(config.with_values(rpc=""), None, None, False).to_json()
    assert shown["options"]["tensor_split"] == "3,1" and shown["effective"]["gpus"] == "0,2"
    assert json.loads(json.dumps(shown)) == shown  # plain JSON


OLD_SETTINGS = {  # as kobold-gui wrote it before the values were typed (commit 0c27576)
    "version": 1,
    "recent": [
        {
            "path": "/models/a.gguf",
            "last_used": 1700000000.0,
            "launch": {
                "blasbatchsize": 300, "batchpolicy": "koboldcpp", "ubatch": 512,
                "contextsize": 8192, "gpulayers": 20, "gpus": "0,2", "maingpu": 2,
                "rpc": "gpu-box:50052", "tensor_split": "3,1", "splitmode": "layer",
                "kvtype": "q8_0", "kvoffload": "on", "vrammargin": 512, "threads": 0,
                "flashattention": "on",
            },
        }
    ],
    "last_launch": {"gpus": "none", "tensor_split": "", "rpc": ""},
    "models_folder": None,
}  # fmt: skip


def test_an_old_settings_file_loads_into_typed_values_and_saves_the_same(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(OLD_SETTINGS))
    settings, warning = SettingsStore(path).load()
    assert warning is None
    config = settings.launch_for(Path("/models/a.gguf"))
    assert config.gpus == GpuSelection((0, 2)) and config.maingpu == 2
    assert config.rpc == (Endpoint("gpu-box", 50052),)
    assert config.tensor_split == (3.0, 1.0) and config.blasbatchsize == 300
    other = settings.launch_for(Path("/models/other.gguf"))  # the last launch
    assert other.gpus == NO_GPUS and other.tensor_split == () and other.rpc == ()
    settings.remember(Path("/models/a.gguf"), config)
    SettingsStore(path).save(settings)
    written = json.loads(path.read_text())
    old_launch = OLD_SETTINGS["recent"][0]["launch"]  # type: ignore[index]
    assert written["recent"][0]["launch"] == old_launch | {"parallel": 0}  # automatic, added


def test_a_bad_value_in_the_settings_file_falls_back_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    bad = {"version": 1, "recent": [{"path": "/m.gguf", "launch": {"tensor_split": "a,b"}}],
           "last_launch": {"gpus": "1", "tensor_split": "1,1"}}  # fmt: skip
    path.write_text(json.dumps(bad))
    config = SettingsStore(path).load()[0].launch_for(Path("/m.gguf"))
    assert (config.gpus, config.tensor_split) == (GpuSelection((1,)), (1.0, 1.0))
