"""The offload step of a launch: how many layers go on the devices and how they are shared,
from the memory plan (core/plan/memory_plan.py), and what the batch becomes when the plan
says so (a measured pair stepped down, a BLAS size that would fit, pipelined ubatches)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kobold_gui.core.launch.batching import (
    BLAS_STOPS,
    BatchPlan,
    KoboldRule,
    MeasuredChoice,
    MeasuredPolicy,
    effective_batch,
)
from kobold_gui.core.launch.devices import LaunchDevices
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.memory_plan import (
    GpuBudget,
    MemoryPlan,
    MiB,
    PlanError,
    PlanRequest,
    auto_gpu_layers,
    plan_memory,
)


@dataclass(frozen=True)
class Offload:
    """Where the layers go: the plan behind it, and what llama.cpp is given."""

    plan: MemoryPlan | None
    batch: BatchPlan
    n_gpu_layers: int
    note: str
    tensor_split: tuple[float, ...] | None  # None: llama.cpp's own (by free memory)


@dataclass(frozen=True)
class OffloadRequest:
    """What the offload step starts from: the settings, and the earlier steps' results."""

    config: LaunchConfig
    devices: LaunchDevices
    n_gpu_layers: int  # resolve_gpu_layers's
    note: str
    n_ctx: int  # after llama.cpp's padding
    batch: BatchPlan
    measured: MeasuredChoice | None = None


def place_layers(info: GGUFInfo | None, req: OffloadRequest) -> Offload:
    """The memory plan over the devices (or the CPU's share of RAM when there is no device
    to offload to); automatic layers take the plan's count and, over several devices, its
    split."""
    config, devices, batch = req.config, req.devices, req.batch
    n_gpu_layers, note = req.n_gpu_layers, req.note
    split = config.tensor_split or None
    plan = None
    if info is not None and devices.budgets and devices.can_offload:
        base = plan_request(config, n_gpu_layers, req.n_ctx, batch, devices.main_gpu)
        plan, batch, note = _plan_offload(info, base, devices.budgets, config, batch, req.measured)
        n_gpu_layers = plan.request.n_gpu_layers
        if config.gpulayers < 0:
            split = plan.request.tensor_split if len(devices.budgets) > 1 else None
    elif info is not None:  # no GPU to plan for: the CPU's share of RAM
        cpu_only = replace(plan_request(config, 0, req.n_ctx, batch, 0), tensor_split=None)
        plan = plan_memory(info, cpu_only, [])
    if plan is not None and plan.pipeline:
        batch = _pipeline_reason(batch, len(devices.budgets), req.measured)
    return Offload(plan, batch, n_gpu_layers, note, split)


def plan_request(
    config: LaunchConfig, n_gpu_layers: int, n_ctx: int, batch: BatchPlan, main_gpu: int
) -> PlanRequest:
    return PlanRequest(
        n_gpu_layers=n_gpu_layers,
        n_ctx=n_ctx,
        n_ubatch=batch.n_ubatch,
        flash_attn=config.flashattention != "off",
        split_mode=config.splitmode,
        main_gpu=main_gpu,
        tensor_split=config.tensor_split or None,
        kv_type=config.kvtype,
        offload_kqv=config.kvoffload == "on",
        margin=config.vrammargin * MiB,
        n_seq_max=max(1, config.parallel),  # automatic (0) is planned as 1, then chosen
    )


def _pipeline_reason(batch: BatchPlan, n_gpus: int, measured: MeasuredChoice | None) -> BatchPlan:
    """Pipelined over several GPUs, n_batch above n_ubatch lets ubatches overlap: say so, and
    what this machine measured."""
    best = (
        f"; measured best {measured.pick[0]}:{measured.pick[1]}"
        if measured and measured.pick
        else ""
    )
    reason = f"llama.cpp pipelines ubatches over the {n_gpus} GPUs{best}"
    return replace(batch, reasons=(*batch.reasons, reason))


def _plan_offload(
    info: GGUFInfo,
    base: PlanRequest,
    budgets: Sequence[GpuBudget],
    config: LaunchConfig,
    batch: BatchPlan,
    measured: MeasuredChoice | None,
) -> tuple[MemoryPlan, BatchPlan, str]:
    """The plan over the GPUs; then, when not everything fits, a smaller measured pair that
    does (measured policy) or the largest BLAS size that would (the seed rule's hint)."""
    auto = config.gpulayers < 0
    try:
        plan, note = _plan_gpus(info, base, budgets, auto)
        if _fits_fully(plan, info, config):
            return plan, batch, note
        if measured is not None and config.batchpolicy == "measured":
            return _step_down(info, base, budgets, config, batch, measured) or (plan, batch, note)
        if config.batchpolicy == "koboldcpp":
            hint = _largest_fitting_blas(info, base, budgets, config)
            if hint is not None:
                note += f"; BLAS {hint} would fit every layer"
        return plan, batch, note
    except PlanError as e:
        raise ConfigError(str(e)) from None


def _step_down(
    info: GGUFInfo,
    base: PlanRequest,
    budgets: Sequence[GpuBudget],
    config: LaunchConfig,
    batch: BatchPlan,
    measured: MeasuredChoice,
) -> tuple[MemoryPlan, BatchPlan, str] | None:
    """The first measured pair after the pick, with a smaller ubatch, that fits fully."""
    for n_b, n_u in measured.pairs[1:]:
        smaller = effective_batch(n_b, config.contextsize, MeasuredPolicy(n_b, n_u))
        if smaller.n_ubatch >= batch.n_ubatch:
            continue
        request = replace(base, n_ubatch=smaller.n_ubatch)
        plan, note = _plan_gpus(info, request, budgets, config.gpulayers < 0)
        if _fits_fully(plan, info, config):
            note += (
                f"; stepped down from the measured pair {batch.n_batch}:{batch.n_ubatch} "
                f"to {n_b}:{n_u}, which fits"
            )
            return plan, smaller, note
    return None


def _plan_gpus(
    info: GGUFInfo, base: PlanRequest, budgets: Sequence[GpuBudget], auto: bool
) -> tuple[MemoryPlan, str]:
    if auto:
        plan, why = auto_gpu_layers(info, base, budgets)
        return plan, f"automatic: {why}"
    plan = plan_memory(info, base, budgets)
    total = info.n_layers + 1
    n = plan.request.n_gpu_layers
    return plan, (f"all {total} layers" if n >= total else f"{n} of {total} layers")


def _fits_fully(plan: MemoryPlan, info: GGUFInfo, config: LaunchConfig) -> bool:
    """Fits, and (with automatic layers) with every layer on the GPUs."""
    if not plan.fits:
        return False
    return config.gpulayers >= 0 or plan.request.n_gpu_layers >= info.n_layers + 1


def _largest_fitting_blas(
    info: GGUFInfo, base: PlanRequest, budgets: Sequence[GpuBudget], config: LaunchConfig
) -> int | None:
    layers = base.n_gpu_layers if config.gpulayers >= 0 else info.n_layers + 1
    for blas in sorted((b for b in BLAS_STOPS if b < config.blasbatchsize), reverse=True):
        ub = effective_batch(blas, config.contextsize, KoboldRule()).n_ubatch
        if plan_memory(info, replace(base, n_ubatch=ub, n_gpu_layers=layers), budgets).fits:
            return blas
    return None
