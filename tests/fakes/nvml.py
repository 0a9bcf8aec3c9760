"""The FAKE NVML used by the tests: the one place where hardware is simulated. The app's own
simulated GPUs (core/hardware/simulated.py, for the what-if plan) are the same stand-in;
the tests call it by the name of what it is to them."""

from kobold_gui.core.hardware.simulated import SimulatedGpu as FakeGpu
from kobold_gui.core.hardware.simulated import SimulatedNvml as FakeNvml
from kobold_gui.core.hardware.simulated import from_spec
from kobold_gui.core.units import GiB

__all__ = ["FakeGpu", "FakeNvml", "GiB", "from_spec"]
