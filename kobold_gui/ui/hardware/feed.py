"""The hardware side of the launch: llama.cpp's build and devices (read once, off the GUI
thread) and NVML's GPUs (each poll) become the hardware report the launch state plans with.
The panels that show them follow the launch state themselves (the GPUs tab its build
warnings, the launch panel whether GPU settings matter) or the GPU monitor (the cards)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from kobold_gui.core.hardware.ggml_devices import BackendDevice, backend_devices
from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.hardware.report import hardware_report
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.ui.common.background import LatestJob
from kobold_gui.ui.text.plan_summary import what_if_gpus


def _detect_backend() -> tuple[BackendInfo, list[BackendDevice]]:
    return backend_info(), backend_devices()


class HardwareFeed(QObject):
    backendReady = Signal(object)  # BackendInfo
    backendFailed = Signal(str)

    def __init__(
        self, state: LaunchState, paused: Callable[[], bool], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.state, self.paused = state, paused
        self.backend: BackendInfo | None = None
        self.devices: list[BackendDevice] = []
        self.inventory = Inventory()
        self._job = LatestJob(self)
        self._job.run(_detect_backend, done=self._backend_ready, failed=self._failed)

    def _failed(self, error: BaseException) -> None:
        self.backendFailed.emit(str(error))

    def inventory_updated(self, inventory: Inventory) -> None:
        self.inventory = inventory
        # A load's own allocations are not a reason to re-plan.
        if self.backend is None or self.paused():
            return
        report = hardware_report(inventory, self.backend, self.devices)
        what_if = what_if_gpus(inventory) if not self.backend.gpu_offload else None
        self.state.set_backend(self.backend.gpu_offload, report, what_if)

    def _backend_ready(self, found: tuple[BackendInfo, list[BackendDevice]]) -> None:
        self.backend, self.devices = found
        self.inventory_updated(self.inventory)
        self.backendReady.emit(self.backend)
