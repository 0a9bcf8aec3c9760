"""The devices llama.cpp's backends report (ggml's backend registry), through ctypes.

llama-cpp-python binds llama.h but not ggml-backend.h's device registry; these few functions
are read from the libggml that llama-cpp-python already loaded. The PCI bus id of a GPU
device matches it with NVML's view (their numbering can differ)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator", 4: "meta"}


class _Caps(ctypes.Structure):
    _fields_ = [
        ("async_", ctypes.c_bool),
        ("host_buffer", ctypes.c_bool),
        ("buffer_from_host_ptr", ctypes.c_bool),
        ("events", ctypes.c_bool),
    ]


class _Props(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("description", ctypes.c_char_p),
        ("memory_free", ctypes.c_size_t),
        ("memory_total", ctypes.c_size_t),
        ("type", ctypes.c_int),
        ("device_id", ctypes.c_char_p),
        ("caps", _Caps),
    ]


@dataclass(frozen=True)
class BackendDevice:
    index: int  # position in ggml's registry
    name: str  # "CUDA0", "CPU", ...
    description: str
    kind: str  # CPU, GPU, iGPU, accelerator
    memory_free: int
    memory_total: int
    pci_bus_id: str | None
    handle: int  # ggml_backend_dev_t, for llama_model_params.devices


def _lib() -> Any:
    import llama_cpp  # noqa: F401  (loads the libraries and registers the backends)
    from llama_cpp._ggml import libggml

    lib = libggml
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get_props.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Props)]
    lib.ggml_backend_dev_get_props.restype = None
    return lib


def backend_devices() -> list[BackendDevice]:
    """Every device of every backend in this llama.cpp build (the CPU included)."""
    from kobold_gui.core.backend import init_backend

    init_backend()
    lib = _lib()
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        handle = lib.ggml_backend_dev_get(i)
        props = _Props()
        lib.ggml_backend_dev_get_props(handle, ctypes.byref(props))
        devices.append(
            BackendDevice(
                index=i,
                name=(props.name or b"").decode(errors="replace"),
                description=(props.description or b"").decode(errors="replace"),
                kind=DEVICE_TYPES.get(props.type, str(props.type)),
                memory_free=int(props.memory_free),
                memory_total=int(props.memory_total),
                pci_bus_id=props.device_id.decode().lower() if props.device_id else None,
                handle=int(handle),
            )
        )
    return devices
