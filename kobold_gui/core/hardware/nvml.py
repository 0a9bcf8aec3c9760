"""GPU inventory and telemetry through NVML (the `pynvml` module of nvidia-ml-py).

`GpuInventory` takes the NVML module as a parameter: the app passes the real one, tests pass
the fake in tests/fakes/nvml.py. Every NVML call that can fail is contained: no driver means
an empty inventory with a message; a GPU that fails mid-run is reported as lost while the
others keep reporting."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

NO_DRIVER = "No NVIDIA driver found: kobold-gui runs on the CPU."


@dataclass(frozen=True)
class GpuSnapshot:
    index: int  # NVML's index (CUDA's order may differ: match by uuid or pci_bus_id)
    name: str
    uuid: str
    pci_bus_id: str  # "0000:01:00.0", lower case: the form llama.cpp's devices report
    memory_total: int = 0
    memory_used: int = 0
    memory_free: int = 0
    memory_used_by_us: int = 0  # by this process, from NVML's process accounting
    util_gpu: int | None = None  # percent
    util_memory: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    lost: bool = False
    error: str | None = None
    source: str = "NVML"  # or the llama.cpp device (Vulkan0) for a GPU NVML does not know

    @property
    def memory_used_by_others(self) -> int:
        return max(0, self.memory_used - self.memory_used_by_us)


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GpuSnapshot, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    message: str | None = None  # why there are no GPUs, for the user
    timestamp: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "message": self.message,
            "gpus": [
                asdict(g) | {"memory_used_by_others": g.memory_used_by_others} for g in self.gpus
            ],
        }


def normalize_bus_id(bus_id: str | bytes) -> str:
    """NVML says '00000000:01:00.0', llama.cpp '0000:01:00.0': both become the latter."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)
    text = text.strip().lower()
    parts = text.split(":")
    if len(parts) == 3:
        domain, bus, devfn = parts
        try:
            return f"{int(domain, 16):04x}:{bus}:{devfn}"
        except ValueError:
            return text
    return text


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class GpuInventory:
    """Reads the GPUs. Thread-safe: the poller thread and the CLI call `snapshot`."""

    def __init__(self, nvml: ModuleType | Any | None = None, label: str | None = None) -> None:
        """`label` is shown with the GPUs (it says when they are simulated)."""
        self._nvml = nvml
        self._label = label
        self._lock = threading.Lock()
        self._ready = False
        self._message: str | None = None
        self._failed = False  # NVML cannot be used here: don't try again every second
        self._handles: list[Any] = []
        self._static: list[tuple[str, str, str]] = []  # name, uuid, bus id per index
        self._driver: str | None = None
        self._cuda: str | None = None

    def _open(self) -> None:
        if self._ready or self._failed:
            return
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            nv = self._nvml
            nv.nvmlInit()
            count = nv.nvmlDeviceGetCount()
            self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._static = [
                (
                    _text(nv.nvmlDeviceGetName(h)),
                    _text(nv.nvmlDeviceGetUUID(h)),
                    normalize_bus_id(nv.nvmlDeviceGetPciInfo(h).busId),
                )
                for h in self._handles
            ]
            self._driver = _text(nv.nvmlSystemGetDriverVersion())
            cuda = int(nv.nvmlSystemGetCudaDriverVersion())
            self._cuda = f"{cuda // 1000}.{cuda % 1000 // 10}"
            self._ready = True
            self._message = self._label
            if not count:
                self._message = "The NVIDIA driver reports no GPUs: kobold-gui runs on the CPU."
        except ImportError:
            self._failed = True
            self._message = "nvidia-ml-py is not installed: no GPU information."
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self._failed = True
            self._message = f"{NO_DRIVER} (NVML: {e})"

    def snapshot(self) -> Inventory:
        import time

        with self._lock:
            self._open()
            if not self._ready:
                return Inventory(message=self._message, timestamp=time.time())
            gpus = tuple(self._read(i) for i in range(len(self._handles)))
            return Inventory(gpus, self._driver, self._cuda, self._message, time.time())

    def _read(self, index: int) -> GpuSnapshot:
        nv = self._nvml
        assert nv is not None
        handle = self._handles[index]
        name, uuid, bus = self._static[index]
        try:
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
        except Exception as e:  # the GPU fell off the bus, the driver reset, ...
            return GpuSnapshot(index, name, uuid, bus, lost=True, error=str(e))

        def optional(call: Any, *args: Any) -> Any:
            try:
                return call(handle, *args)
            except Exception:  # not supported on this GPU: leave it out
                return None

        util = optional(nv.nvmlDeviceGetUtilizationRates)
        temp = optional(nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU)
        power = optional(nv.nvmlDeviceGetPowerUsage)
        limit = optional(nv.nvmlDeviceGetEnforcedPowerLimit)
        procs = optional(nv.nvmlDeviceGetComputeRunningProcesses) or []
        me = os.getpid()
        ours = sum(int(p.usedGpuMemory or 0) for p in procs if p.pid == me)
        return GpuSnapshot(
            index,
            name,
            uuid,
            bus,
            memory_total=int(mem.total),
            memory_used=int(mem.used),
            memory_free=int(mem.free),
            memory_used_by_us=ours,
            util_gpu=int(util.gpu) if util is not None else None,
            util_memory=int(util.memory) if util is not None else None,
            temperature_c=int(temp) if temp is not None else None,
            power_w=power / 1000 if power is not None else None,
            power_limit_w=limit / 1000 if limit is not None else None,
        )

    def close(self) -> None:
        with self._lock:
            if self._ready and self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()
            self._ready = False
