"""The llama.cpp backend of this build: initialized once, with its log captured first."""

from __future__ import annotations

import llama_cpp

from kobold_gui.core.engine_types import BackendInfo
from kobold_gui.core.llama_log import install_log_capture

_backend_ready = False


def init_backend() -> None:
    """Capture llama.cpp's log, then initialize its backends; once per process."""
    global _backend_ready
    if not _backend_ready:
        install_log_capture()
        llama_cpp.llama_backend_init()
        _backend_ready = True


def backend_info() -> BackendInfo:
    init_backend()
    system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    name = "CPU"
    for candidate in ("CUDA", "ROCm", "HIP", "Metal", "Vulkan", "SYCL", "OpenCL"):
        if candidate in system:
            name = candidate
            break
    return BackendInfo(name, gpu, llama_cpp.__version__, system.strip())
