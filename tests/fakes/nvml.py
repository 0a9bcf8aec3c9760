"""The FAKE NVML used by the tests: the one place where hardware is simulated. It lives in
kobold_gui/dev/fake_nvml.py so that the app can show simulated GPUs for screenshots too."""

from kobold_gui.dev.fake_nvml import FakeGpu, FakeNvml, GiB, from_spec

__all__ = ["FakeGpu", "FakeNvml", "GiB", "from_spec"]
