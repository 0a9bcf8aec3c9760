"""Issue 8's run: the multi-GPU split on real hardware (it also runs on one GPU, where it
checks what one GPU can: auto split only).

For split mode layer and row, tensor split 1:1, 3:1 and automatic: the plan per GPU
(`kobold-gui --plan --json`), a real load with the same settings, NVML used memory per GPU
vs the plan (target: within 5 % or 256 MiB per GPU), prompt tokens/s (8192-token prompt,
synchronized) and generation tokens/s for (n_batch, n_ubatch) = (512, 512), (2048, 1024),
(4096, 1024), (2048, 2048), (4096, 4096), and each GPU's utilization during prompt
processing, sampled by the app's own inventory poller (every 100 ms).

    python3 -m bench.multi_gpu_check MODEL.gguf [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.types import EngineError
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.gguf_info import read_gguf

MiB = 1 << 20
PAIRS = ((512, 512), (2048, 1024), (4096, 1024), (2048, 2048), (4096, 4096))


class UtilSampler:
    """The app's inventory, polled on a thread while prompts run: max utilization per GPU."""

    def __init__(self, inventory: GpuInventory) -> None:
        self.inventory = inventory
        self.peak: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            snap = self.inventory.snapshot()
            util = [g.util_gpu or 0 for g in snap.gpus]
            self.peak = (
                [max(a, b) for a, b in zip(self.peak, util, strict=True)] if self.peak else util
            )
            time.sleep(0.1)

    def __enter__(self) -> UtilSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settings(n_gpus: int) -> list[tuple[str, str]]:
    if n_gpus < 2:
        return [("layer", "")]
    return [(mode, split) for mode in ("layer", "row") for split in ("1,1", "3,1", "")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    listing = subprocess.run(
        [sys.executable, "-m", "kobold_gui", "--list-gpus", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (args.out / "list_gpus.json").write_text(listing)
    inventory = GpuInventory()
    base_used = [g.memory_used for g in inventory.snapshot().gpus]
    n_gpus = len(base_used)
    info = read_gguf(args.model)
    results = []
    for mode, split in settings(n_gpus):
        config = LaunchConfig(
            contextsize=16384,
            gpulayers=-1,
            splitmode=mode,
            flashattention="on",
            blasbatchsize=4096,
            batchpolicy="tied",
        ).with_values(tensor_split=split)
        plan_cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "kobold_gui",
                "--plan",
                "--json",
                "--model",
                str(args.model),
                "--contextsize",
                "16384",
                "--splitmode",
                mode,
                "--flashattention",
                "on",
                "--blasbatchsize",
                "4096",
                "--batch-policy",
                "tied",
                *(["--tensor_split", *split.split(",")] if split else []),
            ],
            capture_output=True,
            text=True,
        )
        report = probe_hardware(inventory.snapshot())
        launch = resolve_launch(config, args.model, info, report.gpu_offload, report)
        row: dict[str, object] = {
            "split_mode": mode,
            "tensor_split": split or "auto",
            "plan_rc": plan_cli.returncode,
            "n_gpu_layers": launch.n_gpu_layers,
        }
        engine = LocalEngine()
        try:
            engine.load(launch)
        except EngineError as e:
            row["error"] = str(e)
            results.append(row)
            continue
        used = [
            g.memory_used - b for g, b in zip(inventory.snapshot().gpus, base_used, strict=True)
        ]
        plan = launch.plan
        gpu_plans = [d for d in plan.devices if d.is_gpu] if plan else []
        row["gpu_plan_vs_nvml_mib"] = [
            f"{p.total / MiB:.0f}/{u / MiB:.0f}" for p, u in zip(gpu_plans, used, strict=False)
        ]
        row["within_target"] = all(
            abs(p.total - u) <= max(0.05 * u, 256 * MiB)
            for p, u in zip(gpu_plans, used, strict=False)
        )
        speeds = []
        for n_batch, n_ubatch in PAIRS:
            with UtilSampler(inventory) as sampler:
                m = engine.measure_batch(n_batch, n_ubatch, 8192, 32)
            speeds.append(
                {
                    "pair": f"{n_batch}:{n_ubatch}",
                    "prompt_tps": round(m.prompt_tokens_per_s),
                    "gen_tps": round(m.gen_tokens_per_s, 1),
                    "peak_util_per_gpu": sampler.peak,
                }
            )
        row["speeds"] = speeds
        engine.close()
        results.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "multi_gpu.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
