"""The llama.cpp backend of this build: initialized once, with its log captured first."""

from __future__ import annotations

import llama_cpp

from kobold_gui.core.llama.log import install_log_capture
from kobold_gui.core.llama.types import BackendInfo

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
    gpu = _has_local_gpu()
    name = "CPU"
    for candidate in ("CUDA", "ROCm", "HIP", "Metal", "Vulkan", "SYCL", "OpenCL"):
        if candidate in system:
            name = candidate
            break
    return BackendInfo(name, gpu, llama_cpp.__version__, system.strip())


def _has_local_gpu() -> bool:
    """A GPU of this machine. Not llama_supports_gpu_offload(): with the RPC backend built
    in, that is true on every machine (other machines' GPUs could be added)."""
    import ctypes

    from kobold_gui.core.llama.ggml import libggml

    by_type = libggml().ggml_backend_dev_by_type
    by_type.restype = ctypes.c_void_p
    by_type.argtypes = [ctypes.c_int]
    return bool(by_type(1) or by_type(2))  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU
