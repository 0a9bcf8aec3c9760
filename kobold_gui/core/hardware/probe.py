"""The hardware report for the CLI and scripts: NVML's GPUs beside this build's devices. (The
window reads the devices once, off the GUI thread, and calls hardware_report itself.)"""

from __future__ import annotations

from kobold_gui.core.hardware.ggml_devices import backend_devices
from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.hardware.report import HardwareReport, hardware_report
from kobold_gui.core.llama.library import backend_info


def probe_hardware(inventory: Inventory) -> HardwareReport:
    return hardware_report(inventory, backend_info(), backend_devices())
