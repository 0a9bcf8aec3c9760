"""Why a GPU backend module of this build gives no GPU, in words for the user.

A build with its backends loaded at run time carries a module per GPU backend
(libggml-cuda.so, libggml-vulkan.so, ...). On a machine without the matching driver the module
either fails to load (the dynamic loader cannot find libcuda.so.1 or libvulkan.so.1) or loads
and finds no device (a driver older than the CUDA runtime the module was built with, or only
CPU renderers for Vulkan). Each case is told apart here, with the versions where they matter,
so that "running on the CPU" always comes with its reason."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

from kobold_gui.core.llama.types import GpuBackend

# ggml's module file stem -> the name its backend registers.
BACKEND_NAMES = {
    "cuda": "CUDA", "vulkan": "Vulkan", "hip": "ROCm", "sycl": "SYCL", "metal": "Metal",
    "opencl": "OpenCL", "musa": "MUSA", "cann": "CANN", "virtgpu": "VirtGPU",
}  # fmt: skip
# The oldest Linux driver each CUDA major version runs on (NVIDIA's CUDA release notes,
# "minor version compatibility": a build of CUDA X.y needs the X.0 driver or newer).
CUDA_MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
NO_NVIDIA_DRIVER = "no NVIDIA driver found (libcuda.so.1 is not installed)"
NO_VULKAN_LOADER = (
    "no Vulkan loader found (libvulkan.so.1): install your system's Vulkan loader "
    "(libvulkan1) and your GPU's Vulkan driver"
)
NO_VULKAN_GPU = "no GPU with a Vulkan driver found (CPU renderers such as lavapipe are not used)"


def is_gpu_module(backend: str) -> bool:
    return backend in BACKEND_NAMES


def loader_problem(backend: str, error: str) -> str:
    """The dynamic loader's error for a GPU module, said as what the user lacks."""
    if re.search(r"\blibcuda\.so|nvcuda\.dll", error):
        return NO_NVIDIA_DRIVER
    if re.search(r"\blibvulkan\.so|vulkan-1\.dll", error):
        return NO_VULKAN_LOADER
    runtime = re.match(r"((?:lib)?(?:cudart|cublasLt|cublas)[^:\s]*): cannot open", error)
    if runtime:
        return (
            f"{runtime.group(1)} is missing beside the CUDA module (the CUDA runtime travels "
            "with kobold-gui: this copy is incomplete, reinstall it)"
        )
    if re.search(r"libamdhip64|librocblas|libhipblas", error):
        return "no ROCm runtime found (AMD's HIP libraries are not installed)"
    return error


def no_device_problem(backend: str) -> str:
    """A GPU module that loaded but registered no device."""
    if backend == "cuda":
        return cuda_driver_problem(cuda_driver_version(), cuda_runtime_version())
    if backend == "vulkan":
        return NO_VULKAN_GPU
    return "no device found"


def cuda_driver_problem(driver: int | None, runtime: int | None) -> str:
    """Why CUDA found no GPU, from the driver's CUDA version and the module's runtime version
    (CUDA's integers: 12040 is 12.4)."""
    if driver is None:
        return NO_NVIDIA_DRIVER
    if runtime is not None and driver // 1000 < runtime // 1000:
        need = CUDA_MIN_DRIVER.get(runtime // 1000, "newer")
        have = nvidia_driver_release()
        return (
            f"the NVIDIA driver{f' {have}' if have else ''} supports CUDA {_cuda(driver)}, "
            f"older than the CUDA {_cuda(runtime)} this build needs: update the driver to "
            f"{need} or newer"
        )
    return f"no NVIDIA GPU found (driver for CUDA {_cuda(driver)})"


def gpu_statuses(
    files: list[tuple[str, str, str | None]], devices: dict[str, int]
) -> tuple[GpuBackend, ...]:
    """One status per GPU module: `files` holds (backend, file name, loader error or None
    where loaded); `devices` the device count of each registered backend by its name."""
    statuses = []
    for backend, name, error in files:
        if not is_gpu_module(backend):
            continue
        label = BACKEND_NAMES[backend]
        count = devices.get(label, 0) if error is None else 0
        if error is not None:
            problem = loader_problem(backend, error)
        elif count == 0:
            problem = no_device_problem(backend)
        else:
            problem = ""
        statuses.append(GpuBackend(label, name, count, problem))
    return tuple(statuses)


def cuda_driver_version() -> int | None:
    """The CUDA version the installed NVIDIA driver supports (cuDriverGetVersion), or None
    without a driver."""
    for name in ("libcuda.so.1", "nvcuda.dll", "libcuda.dylib"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            return int(version.value)
    return None


def cuda_runtime_version() -> int | None:
    """The version of the CUDA runtime that the CUDA module loaded."""
    cudart = loaded_cudart()
    if cudart is None:
        return None
    version = ctypes.c_int(0)
    if cudart.cudaRuntimeGetVersion(ctypes.byref(version)) != 0:
        return None
    return int(version.value) or None


def nvidia_driver_release() -> str:
    """The kernel driver's release ("580.159"), from /proc on Linux; "" elsewhere."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return ""
    match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else ""


def loaded_cudart() -> ctypes.CDLL | None:
    """The CUDA runtime that ggml-cuda loaded, if any, found in this process's mappings: the
    one beside the module (a bundle) or the toolkit's (a source build)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if re.search(r"/libcudart\.so[.\d]*$", path):
            return ctypes.CDLL(path)
    return None


def _cuda(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"
