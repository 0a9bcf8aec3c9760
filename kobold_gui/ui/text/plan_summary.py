"""The memory plan in one sentence, for the window's plan box; and the GPUs to plan for as a
what-if when this build cannot use the ones NVML reports."""

from __future__ import annotations

from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.launch.split_rules import tensor_split_line
from kobold_gui.core.plan.memory_plan import GpuBudget
from kobold_gui.core.units import human_bytes


def what_if_gpus(inventory: Inventory) -> tuple[GpuBudget, ...] | None:
    """NVIDIA GPUs a build cannot use (simulated ones, or real ones beside a CPU-only
    llama.cpp): planned for all the same, as a what-if, with their free memory."""
    gpus = [g for g in inventory.gpus if not g.lost]
    return tuple(GpuBudget(g.name, g.memory_total, g.memory_free) for g in gpus) or None


def plan_summary(launch: ResolvedLaunch, what_if: bool = False) -> str:
    plan = launch.plan
    if plan is None:
        return ""
    if not any(d.is_gpu for d in plan.devices):
        return (
            f"No GPU: everything in RAM, about {human_bytes(plan.devices[-1].total)} "
            f"for context {launch.n_ctx_effective}."
        )
    state = "fits" if plan.fits else "does NOT fit"
    each = "device" if any(d.remote for d in plan.devices) else "GPU"
    note = (
        f"GPU layers {launch.n_gpu_layers} ({launch.gpu_layers_note}): {state}, "
        f"keeping {human_bytes(plan.request.margin)} free per {each}."
    )
    if line := tensor_split_line(plan):
        note += f" {line[0].upper()}{line[1:]}."
    if what_if:
        note = (
            "What-if: this llama.cpp build cannot use these GPUs (simulated, or a CPU-only "
            "build), so Load runs on the CPU; the plan shows what a GPU build would do. " + note
        )
    return note
