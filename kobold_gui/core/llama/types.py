"""Plain data about llama.cpp's build, for every floor above it (hardware, engine, window)
without loading the library."""

from __future__ import annotations

from dataclasses import dataclass


class LlamaError(RuntimeError):
    """llama.cpp or ggml refused or failed; the message says why, in words for the user.
    The engine turns it into its own EngineError where a load or reply meets it."""


@dataclass(frozen=True)
class BackendInfo:
    """The installed llama.cpp build: its backend, whether it can offload to a GPU, versions."""

    name: str  # CPU, CUDA, Metal, Vulkan, ...
    gpu_offload: bool
    llama_cpp_python: str
    system_info: str
