"""The one-line fit per quantization, from the window's own launch resolution and memory
plan, on simulated GPUs (the FAKE NVML) and on this CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.report import HardwareReport, hardware_report
from kobold_gui.core.hub.fit import plan_fit
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.models.gguf_info import GGUFInfo, read_gguf
from kobold_gui.core.plan.memory_plan import GiB, MiB
from tests.fakes.nvml import FakeGpu, FakeNvml


@pytest.fixture(scope="module")
def smol(default_model: Path) -> GGUFInfo:
    return read_gguf(default_model)


def _report(gpu: FakeGpu, cuda: bool) -> HardwareReport:
    inv = GpuInventory(FakeNvml([gpu])).snapshot()
    g = inv.gpus[0]
    devices = [
        BackendDevice(0, "CUDA0", "fake", "GPU", g.memory_free, g.memory_total, g.pci_bus_id, 1)
    ]
    backend = BackendInfo("CUDA" if cuda else "CPU", cuda, "0.3.36", "CUDA" if cuda else "CPU")
    return hardware_report(inv, backend, devices if cuda else [])


def test_a_cpu_only_machine_gets_the_ram_it_needs(smol: GGUFInfo) -> None:
    fit = plan_fit(smol, False, None, ram=64 * GiB)
    assert fit.summary.startswith("CPU only at 8k context; needs ")
    assert fit.level == "cpu"
    assert (fit.config.contextsize, fit.config.gpulayers) == (8192, -1)
    too_small = plan_fit(smol, False, None, ram=10 * MiB)
    assert too_small.level == "too-big" and "10.00 MiB available" in too_small.summary


def test_a_big_gpu_takes_every_layer(smol: GGUFInfo) -> None:
    fit = plan_fit(smol, True, _report(FakeGpu(total=24 * GiB, used=GiB), cuda=True))
    assert fit.summary == "all 31 layers on GPU at 8k context"
    assert fit.level == "gpu"
    assert "GPU 0" in fit.detail


def test_a_small_gpu_takes_some_layers(smol: GGUFInfo) -> None:
    # Room for the CUDA context, the margin and a few layers, not for the 49k-token logits.
    gpu = FakeGpu(total=2 * GiB, used=2 * GiB - (600 + 512 + 200) * MiB)
    fit = plan_fit(smol, True, _report(gpu, cuda=True), ram=64 * GiB)
    assert fit.level == "partial", fit.summary
    layers = int(fit.summary.split(" of 31 layers")[0])
    assert 0 < layers < 31


def test_a_cpu_build_on_an_nvidia_machine_says_what_cuda_would_do(smol: GGUFInfo) -> None:
    fit = plan_fit(smol, False, _report(FakeGpu(total=24 * GiB, used=GiB), cuda=False))
    assert fit.summary == "all 31 layers on GPU at 8k context"
    assert fit.note.startswith("This build of kobold-gui runs on the CPU only")
    assert "NVIDIA GeForce RTX 4090" in fit.note
    assert fit.level == "cpu"  # not green: this build will not use the GPU
