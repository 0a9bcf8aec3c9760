"""Simulated GPUs: a stand-in for the `pynvml` module with NVML's names and units, for the
what-if plan on a machine without NVIDIA GPUs (KOBOLD_GUI_FAKE_GPUS="RTX 4090:24,RTX 3060:12",
sizes in GiB) and, through tests/fakes/nvml.py, for the tests.

Only the NVML calls that core/hardware/nvml.py makes are here. It is never used unless asked
for: the entry points choose it (`inventory_for_environment`), the core never imports it."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.units import GiB


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


class NVMLError_GpuIsLost(NVMLError):
    def __str__(self) -> str:
        return "GPU is lost"


@dataclass
class SimulatedGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    total: int = 24 * GiB
    used: int = 1 * GiB
    util: int = 3
    temp: int = 41
    power_mw: int = 35_000
    limit_mw: int = 450_000
    uuid: str = ""
    bus_id: str = ""
    procs: dict[int, int] = field(default_factory=dict)  # pid -> bytes
    lost: bool = False


class SimulatedNvml:
    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self,
        gpus: list[SimulatedGpu] | None = None,
        *,
        driver_present: bool = True,
        delay_s: float = 0.0,
    ) -> None:
        self.gpus = gpus if gpus is not None else [SimulatedGpu()]
        for i, gpu in enumerate(self.gpus):
            gpu.uuid = gpu.uuid or f"GPU-simu0000-0000-0000-0000-00000000000{i}"
            gpu.bus_id = gpu.bus_id or f"00000000:{0x01 + i * 0x20:02X}:00.0"
        self.driver_present = driver_present
        self.delay_s = delay_s  # a driver that stalls (NVML can, when the GPU is busy)
        self.calls = 0
        self.calls_by_thread: set[int] = set()

    def _call(self) -> None:
        self.calls += 1
        self.calls_by_thread.add(threading.get_ident())
        if self.delay_s:
            time.sleep(self.delay_s)

    def _gpu(self, handle: SimulatedGpu) -> SimulatedGpu:
        self._call()
        if handle.lost:
            raise NVMLError_GpuIsLost()
        return handle

    # -- the NVML API, as much as kobold-gui uses -----------------------------------------
    def nvmlInit(self) -> None:
        self._call()
        if not self.driver_present:
            raise NVMLError_LibraryNotFound()

    def nvmlShutdown(self) -> None:
        self._call()

    def nvmlDeviceGetCount(self) -> int:
        self._call()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimulatedGpu:
        self._call()
        return self.gpus[index]

    def nvmlDeviceGetName(self, h: SimulatedGpu) -> str:
        return self._gpu(h).name

    def nvmlDeviceGetUUID(self, h: SimulatedGpu) -> str:
        return self._gpu(h).uuid

    def nvmlDeviceGetPciInfo(self, h: SimulatedGpu) -> SimpleNamespace:
        return SimpleNamespace(busId=self._gpu(h).bus_id.encode())

    def nvmlDeviceGetMemoryInfo(self, h: SimulatedGpu) -> SimpleNamespace:
        g = self._gpu(h)
        used = g.used + sum(g.procs.values())
        return SimpleNamespace(total=g.total, used=used, free=g.total - used)

    def nvmlDeviceGetUtilizationRates(self, h: SimulatedGpu) -> SimpleNamespace:
        g = self._gpu(h)
        return SimpleNamespace(gpu=g.util, memory=g.util // 2)

    def nvmlDeviceGetTemperature(self, h: SimulatedGpu, _sensor: int) -> int:
        return self._gpu(h).temp

    def nvmlDeviceGetPowerUsage(self, h: SimulatedGpu) -> int:
        return self._gpu(h).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: SimulatedGpu) -> int:
        return self._gpu(h).limit_mw

    def nvmlDeviceGetComputeRunningProcesses(self, h: SimulatedGpu) -> list[SimpleNamespace]:
        g = self._gpu(h)
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in g.procs.items()]

    def nvmlSystemGetDriverVersion(self) -> str:
        self._call()
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._call()
        return 12040


def from_spec(spec: str) -> SimulatedNvml:
    """'RTX 4090:24,RTX 3060:12GiB' -> two simulated GPUs of 24 and 12 GiB; '80,80' -> two
    unnamed ones; 'none' -> no driver. ValueError names a part it cannot read."""
    if spec.strip().lower() == "none":
        return SimulatedNvml([], driver_present=False)
    gpus = []
    for i, part in enumerate(p for p in spec.split(",") if p.strip()):
        name, _, size = part.rpartition(":")
        gpus.append(
            SimulatedGpu(
                name=name.strip() or f"Simulated GPU {i}",
                total=_gib(size, part),
                used=int((0.4 + 0.3 * i) * GiB),
                util=5 + 20 * i,
                temp=38 + 4 * i,
            )
        )
    return SimulatedNvml(gpus)


def _gib(size: str, part: str) -> int:
    text = size.strip().lower().removesuffix("gib").removesuffix("gb").removesuffix("g")
    try:
        return int(float(text) * GiB)
    except ValueError:
        raise ValueError(
            f"KOBOLD_GUI_FAKE_GPUS: {part.strip()!r} is not NAME:GiB (e.g. 'RTX 4090:24')"
        ) from None


def from_environment() -> SimulatedNvml | None:
    spec = os.environ.get("KOBOLD_GUI_FAKE_GPUS")
    return from_spec(spec) if spec else None


def inventory_for_environment() -> GpuInventory:
    """For the entry points: the real NVML, unless KOBOLD_GUI_FAKE_GPUS asks for the fake
    (demos, screenshots, trying a split without the cards)."""
    try:
        fake = from_environment()
    except ValueError as e:
        logging.getLogger(__name__).warning("%s: the real GPUs are used instead", e)
        return GpuInventory()
    if fake is None:
        return GpuInventory()
    return GpuInventory(fake, label="Simulated GPUs (KOBOLD_GUI_FAKE_GPUS is set): not real.")
