"""The devices llama.cpp's backends report (ggml's backend registry), through ctypes.

llama-cpp-python binds llama.h but not ggml-backend.h's device registry; these few functions
are read from the libggml that llama-cpp-python already loaded. The PCI bus id of a GPU
device matches it with NVML's view (their numbering can differ).

Asking a CUDA device for its properties (ggml_backend_dev_get_props) reads its free memory,
which creates a CUDA context (~0.5 GiB) on that card: on a GPU the model will not use, that
memory would be taken for nothing. So the name, description and type are read one by one,
and a CUDA device's PCI bus id from the CUDA runtime (cudaDeviceGetPCIBusId needs no
context); only devices of other backends, or when the runtime cannot be found, fall back to
the properties. Memory figures come from NVML, not from here."""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Any

from kobold_gui.core.hardware.nvml import normalize_bus_id
from kobold_gui.core.llama.gpu_status import loaded_cudart

DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator", 4: "meta"}


class _Caps(ctypes.Structure):
    _fields_ = [
        ("async_", ctypes.c_bool),
        ("host_buffer", ctypes.c_bool),
        ("buffer_from_host_ptr", ctypes.c_bool),
        ("events", ctypes.c_bool),
        ("mmap_support", ctypes.c_bool),
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
    memory_free: int  # 0 where not read (CUDA devices: NVML has it)
    memory_total: int
    pci_bus_id: str | None
    handle: int  # ggml_backend_dev_t, for llama_model_params.devices
    row_split: bool = False  # the backend offers a split buffer type (split mode "row")
    backend: str = ""  # the backend's registered name: CUDA, Vulkan, CPU, RPC, ...


def _lib() -> Any:
    import llama_cpp  # noqa: F401  (loads the libraries and registers the backends)

    from kobold_gui.core.llama.ggml import libggml

    lib = libggml()
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    lib.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_dev_get_props.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Props)]
    lib.ggml_backend_dev_get_props.restype = None
    return lib


def _cudart() -> Any | None:
    """The CUDA runtime that ggml-cuda loaded, if any, ready for cudaDeviceGetPCIBusId."""
    lib = loaded_cudart()
    if lib is not None:
        lib.cudaDeviceGetPCIBusId.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.cudaDeviceGetPCIBusId.restype = ctypes.c_int
    return lib


def _cuda_bus_id(cudart: Any, name: str) -> str | None:
    match = re.fullmatch(r"CUDA(\d+)", name)
    if cudart is None or match is None:
        return None
    buf = ctypes.create_string_buffer(64)
    if cudart.cudaDeviceGetPCIBusId(buf, 64, int(match.group(1))) != 0:
        return None
    return normalize_bus_id(buf.value.decode())


def backend_devices() -> list[BackendDevice]:
    """Every device of every backend in this llama.cpp build (the CPU included)."""
    from kobold_gui.core.llama.library import init_backend

    init_backend()
    lib = _lib()
    cudart = _cudart()
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        handle = lib.ggml_backend_dev_get(i)
        name = (lib.ggml_backend_dev_name(handle) or b"").decode(errors="replace")
        kind = DEVICE_TYPES.get(lib.ggml_backend_dev_type(handle), "?")
        reg = lib.ggml_backend_dev_backend_reg(handle)
        row_split = bool(
            lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_split_buffer_type")
        )
        bus, free, total = _cuda_bus_id(cudart, name), 0, 0
        if bus is None and kind != "CPU":
            props = _Props()
            lib.ggml_backend_dev_get_props(handle, ctypes.byref(props))
            bus = normalize_bus_id(props.device_id.decode()) if props.device_id else None
            free, total = int(props.memory_free), int(props.memory_total)
        devices.append(
            BackendDevice(
                index=i,
                name=name,
                description=(lib.ggml_backend_dev_description(handle) or b"").decode(
                    errors="replace"
                ),
                kind=kind,
                memory_free=free,
                memory_total=total,
                pci_bus_id=bus,
                handle=int(handle),
                row_split=row_split,
                backend=(lib.ggml_backend_reg_name(reg) or b"").decode(errors="replace"),
            )
        )
    return _first_of_each_card(devices)


def _first_of_each_card(devices: list[BackendDevice]) -> list[BackendDevice]:
    """One device per card, as llama.cpp keeps it: a card that two backends see (CUDA and
    Vulkan for one NVIDIA GPU) is used through the first backend loaded (CUDA)."""
    seen: set[str] = set()
    kept = []
    for device in devices:
        bus = device.pci_bus_id
        if device.kind in ("GPU", "iGPU") and bus is not None:
            if bus in seen:
                continue
            seen.add(bus)
        kept.append(device)
    return kept
