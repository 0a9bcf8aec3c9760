"""How a model from the hub would run on this machine, in one line per quantization
("all 33 layers on GPU at 8k context", "26 of 33 layers on GPU", "CPU only"), from the same
memory plan and launch resolution the window uses before loading a file on disk."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kobold_gui.core.hardware.report import HardwareReport
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.memory_plan import GpuBudget
from kobold_gui.core.units import human_bytes

DEFAULT_CONTEXT = 8192


@dataclass(frozen=True)
class Fit:
    summary: str  # the one line shown beside the file
    detail: str  # per device, for the tooltip
    level: str  # "gpu" (all layers), "partial", "cpu", "too-big"
    config: LaunchConfig  # the launch settings the plan suggests
    # Said once above the list: with NVIDIA GPUs but a CPU-only build, the lines tell what
    # a CUDA build would do, and this note says so.
    note: str = ""


def ram_bytes() -> int | None:
    """Memory available for a model now (MemAvailable on Linux), else the physical total."""
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _ctx_label(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def plan_fit(
    info: GGUFInfo,
    gpu_offload: bool,
    hardware: HardwareReport | None,
    ram: int | None = None,
    context: int = DEFAULT_CONTEXT,
) -> Fit:
    """The plan for `info` at `context` tokens (or its trained context when smaller).

    With NVIDIA GPUs but a build that cannot offload, the GPUs' plan is shown as what a
    CUDA build would do, and the launch stays on the CPU."""
    ctx = min(context, info.context_length or context)
    config = LaunchConfig(contextsize=ctx, gpulayers=-1)
    gpus = [g for g in (hardware.inventory.gpus if hardware else ()) if not g.lost]
    assumed = None
    if gpus and not gpu_offload:
        assumed = [GpuBudget(g.name, g.memory_total, g.memory_free) for g in gpus]
    try:
        launch = resolve_launch(config, None, info, gpu_offload, hardware, assumed)
    except ConfigError as e:
        return Fit(f"cannot plan: {e}", str(e), "too-big", config)
    plan = launch.plan
    if plan is None:
        return Fit("cannot plan (no layers?)", "", "too-big", config)
    cpu = plan.devices[-1]
    detail = "\n".join(d.describe() for d in plan.devices)
    total = info.n_layers + 1
    layers = launch.n_gpu_layers if plan.fits else 0
    over_ram = ram is not None and cpu.total > ram
    ram_note = f"; needs {human_bytes(cpu.total)} of RAM"
    if ram is not None and over_ram:
        ram_note += f", {human_bytes(ram)} available"
    where = f" at {_ctx_label(ctx)} context"
    if not any(d.is_gpu for d in plan.devices):
        level = "too-big" if over_ram else "cpu"
        return Fit(f"CPU only{where}{ram_note}", detail, level, config)
    note = ""
    if assumed is not None:
        names = ", ".join(g.name for g in gpus)
        note = (
            f"This build of kobold-gui runs on the CPU only; the lines say what a CUDA build "
            f"would do with {names}."
        )
    if layers >= total:
        summary, level = f"all {total} layers on GPU{where}", "gpu"
    elif layers > 0:
        summary, level = f"{layers} of {total} layers on GPU{where}{ram_note}", "partial"
    else:
        summary, level = f"CPU only{where} (does not fit the GPU){ram_note}", "cpu"
    if over_ram and level != "gpu":
        level = "too-big"
    if assumed is not None:
        level = "cpu" if level != "too-big" else level
    return Fit(summary, detail, level, config, note)
