"""The one table of launch options. It drives the CLI flags, the JSON of --show-config,
the settings saved per model, and the ranges of the window's widgets.

A new launch option is added here (and as a field of LaunchConfig) and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from kobold_gui.core.launch.batching import BLAS_STOPS, DEFAULT_BLAS, DEFAULT_POLICY, POLICIES


class ConfigError(ValueError):
    """A launch setting the user gave is not valid; the message says which and why."""


def parse_gpu_list(text: str) -> str:
    """'all', 'none' (no local GPU: the CPU, and remote devices with --rpc) or a comma list
    of distinct GPU indices, normalized ('2, 0' -> '0,2')."""
    if text.lower() in ("", "all"):
        return "all"
    if text.lower() == "none":
        return "none"
    try:
        indices = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--gpus: expected 'all' or indices like 0,1, got {text!r}") from None
    if not indices or indices[0] < 0:
        raise ConfigError(f"--gpus: expected 'all' or indices like 0,1, got {text!r}")
    return ",".join(map(str, indices))


def parse_tensor_split(text: str) -> str:
    """'3 1', '3,1', '3, 1' -> '3,1'; '' -> '' (by free memory). Shares are >= 0, one > 0."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        return ""
    try:
        shares = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--tensor_split: expected numbers like 3,1, got {text!r}") from None
    if any(s < 0 for s in shares):
        raise ConfigError("--tensor_split: shares cannot be negative")
    if not any(shares):
        raise ConfigError("--tensor_split: at least one share must be above zero")
    return ",".join(f"{s:g}" for s in shares)


def parse_rpc(text: str) -> str:
    """'a:1, b:2' -> 'a:1,b:2': remote machines as llama-server's --rpc takes them."""
    from kobold_gui.core.remote.probe import RpcError, parse_endpoints

    try:
        return ",".join(parse_endpoints(text))
    except RpcError as e:
        raise ConfigError(f"--rpc: {e}") from None


def rpc_endpoints(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split(",") if p)


def tensor_split_values(value: str) -> tuple[float, ...] | None:
    return tuple(float(p) for p in value.split(",")) if value else None


def gpu_indices(value: str) -> tuple[int, ...] | None:
    """None for all GPUs, else the chosen indices (none: an empty tuple)."""
    if value == "none":
        return ()
    return None if value == "all" else tuple(int(p) for p in value.split(","))


@dataclass(frozen=True)
class Option:
    name: str  # field of LaunchConfig and key in JSON / saved settings
    kind: type  # int, str or float
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

    def parse(self, value: Any) -> Any:
        """Convert and validate a value from the CLI, a settings file or a widget."""
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
        if self.name == "gpus":
            return parse_gpu_list(text)
        if self.name == "tensor_split":
            return parse_tensor_split(text)
        if self.name == "rpc":
            return parse_rpc(text)
        if self.choices is not None and text not in self.choices:
            raise ConfigError(f"{self.flag}: {text!r} is not one of {', '.join(self.choices)}")
        return text


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
    Option("gpus", str, "all", "--gpus",
           "Which GPUs of this machine the model may use: all, none, or NVML indices like "
           "0,2 (see --list-gpus)."),
    Option("maingpu", int, -1, "--maingpu",
           "The main GPU (NVML index) for small tensors and results; -1 = the first one used.",
           kobold_flag="--maingpu", minimum=-1, maximum=63),
    Option("rpc", str, "", "--rpc",
           "Other machines' devices, through llama.cpp's RPC servers: host:port,host:port "
           "(llama-server's flag). They come first in the device list, before this machine's "
           "GPUs. Start a server with kobold-gui --rpc-server."),
    Option("tensor_split", str, "", "--tensor_split",
           "How the offloaded layers are shared between the devices used (remote ones first), "
           "e.g. 3,1 (or 3 1); empty = in proportion to free memory.",
           kobold_flag="--tensor_split"),
    Option("splitmode", str, "layer", "--splitmode",
           "layer: whole layers per GPU; row: each matrix split by rows; none: main GPU only.",
           choices=("layer", "row", "none"), label="Split mode",
           texts={"layer": "by layer", "row": "by row", "none": "main GPU only"},
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
           "CPU threads; 0 = automatic (about the physical cores).",
           kobold_flag="--threads", minimum=0, maximum=1024, label="Threads", special="auto"),
    Option("flashattention", str, "auto", "--flashattention",
           "Flash attention: auto (llama.cpp decides per device), on or off.",
           kobold_flag="--flashattention", choices=("auto", "on", "off"),
           label="Flash attention", texts={"auto": "auto (llama.cpp decides)"}),
)
# fmt: on
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class LaunchConfig:
    """How a model is loaded. Values are validated; effective values are derived elsewhere."""

    blasbatchsize: int = DEFAULT_BLAS
    batchpolicy: str = DEFAULT_POLICY
    ubatch: int = 512
    contextsize: int = 4096
    gpulayers: int = -1
    gpus: str = "all"
    maingpu: int = -1
    rpc: str = ""
    tensor_split: str = ""
    splitmode: str = "layer"
    kvtype: str = "f16"
    kvoffload: str = "on"
    vrammargin: int = 512
    threads: int = 0
    flashattention: str = "auto"

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
        return asdict(self)

    def resolved_threads(self) -> int:
        """0 means automatic: about the physical cores (llama.cpp's own default), taken as
        half the logical CPUs on machines with 4 or more, all of them on smaller ones."""
        if self.threads:
            return self.threads
        logical = os.cpu_count() or 1
        return logical // 2 if logical >= 4 else logical


def given_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The launch options among parsed command-line values (argparse's namespace as a dict):
    those given, by option name, validated. Every option in the table counts."""
    given = {o.name: values[o.name] for o in OPTIONS if values.get(o.name) is not None}
    if isinstance(given.get("tensor_split"), list):  # --tensor_split 3 1
        given["tensor_split"] = " ".join(str(s) for s in given["tensor_split"])
    return {name: OPTIONS_BY_NAME[name].parse(value) for name, value in given.items()}


def _check_table_matches_config() -> None:
    names = [f.name for f in fields(LaunchConfig)]
    if names != [o.name for o in OPTIONS]:
        raise AssertionError("OPTIONS and LaunchConfig fields disagree")
    for option in OPTIONS:
        if getattr(LaunchConfig(), option.name) != option.default:
            raise AssertionError(f"default of {option.name} differs from the table")


_check_table_matches_config()
