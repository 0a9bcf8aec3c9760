"""Plain data about llama.cpp's build, for every floor above it (hardware, engine, window)
without loading the library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LlamaError(RuntimeError):
    """llama.cpp or ggml refused or failed; the message says why, in words for the user.
    The engine turns it into its own EngineError where a load or reply meets it."""


@dataclass(frozen=True)
class ModuleFailure:
    """A backend module of the lib folder that this process did not load, and why."""

    file: str  # libggml-cuda.so, libggml-cpu-skylakex.so, ...
    reason: str


@dataclass(frozen=True)
class GpuBackend:
    """A GPU backend module of this build on this machine: how many devices it found, or
    why it gives none (core/llama/gpu_status.py words it)."""

    backend: str  # CUDA, Vulkan, ROCm, ...
    file: str  # libggml-cuda.so
    devices: int
    problem: str = ""  # "" when it runs

    @property
    def summary(self) -> str:
        if self.problem:
            return f"{self.backend}: {self.problem}"
        return f"{self.backend}: {self.devices} device{'s' if self.devices != 1 else ''}"


@dataclass(frozen=True)
class BackendLoad:
    """ggml's backends as this process got them. A build with GGML_BACKEND_DL loads them at
    start from llama-cpp-python's lib folder (`dynamic`); one without has them linked in."""

    dynamic: bool = False
    registered: tuple[str, ...] = ()  # ggml's backend names: CPU, RPC, CUDA, ...
    loaded: tuple[str, ...] = ()  # module files loaded at run time
    not_loaded: tuple[ModuleFailure, ...] = ()
    cpu_variant: str = ""  # haswell, skylakex, ... ("" where the CPU backend is linked in)
    gpu: tuple[GpuBackend, ...] = ()  # one per GPU module of the build
    skipped: tuple[str, ...] = ()  # modules left out on purpose (KOBOLD_GUI_SKIP_BACKENDS)

    def to_json(self) -> dict[str, Any]:
        return {
            "dynamic": self.dynamic,
            "registered": list(self.registered),
            "loaded": list(self.loaded),
            "not_loaded": {f.file: f.reason for f in self.not_loaded},
            "cpu_variant": self.cpu_variant or ("built in" if not self.dynamic else ""),
            "gpu": {g.backend: g.summary.split(": ", 1)[1] for g in self.gpu},
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class BackendInfo:
    """The installed llama.cpp build: its backend, whether it can offload to a GPU, versions."""

    name: str  # CPU, CUDA, Metal, Vulkan, ...
    gpu_offload: bool
    llama_cpp_python: str
    system_info: str
    backends: BackendLoad = BackendLoad()
