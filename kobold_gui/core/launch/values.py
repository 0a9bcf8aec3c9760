"""The launch values that are more than a number or a word: which local GPUs, which remote
machines, and the tensor split.

Each is parsed once, where it comes in (a CLI flag, the settings file, a .kcpps, a widget),
by the parsers here; LaunchConfig and everything after it carry the typed value, and nothing
inside reads it from text again. The `*_text` functions give back the spelling the command
line, the settings file and `--show-config` use ("0,2", "a:1,b:2", "3,1").

A parser takes the text, or a value already typed (a widget's tuple), which it checks;
what it refuses raises ConfigError, whose message names the flag and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kobold_gui.core.remote.probe import Endpoint, RpcError, parse_endpoint, parse_endpoints


class ConfigError(ValueError):
    """A launch setting the user gave is not valid; the message says which and why."""


@dataclass(frozen=True)
class GpuSelection:
    """The local GPUs a launch may use: all of them (indices None), none (indices (): the
    CPU, and remote machines' devices), or these NVML indices, sorted and distinct."""

    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        wanted = self.indices
        if wanted is not None and (
            list(wanted) != sorted(set(wanted)) or min(wanted, default=0) < 0
        ):
            raise ConfigError(f"--gpus: indices must be distinct, sorted and >= 0, not {wanted}")

    @property
    def is_all(self) -> bool:
        return self.indices is None

    @property
    def is_none(self) -> bool:
        return self.indices == ()

    def allows(self, index: int) -> bool:
        return self.indices is None or index in self.indices

    def __str__(self) -> str:
        if self.indices is None:
            return "all"
        return ",".join(map(str, self.indices)) if self.indices else "none"


ALL_GPUS = GpuSelection()
NO_GPUS = GpuSelection(())


def parse_gpus(value: object) -> GpuSelection:
    """'all' (or ''), 'none', or distinct indices in any order ('2, 0' -> GPUs 0 and 2)."""
    if isinstance(value, GpuSelection):
        return value
    text = str(value).strip()
    if text.lower() in ("", "all"):
        return ALL_GPUS
    if text.lower() == "none":
        return NO_GPUS
    try:
        indices = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--gpus: expected 'all' or indices like 0,1, got {text!r}") from None
    if not indices or indices[0] < 0:
        raise ConfigError(f"--gpus: expected 'all' or indices like 0,1, got {text!r}")
    return GpuSelection(tuple(indices))


def parse_tensor_split(value: object) -> tuple[float, ...]:
    """Shares per device: '3 1', '3,1', '3, 1', KoboldCPP's --tensor_split 3 1 (a list of
    words) or numbers -> (3.0, 1.0); '' or () -> () (automatic: by free memory). Shares
    are finite and >= 0, one of them > 0."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(v, str) for v in value):
            return parse_tensor_split(" ".join(value))
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"--tensor_split: expected numbers like 3,1, got {value!r}")
        return _checked_shares(tuple(float(v) for v in value))
    text = str(value).strip()
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        shares = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--tensor_split: expected numbers like 3,1, got {text!r}") from None
    return _checked_shares(shares)


def _checked_shares(shares: tuple[float, ...]) -> tuple[float, ...]:
    if not shares:
        return ()
    if not all(math.isfinite(s) for s in shares):
        raise ConfigError("--tensor_split: shares must be finite numbers")
    if any(s < 0 for s in shares):
        raise ConfigError("--tensor_split: shares cannot be negative")
    if not any(shares):
        raise ConfigError("--tensor_split: at least one share must be above zero")
    return shares


def parse_rpc(value: object) -> tuple[Endpoint, ...]:
    """'a:1, b:2' (llama-server's --rpc), or a sequence of addresses -> the machines, in
    order, without repeats."""
    try:
        if isinstance(value, Sequence) and not isinstance(value, str):
            out: list[Endpoint] = []
            for item in value:
                endpoint = item if isinstance(item, Endpoint) else parse_endpoint(str(item))
                if endpoint not in out:
                    out.append(endpoint)
            return tuple(out)
        return parse_endpoints(str(value))
    except RpcError as e:
        raise ConfigError(f"--rpc: {e}") from None


def split_text(shares: tuple[float, ...]) -> str:
    return ",".join(f"{s:g}" for s in shares)


def rpc_text(endpoints: tuple[Endpoint, ...]) -> str:
    return ",".join(map(str, endpoints))
