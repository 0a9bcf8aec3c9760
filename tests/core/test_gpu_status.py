"""Why a GPU module gives no GPU (core/llama/gpu_status.py), told from the dynamic loader's
real errors and CUDA's version numbers; the loading itself is tested in test_backend_modules
and, for Vulkan, on Mesa's CPU renderer in test_vulkan_module."""

from __future__ import annotations

from pathlib import Path

import pytest

from kobold_gui.core.llama.backends import why_not_loaded
from kobold_gui.core.llama.gpu_status import (
    NO_NVIDIA_DRIVER,
    NO_VULKAN_GPU,
    NO_VULKAN_LOADER,
    cuda_driver_problem,
    gpu_statuses,
    loader_problem,
)
from tests.core.test_backend_modules import compile_library, needs_cc


@needs_cc
def test_a_cuda_module_on_a_machine_without_the_driver_says_so(tmp_path: Path) -> None:
    """A module that needs libcuda.so.1, as ggml-cuda does, where no driver installed it: the
    real loader error, turned into words."""
    driver = tmp_path / "libcuda.so.1"
    compile_library(driver, "int cuInit(unsigned f){return (int)f;}", "-Wl,-soname,libcuda.so.1")
    module = compile_library(
        tmp_path / "libggml-cuda.so",
        "int cuInit(unsigned); int ggml_backend_init(void){return cuInit(0);}",
        str(driver),
    )
    driver.unlink()
    error = why_not_loaded(module)
    assert error.startswith("libcuda.so.1: cannot open shared object file"), error
    assert loader_problem("cuda", error) == NO_NVIDIA_DRIVER
    (status,) = gpu_statuses([("cuda", module.name, error)], {})
    assert status.summary == f"CUDA: {NO_NVIDIA_DRIVER}" and status.devices == 0


def test_loader_errors_name_what_is_missing() -> None:
    assert loader_problem("vulkan", "libvulkan.so.1: cannot open shared object file") == (
        NO_VULKAN_LOADER
    )
    bundle_broken = loader_problem("cuda", "libcublasLt.so.13: cannot open shared object file")
    assert bundle_broken.startswith("libcublasLt.so.13 is missing beside the CUDA module")
    odd = "undefined symbol: ggml_backend_dev_foo"
    assert loader_problem("cuda", odd) == odd  # unknown: the loader's own words


@pytest.mark.parametrize(
    ("driver", "runtime", "expected"),
    [
        (None, 13000, NO_NVIDIA_DRIVER),
        (12040, 13000, "supports CUDA 12.4, older than the CUDA 13.0 this build needs"),
        (12020, 12080, "no NVIDIA GPU found (driver for CUDA 12.2)"),  # 12.x runs 12.8 code
        (13000, 13000, "no NVIDIA GPU found (driver for CUDA 13.0)"),
    ],
)
def test_cuda_without_a_device_tells_an_old_driver_from_no_gpu(
    driver: int | None, runtime: int, expected: str
) -> None:
    assert expected in cuda_driver_problem(driver, runtime)


def test_an_old_driver_names_the_driver_to_install() -> None:
    assert cuda_driver_problem(12040, 13000).endswith("update the driver to 580.65.06 or newer")


def test_statuses_cover_gpu_modules_only_and_count_devices() -> None:
    statuses = gpu_statuses(
        [
            ("cpu", "libggml-cpu-haswell.so", None),
            ("rpc", "libggml-rpc.so", None),
            ("vulkan", "libggml-vulkan.so", None),
            ("cuda", "libggml-cuda.so", None),
        ],
        {"CPU": 1, "RPC": 0, "Vulkan": 0, "CUDA": 2},
    )
    assert [s.summary for s in statuses] == [f"Vulkan: {NO_VULKAN_GPU}", "CUDA: 2 devices"]
