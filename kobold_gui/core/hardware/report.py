"""What the user has and what llama.cpp can use of it: NVML's GPUs beside the devices of
the installed llama.cpp build, matched by PCI bus id, with the warnings that follow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.hardware.nvml import GpuSnapshot, Inventory
from kobold_gui.core.llama.types import BackendInfo

CUDA_FIX = "KOBOLD_GUI_BACKENDS=cpu,cuda bash tools/dev.sh setup"


@dataclass(frozen=True)
class HardwareReport:
    inventory: Inventory
    backend: str
    gpu_offload: bool
    devices: tuple[BackendDevice, ...]
    nvml_index_of_device: dict[str, int]  # llama.cpp device name -> NVML index
    warnings: tuple[str, ...]

    @property
    def all_gpus_matched(self) -> bool:
        """Every GPU device of llama.cpp has its NVML GPU (none of another vendor)."""
        gpus = [d for d in self.devices if d.kind in ("GPU", "iGPU")]
        return all(d.name in self.nvml_index_of_device for d in gpus)

    def device_for_gpu(self, nvml_index: int) -> BackendDevice | None:
        for device in self.devices:
            if self.nvml_index_of_device.get(device.name) == nvml_index:
                return device
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "nvml": self.inventory.to_json(),
            "llama_cpp": {
                "backend": self.backend,
                "gpu_offload": self.gpu_offload,
                "devices": [
                    {
                        "name": d.name,
                        "description": d.description,
                        "type": d.kind,
                        "memory_free": d.memory_free,
                        "memory_total": d.memory_total,
                        "pci_bus_id": d.pci_bus_id,
                        "nvml_index": self.nvml_index_of_device.get(d.name),
                    }
                    for d in self.devices
                ],
            },
            "warnings": list(self.warnings),
        }


def match_devices(inventory: Inventory, devices: list[BackendDevice]) -> dict[str, int]:
    by_bus = {g.pci_bus_id: g.index for g in inventory.gpus}
    return {d.name: by_bus[d.pci_bus_id] for d in devices if d.pci_bus_id in by_bus}


def hardware_report(
    inventory: Inventory,
    info: BackendInfo,
    devices: list[BackendDevice],
) -> HardwareReport:
    """NVML's GPUs beside llama.cpp's devices (core/llama/library.py and
    core/hardware/ggml_devices.py read those once: they do not change while the app runs)."""
    inventory, matched = with_other_gpus(inventory, devices, match_devices(inventory, devices))
    warnings = []
    if inventory.gpus and not info.gpu_offload:
        warnings.append(
            f"{len(inventory.gpus)} NVIDIA GPU(s) found, but this llama.cpp build is CPU-only "
            f"and cannot use them. Build the CUDA backend: {CUDA_FIX}"
        )
    gpu_devs = [d for d in devices if d.kind in ("GPU", "iGPU")]
    unmatched = [d.name for d in gpu_devs if d.name not in matched]
    if inventory.gpus and unmatched:
        warnings.append(f"llama.cpp devices not matched to an NVML GPU: {', '.join(unmatched)}")
    return HardwareReport(
        inventory, info.name, info.gpu_offload, tuple(devices), matched, tuple(warnings)
    )


def with_other_gpus(
    inventory: Inventory, devices: list[BackendDevice], matched: dict[str, int]
) -> tuple[Inventory, dict[str, int]]:
    """NVML's GPUs, and after them the GPUs only llama.cpp sees (AMD or Intel cards through
    Vulkan, say), with the memory their backend reported when the devices were read: the
    plan and the split editor then treat them as they treat NVIDIA's."""
    others = [
        d
        for d in devices
        if d.kind in ("GPU", "iGPU") and d.name not in matched and not d.name.startswith("RPC")
    ]
    if not others:
        return inventory, matched
    gpus, matched = list(inventory.gpus), dict(matched)
    for device in others:
        index = len(gpus)
        gpus.append(
            GpuSnapshot(
                index=index,
                name=device.description or device.name,
                uuid="",
                pci_bus_id=device.pci_bus_id or "",
                memory_total=device.memory_total,
                memory_used=max(0, device.memory_total - device.memory_free),
                memory_free=device.memory_free,
                source=device.name,
            )
        )
        matched[device.name] = index
    return replace(inventory, gpus=tuple(gpus), message=None), matched
