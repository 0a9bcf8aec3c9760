"""The llama.cpp backend of this build: initialized once, with its log captured first and
its backend modules loaded (a build with GGML_BACKEND_DL, see backends.py)."""

from __future__ import annotations

import threading

import llama_cpp

from kobold_gui.core.llama.log import install_log_capture
from kobold_gui.core.llama.types import BackendInfo, BackendLoad

_lock = threading.Lock()
_loaded: BackendLoad | None = None


def init_backend() -> BackendLoad:
    """Capture llama.cpp's log, load ggml's backend modules, then initialize llama.cpp; once
    per process, before any device query or model load. Returns what was loaded."""
    global _loaded
    with _lock:
        if _loaded is None:
            from kobold_gui.core.llama.backends import load_backends
            from kobold_gui.core.llama.ggml import libggml, library_folder

            install_log_capture()
            loaded = load_backends(libggml(), library_folder())
            llama_cpp.llama_backend_init()
            _loaded = loaded
        return _loaded


def backend_info() -> BackendInfo:
    loaded = init_backend()
    system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    gpu = _has_local_gpu()
    return BackendInfo(_name(loaded, system), gpu, llama_cpp.__version__, system.strip(), loaded)


def _name(loaded: BackendLoad, system: str) -> str:
    """The GPU backend that runs (the first with a device: llama.cpp keeps the first
    backend's device of a card seen by two), else CPU. A build with its backends linked in
    says which in its system info."""
    if loaded.dynamic:
        return " + ".join(g.backend for g in loaded.gpu if g.devices) or "CPU"
    for candidate in ("CUDA", "ROCm", "HIP", "Metal", "Vulkan", "SYCL", "OpenCL"):
        if candidate in system:
            return candidate
    return "CPU"


def _has_local_gpu() -> bool:
    """A GPU of this machine. Not llama_supports_gpu_offload(): with the RPC backend built
    in, that is true on every machine (other machines' GPUs could be added)."""
    import ctypes

    from kobold_gui.core.llama.ggml import libggml

    by_type = libggml().ggml_backend_dev_by_type
    by_type.restype = ctypes.c_void_p
    by_type.argtypes = [ctypes.c_int]
    return bool(by_type(1) or by_type(2))  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU
