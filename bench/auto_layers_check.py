"""On a real GPU: automatic GPU layers load without running out of memory, also when the
margin (standing in for a smaller GPU) forces a partial offload. Prints the plan's GPU total
beside NVML's process accounting after the load.

    python3 -m bench.auto_layers_check MODEL.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.types import EngineError
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.gguf_info import read_gguf

MiB = 1 << 20
CASES = ((131072, 512), (131072, 60000), (32768, 70000), (8192, 76000))


def main() -> None:
    path = Path(sys.argv[1])
    info = read_gguf(path)
    inventory = GpuInventory()
    failures = 0
    for ctx, margin in CASES:
        report = probe_hardware(inventory.snapshot())
        config = LaunchConfig(contextsize=ctx, vrammargin=margin, flashattention="on")
        launch = resolve_launch(config, path, info, True, report)
        engine = LocalEngine()
        try:
            engine.load(launch)
            loaded = "loaded"
        except EngineError as e:
            failures += 1
            loaded = f"LOAD FAILED: {e}"
        gpu = inventory.snapshot().gpus[0]
        plan_gpu = launch.plan.devices[0].total if launch.plan else 0
        print(
            f"ctx {ctx:6d}, margin {margin:5d} MiB: {launch.n_gpu_layers:2d} layers "
            f"({launch.gpu_layers_note}); {loaded}; plan GPU {plan_gpu / MiB:.0f} MiB, "
            f"NVML this process {gpu.memory_used_by_us / MiB:.0f} MiB, "
            f"free {gpu.memory_free / MiB:.0f} MiB"
        )
        engine.close()
    print(f"{len(CASES) - failures}/{len(CASES)} automatic loads succeeded")


if __name__ == "__main__":
    main()
