"""The effective launch configuration: what llama.cpp will really be given, and why.

Computed without loading the model, so the window's labels and `--show-config` show the same
values the engine then passes (and a test reads back from the loaded context)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kobold_gui.core.batching import (
    BLAS_STOPS,
    BatchPlan,
    BatchPolicy,
    CustomPolicy,
    KoboldRule,
    MeasuredPolicy,
    effective_batch,
    get_policy,
)
from kobold_gui.core.gguf_info import GGUFInfo
from kobold_gui.core.hardware import HardwareReport, select_devices
from kobold_gui.core.memory_plan import (
    GpuBudget,
    MemoryPlan,
    MiB,
    PlanError,
    PlanRequest,
    auto_gpu_layers,
    plan_memory,
)
from kobold_gui.core.options import ConfigError, LaunchConfig, gpu_indices, tensor_split_values

CTX_PAD = 256  # llama_context pads n_ctx to a multiple of 256 (llama-context.cpp)
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # LLAMA_FLASH_ATTN_TYPE_*
SPLIT_MODE = {"none": 0, "layer": 1, "row": 2}  # LLAMA_SPLIT_MODE_*
KV_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}  # GGML_TYPE_*


@dataclass(frozen=True)
class ResolvedLaunch:
    model_path: Path | None
    config: LaunchConfig
    n_ctx: int  # as asked of llama.cpp
    n_ctx_effective: int  # after llama.cpp's padding
    batch: BatchPlan
    n_gpu_layers: int  # as passed to llama.cpp
    gpu_layers_note: str
    n_threads: int
    flash_attn_type: int
    device_handles: tuple[int, ...] | None = None  # None: every device llama.cpp has
    main_gpu: int = 0
    split_mode: int = 1  # LLAMA_SPLIT_MODE_LAYER
    tensor_split: tuple[float, ...] | None = None
    kv_type: int = 1  # GGML_TYPE_F16
    offload_kqv: bool = True
    plan: MemoryPlan | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": str(self.model_path) if self.model_path else None,
            "options": self.config.to_dict(),
            "effective": {
                "n_ctx": self.n_ctx_effective,
                "n_batch": self.batch.n_batch,
                "n_ubatch": self.batch.n_ubatch,
                "batch_reasons": list(self.batch.reasons),
                "batch_label": self.batch.label(),
                "n_gpu_layers": self.n_gpu_layers,
                "gpu_layers_note": self.gpu_layers_note,
                "n_threads": self.n_threads,
                "flash_attn": self.config.flashattention,
                "gpus": self.config.gpus,
                "main_gpu": self.main_gpu,
                "split_mode": self.config.splitmode,
                "tensor_split": list(self.tensor_split) if self.tensor_split else None,
                "kv_type": self.config.kvtype,
            },
        }
        if self.plan is not None:
            data["plan"] = self.plan.to_json()
        return data


def resolve_gpu_layers(requested: int, n_layers: int | None, gpu_offload: bool) -> tuple[int, str]:
    """KoboldCPP's meanings: -1 automatic (all until the memory plan decides), above the
    model's layers + 1 means all (users type 99), and 0 when the build cannot offload.
    llama.cpp counts the output layer as one more layer: n_layers + 1 offloads everything."""
    if not gpu_offload:
        return 0, "0: this llama.cpp build has no GPU backend (CPU only)"
    total = n_layers + 1 if n_layers else None
    if requested < 0:
        if total is None:
            return 999, "automatic: all layers"
        return total, f"automatic: all {total} layers"
    if total is not None and requested >= total:
        return total, f"all {total} layers (the output layer included)"
    if total is None:
        return requested, ""
    return requested, f"{requested} of {total} layers"


def resolve_launch(
    config: LaunchConfig,
    model_path: Path | None,
    info: GGUFInfo | None,
    gpu_offload: bool,
    hardware: HardwareReport | None = None,
    assumed_gpus: Sequence[GpuBudget] | None = None,
    measured: Sequence[tuple[int, int]] = (),
) -> ResolvedLaunch:
    """Everything llama.cpp will be given, and the memory plan behind it.

    GPU layers -1 means automatic: the most layers that fit the GPUs (real ones from
    `hardware`, or `assumed_gpus` for what-if questions) with the margin. Raises ConfigError
    for settings this machine cannot satisfy (a GPU that does not exist, a bad split).

    `measured` holds the (n_batch, n_ubatch) pairs of a sweep, the measured policy's pick
    first, then the others from the fastest prompt down: when the pick does not fit the
    GPUs, the launch steps down to the first that does (and says so). The seed rule is
    never changed silently: when its pair does not fit, the note names the largest BLAS
    size that would."""
    n_ctx = config.contextsize
    n_ctx_effective = -(-n_ctx // CTX_PAD) * CTX_PAD
    policy = policy_for(config, measured)
    # llama.cpp clamps n_batch by the n_ctx it is given, before padding n_ctx.
    batch = effective_batch(config.blasbatchsize, n_ctx, policy)
    if config.kvtype != "f16" and config.flashattention == "off":
        raise ConfigError("a quantized KV cache needs flash attention (auto or on)")
    choice = select_devices(config.gpus, config.maingpu, hardware)
    main_gpu = choice.main_gpu
    if assumed_gpus is not None and config.maingpu >= 0:
        if config.maingpu >= len(assumed_gpus):
            raise ConfigError(
                f"main GPU {config.maingpu} does not exist (GPUs: 0 to {len(assumed_gpus) - 1})"
            )
        main_gpu = config.maingpu
    budgets = list(assumed_gpus) if assumed_gpus is not None else _budgets(hardware, config)
    n_gpu_layers, note = resolve_gpu_layers(
        config.gpulayers, info.n_layers if info else None, gpu_offload or bool(assumed_gpus)
    )
    split = tensor_split_values(config.tensor_split)
    plan = None
    if info is not None and budgets and (gpu_offload or assumed_gpus is not None):
        base = PlanRequest(
            n_gpu_layers=n_gpu_layers,
            n_ctx=n_ctx_effective,
            n_ubatch=batch.n_ubatch,
            flash_attn=config.flashattention != "off",
            split_mode=config.splitmode,
            main_gpu=main_gpu,
            tensor_split=split,
            kv_type=config.kvtype,
            offload_kqv=config.kvoffload == "on",
            margin=config.vrammargin * MiB,
        )
        try:
            plan, note = _plan_gpus(info, base, budgets, auto=config.gpulayers < 0)
            if not _fits_fully(plan, info, config) and config.batchpolicy == "measured":
                for n_b, n_u in measured[1:]:
                    smaller = effective_batch(n_b, n_ctx, MeasuredPolicy(n_b, n_u))
                    if smaller.n_ubatch >= batch.n_ubatch:
                        continue
                    p2, note2 = _plan_gpus(
                        info,
                        replace(base, n_ubatch=smaller.n_ubatch),
                        budgets,
                        auto=config.gpulayers < 0,
                    )
                    if _fits_fully(p2, info, config):
                        note = (
                            f"{note2}; stepped down from the measured pair "
                            f"{batch.n_batch}:{batch.n_ubatch} to {n_b}:{n_u}, which fits"
                        )
                        plan, batch = p2, smaller
                        break
            elif not _fits_fully(plan, info, config) and config.batchpolicy == "koboldcpp":
                hint = _largest_fitting_blas(info, base, budgets, config, n_ctx)
                if hint is not None:
                    note += f"; BLAS {hint} would fit every layer"
        except PlanError as e:
            raise ConfigError(str(e)) from None
        n_gpu_layers = plan.request.n_gpu_layers
        if config.gpulayers < 0:
            split = plan.request.tensor_split if len(budgets) > 1 else None
    elif info is not None:  # no GPU to plan for: the CPU's share of RAM
        cpu_only = PlanRequest(
            n_gpu_layers=0,
            n_ctx=n_ctx_effective,
            n_ubatch=batch.n_ubatch,
            flash_attn=config.flashattention != "off",
            kv_type=config.kvtype,
        )
        plan = plan_memory(info, cpu_only, [])
    return ResolvedLaunch(
        model_path=model_path,
        config=config,
        n_ctx=n_ctx,
        n_ctx_effective=n_ctx_effective,
        batch=batch,
        n_gpu_layers=n_gpu_layers,
        gpu_layers_note=note,
        n_threads=config.resolved_threads(),
        flash_attn_type=FLASH_ATTN[config.flashattention],
        device_handles=choice.handles,
        main_gpu=main_gpu,  # the plan's main GPU: the device list's, or an assumed one
        split_mode=SPLIT_MODE[config.splitmode],
        tensor_split=split,
        kv_type=KV_TYPES[config.kvtype],
        offload_kqv=config.kvoffload == "on",
        plan=plan,
    )


def policy_for(config: LaunchConfig, measured: Sequence[tuple[int, int]] = ()) -> BatchPolicy:
    if config.batchpolicy == "custom":
        return CustomPolicy(config.ubatch)
    if config.batchpolicy == "measured":
        if not measured:
            raise ConfigError(
                "the measured batch policy needs a benchmark of this model with these "
                "settings: run the sweep first (Benchmark tab, or kobold-gui --benchmark)"
            )
        return MeasuredPolicy(*measured[0])
    return get_policy(config.batchpolicy)


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
    info: GGUFInfo,
    base: PlanRequest,
    budgets: Sequence[GpuBudget],
    config: LaunchConfig,
    n_ctx: int,
) -> int | None:
    layers = base.n_gpu_layers if config.gpulayers >= 0 else info.n_layers + 1
    for blas in sorted((b for b in BLAS_STOPS if b < config.blasbatchsize), reverse=True):
        ub = effective_batch(blas, n_ctx, KoboldRule()).n_ubatch
        if plan_memory(info, replace(base, n_ubatch=ub, n_gpu_layers=layers), budgets).fits:
            return blas
    return None


def _budgets(hardware: HardwareReport | None, config: LaunchConfig) -> list[GpuBudget]:
    """The GPUs the model may use, in llama.cpp's device order, with their free memory."""
    if hardware is None or not hardware.gpu_offload:
        return []
    wanted = gpu_indices(config.gpus)
    gpus = [
        g
        for g in hardware.inventory.gpus
        if not g.lost and (wanted is None or g.index in wanted) and hardware.device_for_gpu(g.index)
    ]
    # What this process already holds (a loaded model) is freed by the next load.
    return [GpuBudget(g.name, g.memory_total, g.memory_free + g.memory_used_by_us) for g in gpus]
