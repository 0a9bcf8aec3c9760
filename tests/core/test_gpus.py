"""GPU inventory: the real NVML path up to 'no driver' (this machine, CI), and one, two and
four GPUs through the FAKE NVML at the hardware boundary."""

from __future__ import annotations

import os

import pytest

from kobold_gui.core.hardware.ggml_devices import BackendDevice, backend_devices
from kobold_gui.core.hardware.nvml import GpuInventory, normalize_bus_id
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.hardware.report import hardware_report, match_devices
from kobold_gui.core.launch.devices import select_devices
from kobold_gui.core.launch.options import ConfigError
from kobold_gui.core.launch.values import ALL_GPUS, GpuSelection, parse_gpus
from kobold_gui.core.llama.library import backend_info
from tests.fakes.nvml import FakeGpu, FakeNvml, GiB


def test_real_nvml_without_a_driver_reports_cpu_fallback() -> None:
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    inventory = GpuInventory().snapshot()  # the real pynvml module
    assert inventory.gpus == ()
    assert inventory.message is not None and "No NVIDIA driver found" in inventory.message
    assert "runs on the CPU" in inventory.message


def test_a_cpu_only_build_says_so() -> None:
    if backend_info().gpu_offload:
        pytest.skip("this llama.cpp build can offload to a GPU")
    devices = backend_devices()
    assert [d.kind for d in devices] == ["CPU"]
    report = probe_hardware(GpuInventory(FakeNvml([FakeGpu()])).snapshot())
    assert not report.gpu_offload
    assert any("CPU-only" in w and "KOBOLD_GUI_BACKENDS=cpu,cuda" in w for w in report.warnings)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_inventory_of_several_gpus(count: int) -> None:
    gpus = [
        FakeGpu(name=f"GPU model {i}", total=(8 + 8 * i) * GiB, used=GiB, util=10 * i, temp=40 + i)
        for i in range(count)
    ]
    inv = GpuInventory(FakeNvml(gpus)).snapshot()
    assert [g.index for g in inv.gpus] == list(range(count))
    assert [g.memory_total for g in inv.gpus] == [(8 + 8 * i) * GiB for i in range(count)]
    assert [g.util_gpu for g in inv.gpus] == [10 * i for i in range(count)]
    assert inv.driver_version == "550.54.15" and inv.cuda_driver_version == "12.4"
    assert inv.gpus[-1].pci_bus_id == f"0000:{0x01 + (count - 1) * 0x20:02x}:00.0"
    assert inv.gpus[0].power_w == 35.0 and inv.gpus[0].power_limit_w == 450.0


def test_memory_of_this_process_comes_from_process_accounting() -> None:
    gpu = FakeGpu(total=24 * GiB, used=2 * GiB, procs={os.getpid(): 5 * GiB, 999999: GiB})
    snap = GpuInventory(FakeNvml([gpu])).snapshot().gpus[0]
    assert snap.memory_used == 8 * GiB
    assert snap.memory_used_by_us == 5 * GiB and snap.memory_used_by_others == 3 * GiB


def test_a_gpu_lost_mid_run_is_reported_and_the_others_keep_working() -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu(name="second")])
    inventory = GpuInventory(nvml)
    assert not any(g.lost for g in inventory.snapshot().gpus)
    nvml.gpus[0].lost = True
    snap = inventory.snapshot()
    assert snap.gpus[0].lost and "GPU is lost" in (snap.gpus[0].error or "")
    assert not snap.gpus[1].lost and snap.gpus[1].memory_total == 24 * GiB


def test_no_driver_in_the_fake_gives_the_same_message_as_the_real_path() -> None:
    inv = GpuInventory(FakeNvml([], driver_present=False)).snapshot()
    assert inv.gpus == () and "No NVIDIA driver found" in (inv.message or "")


@pytest.mark.parametrize(
    ("nvml", "ggml"),
    [
        ("00000000:01:00.0", "0000:01:00.0"),
        (b"00000000:C1:00.0", "0000:c1:00.0"),
        ("0000:0a:00.0", "0000:0a:00.0"),
    ],
)
def test_bus_ids_are_normalized_to_llama_cpps_form(nvml: str | bytes, ggml: str) -> None:
    assert normalize_bus_id(nvml) == ggml


def _report_with_cuda(count: int) -> object:
    """NVML's GPUs, and llama.cpp devices in another order (as CUDA may number them)."""
    inv = GpuInventory(FakeNvml([FakeGpu() for _ in range(count)])).snapshot()
    devices = [
        BackendDevice(i, f"CUDA{i}", "fake", "GPU", 0, 0, g.pci_bus_id, 1000 + i)
        for i, g in enumerate(reversed(inv.gpus))
    ]
    from kobold_gui.core.llama.types import BackendInfo

    cuda = BackendInfo("CUDA", True, "0.3.36", "CUDA")
    return hardware_report(inv, cuda, devices)


def test_devices_are_matched_by_bus_id_not_by_number() -> None:
    report = _report_with_cuda(3)
    assert report.nvml_index_of_device == {"CUDA0": 2, "CUDA1": 1, "CUDA2": 0}
    assert match_devices(report.inventory, list(report.devices))["CUDA0"] == 2


def test_gpu_choice_becomes_llama_cpps_device_list() -> None:
    report = _report_with_cuda(3)
    # "All GPUs" is passed explicitly in NVML's order: CUDA's own order (fastest first)
    # would put the shares and the main GPU on other cards.
    assert select_devices(ALL_GPUS, -1, report).handles == (1002, 1001, 1000)
    choice = select_devices(GpuSelection((0, 2)), 2, report)
    assert choice.handles == (1002, 1000)  # NVML 0 is CUDA2, NVML 2 is CUDA0
    assert choice.main_gpu == 1
    assert select_devices(ALL_GPUS, 1, report).handles == (1002, 1001, 1000)


@pytest.mark.parametrize(
    ("gpus", "main", "words"),
    [
        ("0,5", -1, "GPU 5 does not exist"),
        ("0", 1, "main GPU 1 is not among"),
        ("all", 7, "GPU 7 does not exist"),
    ],
)
def test_impossible_gpu_choices_are_refused(gpus: str, main: int, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        select_devices(parse_gpus(gpus), main, _report_with_cuda(2))


def test_gpu_choice_is_ignored_by_a_cpu_only_build() -> None:
    if backend_info().gpu_offload:
        pytest.skip("this llama.cpp build can offload to a GPU")
    report = probe_hardware(GpuInventory(FakeNvml([FakeGpu()])).snapshot())
    assert select_devices(GpuSelection((0,)), 0, report).handles is None


def test_row_split_is_refused_where_the_backend_has_no_split_buffers() -> None:
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch

    report = _report_with_cuda(2)  # its devices offer no row split, as CUDA here
    assert not any(d.row_split for d in report.devices)
    with pytest.raises(ConfigError, match="split mode row is not possible here"):
        resolve_launch(LaunchConfig(splitmode="row"), None, None, True, report)
    resolve_launch(LaunchConfig(splitmode="layer"), None, None, True, report)  # fine


def test_cuda_numbers_gpus_by_pci_bus_like_nvml() -> None:
    """Set before CUDA starts, so CUDA's and NVML's numbering agree where nothing else
    reorders them; the device list passed to llama.cpp does not rely on it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CUDA_DEVICE_ORDER"}
    code = "import kobold_gui, os; print(os.environ['CUDA_DEVICE_ORDER'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PCI_BUS_ID"
    env["CUDA_DEVICE_ORDER"] = "FASTEST_FIRST"  # a user's own choice is kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "FASTEST_FIRST"
