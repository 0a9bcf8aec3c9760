"""The hardware report for the CLI and scripts: NVML's GPUs beside this build's devices. (The
window reads the devices once, off the GUI thread, and calls hardware_report itself.)"""

from __future__ import annotations

from kobold_gui.core.backend import backend_info
from kobold_gui.core.ggml_devices import backend_devices
from kobold_gui.core.gpus import Inventory
from kobold_gui.core.hardware import HardwareReport, hardware_report


def probe_hardware(inventory: Inventory) -> HardwareReport:
    return hardware_report(inventory, backend_info(), backend_devices())
