"""The one table of launch options. It drives the CLI flags, the JSON of --show-config,
the settings saved per model, and the ranges of the window's widgets.

A new launch option is added here (and as a field of LaunchConfig) and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kobold_gui.core.launch.batching import BLAS_STOPS, DEFAULT_BLAS, DEFAULT_POLICY, POLICIES
from kobold_gui.core.launch.values import (
    ALL_GPUS,
    ConfigError,
    GpuSelection,
    parse_gpus,
    parse_rpc,
    parse_tensor_split,
    rpc_text,
    split_text,
)
from kobold_gui.core.remote.probe import Endpoint

# ConfigError is defined with the typed values, and raised and caught under this name.
__all__ = [
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "ConfigError",
    "LaunchConfig",
    "Option",
    "Typed",
    "given_options",
]


@dataclass(frozen=True)
class Typed:
    """A launch value carried typed (core/launch/values.py): its parser, for text or an
    already typed value, and its spelling for the command line and the settings file."""

    parse: Callable[[Any], Any]
    text: Callable[[Any], str]


@dataclass(frozen=True)
class Option:
    name: str  # field of LaunchConfig and key in JSON / saved settings
    kind: type  # int, str, or the type carried (GpuSelection, tuple)
    default: Any
    flag: str  # our CLI flag
    help: str
    kobold_flag: str | None = None  # KoboldCPP's spelling, when it has the option
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None
    # How the window's launch panel shows it (no label: edited elsewhere, e.g. the GPUs tab).
    label: str | None = None
    texts: Mapping[str, str] = field(default_factory=dict)  # choice -> what the user reads
    special: str | None = None  # shown for the minimum value ("auto")
    step: int = 1
    suffix: str = ""
    gpu_only: bool = False  # meaningless without a GPU to offload to
    typed: Typed | None = None  # parsed into a typed value (GPUs, machines, split)

    def parse(self, value: Any) -> Any:
        """Convert and validate a value from the CLI, a settings file or a widget."""
        if self.typed is not None:
            return self.typed.parse(value)
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ConfigError(f"{self.flag}: expected a whole number, got {value!r}")
            try:
                number = int(value)
            except ValueError:
                raise ConfigError(f"{self.flag}: expected a whole number, got {value!r}") from None
            if self.minimum is not None and number < self.minimum:
                raise ConfigError(f"{self.flag}: {number} is below the minimum {self.minimum}")
            if self.maximum is not None and number > self.maximum:
                raise ConfigError(f"{self.flag}: {number} is above the maximum {self.maximum}")
            return number
        text = str(value).strip()
        if self.choices is not None and text not in self.choices:
            raise ConfigError(f"{self.flag}: {text!r} is not one of {', '.join(self.choices)}")
        return text

    def text(self, value: Any) -> Any:
        """The value as the settings file, a .kcpps's extra key and --show-config write it."""
        return self.typed.text(value) if self.typed is not None else value


# fmt: off
OPTIONS: tuple[Option, ...] = (
    Option("blasbatchsize", int, DEFAULT_BLAS, "--blasbatchsize",
           "BLAS batch size B: prompt tokens per llama_decode call. The batch policy turns it "
           f"into n_batch and n_ubatch. Slider stops: {', '.join(map(str, BLAS_STOPS))}.",
           kobold_flag="--blasbatchsize", minimum=1, maximum=max(BLAS_STOPS),
           label="BLAS batch"),
    Option("batchpolicy", str, DEFAULT_POLICY, "--batch-policy",
           "How B becomes (n_batch, n_ubatch): koboldcpp = ubatch capped at 1024; "
           "tied = ubatch = B; custom = --ubatch; measured = the benchmark's pick.",
           choices=tuple(POLICIES), label="Batch policy",
           texts={p.name: p.title for p in POLICIES.values()}),
    Option("ubatch", int, 512, "--ubatch",
           "n_ubatch for the custom batch policy (n_batch is the BLAS size).",
           minimum=1, maximum=max(BLAS_STOPS), label="n_ubatch (custom)"),
    Option("contextsize", int, 4096, "--contextsize",
           "Context size in tokens (llama.cpp rounds it up to a multiple of 256).",
           kobold_flag="--contextsize", minimum=256, maximum=1 << 20, label="Context size",
           step=256),
    Option("gpulayers", int, -1, "--gpulayers",
           "Layers to offload to the GPU: -1 automatic (all, until the memory plan decides), "
           "0 none; more than the model has means all, the output layer included.",
           kobold_flag="--gpulayers", minimum=-1, maximum=999, label="GPU layers",
           special="auto", gpu_only=True),
    Option("gpus", GpuSelection, ALL_GPUS, "--gpus",
           "Which GPUs of this machine the model may use: all, none, or NVML indices like "
           "0,2 (see --list-gpus).", typed=Typed(parse_gpus, str)),
    Option("maingpu", int, -1, "--maingpu",
           "The main GPU (NVML index) for small tensors and results; -1 = the first one used.",
           kobold_flag="--maingpu", minimum=-1, maximum=63),
    Option("rpc", tuple, (), "--rpc",
           "Other machines' devices, through llama.cpp's RPC servers: host:port,host:port "
           "(llama-server's flag). They come first in the device list, before this machine's "
           "GPUs. Start a server with kobold-gui --rpc-server.",
           typed=Typed(parse_rpc, rpc_text)),
    Option("tensor_split", tuple, (), "--tensor_split",
           "How the offloaded layers are shared between the devices used (remote ones first), "
           "e.g. 3,1 (or 3 1); empty = in proportion to free memory.",
           kobold_flag="--tensor_split", typed=Typed(parse_tensor_split, split_text)),
    Option("splitmode", str, "layer", "--splitmode",
           "layer: whole layers per GPU, one GPU after another; tensor: each layer's matrices "
           "split across the GPUs, which work at once (needs flash attention and 2+ devices); "
           "row: each matrix split by rows (not in CUDA builds); none: main GPU only.",
           choices=("layer", "tensor", "row", "none"), label="Split mode",
           texts={"layer": "by layer", "tensor": "by tensor (GPUs at once)", "row": "by row",
                  "none": "main GPU only"},
           gpu_only=True),
    Option("kvtype", str, "f16", "--kvtype",
           "KV cache type: f16, q8_0 or q4_0 (quantized types need flash attention).",
           choices=("f16", "q8_0", "q4_0"), label="KV cache",
           texts={"q8_0": "q8_0 (about half)", "q4_0": "q4_0 (a quarter)"}),
    Option("kvoffload", str, "on", "--kv-offload",
           "Keep the KV cache with its layers on the GPU (on), or in RAM (off, KoboldCPP's "
           "--lowvram): less VRAM, slower.",
           choices=("on", "off"), label="KV cache place",
           texts={"on": "on the GPU", "off": "in RAM (low VRAM)"}, gpu_only=True),
    Option("vrammargin", int, 512, "--vram-margin",
           "MiB kept free on each GPU when planning automatic layers.",
           minimum=0, maximum=65536, label="VRAM margin", step=256, suffix=" MiB",
           gpu_only=True),
    Option("threads", int, 0, "--threads",
           "CPU threads; 0 = automatic (about the physical cores); at most the logical CPUs.",
           kobold_flag="--threads", minimum=0, maximum=1024, label="Threads", special="auto"),
    Option("flashattention", str, "auto", "--flashattention",
           "Flash attention: auto (llama.cpp decides per device), on or off.",
           kobold_flag="--flashattention", choices=("auto", "on", "off"),
           label="Flash attention", texts={"auto": "auto (llama.cpp decides)"}),
    Option("parallel", int, 0, "--parallel",
           "Requests generated at once, for the local API and the window's chat (continuous "
           "batching in one context; llama.cpp's n_seq_max; KoboldCPP's --parallelrequests): "
           "0 = automatic (1 when any layer runs on the CPU; with every layer on GPUs the "
           "largest of 8, 4, 2 that fits), 1 = one at a time, the others queue. Not "
           "--multiuser, which is how many may wait. The requests share the context.",
           kobold_flag="--parallelrequests", minimum=0, maximum=256,
           label="Parallel requests", special="auto"),
)
# fmt: on
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class LaunchConfig:
    """How a model is loaded. Values are validated and typed (text comes in through
    from_mapping and with_values); effective values are derived elsewhere."""

    blasbatchsize: int = DEFAULT_BLAS
    batchpolicy: str = DEFAULT_POLICY
    ubatch: int = 512
    contextsize: int = 4096
    gpulayers: int = -1
    gpus: GpuSelection = ALL_GPUS
    maingpu: int = -1
    rpc: tuple[Endpoint, ...] = ()  # remote machines, their devices first
    tensor_split: tuple[float, ...] = ()  # shares per device; () = by free memory
    splitmode: str = "layer"
    kvtype: str = "f16"
    kvoffload: str = "on"
    vrammargin: int = 512
    threads: int = 0
    flashattention: str = "auto"
    parallel: int = 0  # 0: automatic (core/launch/parallel.py)

    def __post_init__(self) -> None:
        for option in OPTIONS:
            if option.typed is not None and not isinstance(getattr(self, option.name), option.kind):
                raise TypeError(
                    f"LaunchConfig.{option.name} takes a {option.kind.__name__}: text goes "
                    "through LaunchConfig.from_mapping or with_values"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, strict: bool = True) -> LaunchConfig:
        """Build from a mapping of option names. Unknown keys are an error when strict,
        and ignored otherwise (a settings file written by a newer version)."""
        unknown = set(values) - set(OPTIONS_BY_NAME)
        if unknown and strict:
            raise ConfigError(f"unknown launch option(s): {', '.join(sorted(unknown))}")
        parsed = {
            name: OPTIONS_BY_NAME[name].parse(value)
            for name, value in values.items()
            if name in OPTIONS_BY_NAME and value is not None
        }
        return cls(**parsed)

    def with_values(self, **values: Any) -> LaunchConfig:
        parsed = {name: OPTIONS_BY_NAME[name].parse(v) for name, v in values.items()}
        return replace(self, **parsed)

    def to_dict(self) -> dict[str, Any]:
        """Every option by name, as text where the value is typed ("0,2", "3,1"): the
        settings file's format, and --show-config's."""
        return {o.name: o.text(getattr(self, o.name)) for o in OPTIONS}

    def resolved_threads(self) -> int:
        """0 means automatic: about the physical cores (llama.cpp's own default), taken as
        half the logical CPUs on machines with 4 or more, all of them on smaller ones; at
        most the logical CPUs."""
        logical = os.cpu_count() or 1
        if self.threads:
            # More threads than logical CPUs only wait on each other (llama.cpp's threads
            # spin at every barrier): use them all, and the CLI and the window say so.
            return min(self.threads, logical)
        return logical // 2 if logical >= 4 else logical


def given_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The launch options among parsed command-line values (argparse's namespace as a dict):
    those given, by option name, validated. Every option in the table counts (a list, as
    --tensor_split 3 1 gives, is read by the typed value's parser)."""
    given = {o.name: values[o.name] for o in OPTIONS if values.get(o.name) is not None}
    return {name: OPTIONS_BY_NAME[name].parse(value) for name, value in given.items()}


def _check_table_matches_config() -> None:
    names = [f.name for f in fields(LaunchConfig)]
    if names != [o.name for o in OPTIONS]:
        raise AssertionError("OPTIONS and LaunchConfig fields disagree")
    for option in OPTIONS:
        if getattr(LaunchConfig(), option.name) != option.default:
            raise AssertionError(f"default of {option.name} differs from the table")


_check_table_matches_config()
