from __future__ import annotations

import pytest

from kobold_gui.cli import parse_args
from kobold_gui.core.launch.options import OPTIONS, ConfigError, LaunchConfig, Option, given_options
from kobold_gui.core.launch.resolve import resolve_gpu_layers, resolve_launch


def _other_value(option: Option) -> str:
    """A valid value that differs from the default, as a user would type it."""
    if option.name == "gpus":
        return "0,1"
    if option.name == "tensor_split":
        return "3,1"
    if option.name == "rpc":
        return "192.168.1.20:50052,192.168.1.21:50052"
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
