"""The effective launch configuration: what llama.cpp will really be given, and why.

Computed without loading the model, so the window's labels and `--show-config` show the same
values the engine then passes (and a test reads back from the loaded context)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kobold_gui.core.hardware.report import HardwareReport
from kobold_gui.core.launch.batching import (
    BatchPlan,
    BatchPolicy,
    CustomPolicy,
    MeasuredChoice,
    MeasuredPolicy,
    SeedFallback,
    effective_batch,
    get_policy,
)
from kobold_gui.core.launch.devices import LaunchDevices, resolve_devices
from kobold_gui.core.launch.offload import Offload, OffloadRequest, place_layers
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.parallel import ParallelChoice, auto_parallel, chosen_parallel
from kobold_gui.core.launch.split_rules import check_tensor_split, flash_attn_type
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.memory_plan import GpuBudget, MemoryPlan, plan_memory
from kobold_gui.core.remote.probe import RemoteDevice

CTX_PAD = 256  # llama_context pads n_ctx to a multiple of 256 (llama-context.cpp)
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # LLAMA_FLASH_ATTN_TYPE_*
SPLIT_MODE = {"none": 0, "layer": 1, "row": 2, "tensor": 3}  # LLAMA_SPLIT_MODE_*
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
    # The same list by llama.cpp's names, for the engine's child process (loads over RPC).
    device_names: tuple[str, ...] | None = None
    rpc_servers: tuple[str, ...] = ()  # remote machines, their devices first in the list
    main_gpu: int = 0
    split_mode: int = 1  # LLAMA_SPLIT_MODE_LAYER
    tensor_split: tuple[float, ...] | None = None
    kv_type: int = 1  # GGML_TYPE_F16
    offload_kqv: bool = True
    plan: MemoryPlan | None = None
    # Sequences the context holds (the `parallel` option: slots, core/engine/slots.py);
    # more than 1 turns on llama.cpp's unified KV cache (all sequences share n_ctx).
    n_seq_max: int = 1
    parallel_note: str = ""  # why that many (core/launch/parallel.py)

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
                "flash_attn": _flash_attn_text(self),
                "gpus": str(self.config.gpus),
                "main_gpu": self.main_gpu,
                "split_mode": self.config.splitmode,
                "tensor_split": list(self.tensor_split) if self.tensor_split else None,
                "kv_type": self.config.kvtype,
                "parallel": self.n_seq_max,
                "parallel_note": self.parallel_note,
            },
        }
        if self.plan is not None:
            data["plan"] = self.plan.to_json()
        return data


def _flash_attn_text(launch: ResolvedLaunch) -> str:
    """The setting, and what tensor split makes of auto."""
    config = launch.config
    if config.flashattention == "auto" and launch.flash_attn_type == FLASH_ATTN["on"]:
        return "on (tensor split needs it)"
    return config.flashattention


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


def resolve_batch(
    config: LaunchConfig, measured: MeasuredChoice | None = None, n_ctx: int | None = None
) -> BatchPlan:
    """The BLAS slider's value through the batch policy and llama.cpp's clamps: what the
    label shows, before any memory plan (the launch may still step a measured pair down)."""
    policy = policy_for(config, measured)
    # llama.cpp clamps n_batch by the n_ctx it is given, before padding n_ctx.
    return effective_batch(config.blasbatchsize, n_ctx or config.contextsize, policy)


def policy_for(config: LaunchConfig, measured: MeasuredChoice | None = None) -> BatchPolicy:
    if config.batchpolicy == "custom":
        return CustomPolicy(config.ubatch)
    if config.batchpolicy == "measured":
        if measured is None:
            return SeedFallback()
        if measured.pick is None:
            return SeedFallback(measured.why.split(":", 1)[0])
        return MeasuredPolicy(*measured.pick)
    return get_policy(config.batchpolicy)


def resolve_launch(
    config: LaunchConfig,
    model_path: Path | None,
    info: GGUFInfo | None,
    gpu_offload: bool,
    hardware: HardwareReport | None = None,
    assumed_gpus: Sequence[GpuBudget] | None = None,
    measured: MeasuredChoice | None = None,
    remote: Sequence[RemoteDevice] = (),
) -> ResolvedLaunch:
    """Everything llama.cpp will be given, and the memory plan behind it.

    `remote` holds the devices of the machines in `config.rpc`, as checked by
    core/remote/probe.py: they come first in the device list (as llama.cpp puts RPC devices)
    and in the plan. A machine in config.rpc without its check is an error.

    GPU layers -1 means automatic: the most layers that fit the GPUs (real ones from
    `hardware`, or `assumed_gpus` for what-if questions) with the margin. Raises ConfigError
    for settings this machine cannot satisfy (a GPU that does not exist, a bad split).

    With the measured policy, when the pick does not fit the GPUs, the launch steps down
    through `measured.pairs` to the first that does (and says so). The seed rule is never
    changed silently: when its pair does not fit, the note names the largest BLAS size that
    would."""
    _check_config(config, hardware)
    n_ctx_effective = -(-config.contextsize // CTX_PAD) * CTX_PAD
    batch = resolve_batch(config, measured)
    devices = resolve_devices(config, hardware, assumed_gpus, gpu_offload, remote)
    _check_tensor_split(config, info, devices, hardware, gpu_offload)
    n_gpu_layers, note = resolve_gpu_layers(
        config.gpulayers, info.n_layers if info else None, devices.can_offload
    )
    request = OffloadRequest(config, devices, n_gpu_layers, note, n_ctx_effective, batch, measured)
    offload = place_layers(info, request)
    parallel, plan = _parallel(config, info, offload, devices.budgets, gpu_offload, n_ctx_effective)
    return ResolvedLaunch(
        model_path=model_path,
        config=config,
        n_ctx=config.contextsize,
        n_ctx_effective=n_ctx_effective,
        batch=offload.batch,
        n_gpu_layers=offload.n_gpu_layers,
        gpu_layers_note=offload.note,
        n_threads=config.resolved_threads(),
        flash_attn_type=flash_attn_type(config, FLASH_ATTN),
        device_handles=devices.choice.handles,
        device_names=devices.names,
        rpc_servers=tuple(map(str, config.rpc)),
        main_gpu=devices.main_gpu,
        split_mode=SPLIT_MODE[_split_mode_loaded(config, devices.assumed, gpu_offload)],
        tensor_split=offload.tensor_split,
        kv_type=KV_TYPES[config.kvtype],
        offload_kqv=config.kvoffload == "on",
        plan=plan,
        n_seq_max=parallel.n,
        parallel_note=parallel.why,
    )


def _parallel(
    config: LaunchConfig,
    info: GGUFInfo | None,
    offload: Offload,
    budgets: Sequence[GpuBudget],
    gpu_offload: bool,
    n_ctx: int,
) -> tuple[ParallelChoice, MemoryPlan | None]:
    """The `parallel` option, or the automatic number (core/launch/parallel.py) from where
    the plan put the layers; and the plan for that number. Each number is planned once: the
    plans the automatic rule asks whether 8, 4 or 2 fit serve the number chosen too."""
    plan = offload.plan
    plans: dict[int, MemoryPlan] = {}

    def planned(n: int) -> MemoryPlan:
        assert plan is not None and info is not None
        if n not in plans:
            gpus = budgets if any(d.is_gpu for d in plan.devices) else []
            same = plan.request.n_seq_max == n
            plans[n] = plan if same else plan_memory(info, replace(plan.request, n_seq_max=n), gpus)
        return plans[n]

    def auto() -> ParallelChoice:
        placement = "cpu"
        if gpu_offload and plan is not None and any(d.is_gpu and d.layers for d in plan.devices):
            placement = "partial" if plan.devices[-1].layers else "gpus"
        can_plan = plan is not None and info is not None
        fits = (lambda n: planned(n).fits) if can_plan else (lambda _n: False)
        return auto_parallel(placement, bool(config.rpc), n_ctx, fits)

    choice = chosen_parallel(config.parallel, auto)
    return choice, planned(choice.n) if plan is not None and info is not None else plan


def _check_tensor_split(
    config: LaunchConfig,
    info: GGUFInfo | None,
    devices: LaunchDevices,
    hardware: HardwareReport | None,
    gpu_offload: bool,
) -> None:
    """Tensor split's refusals, with the devices counted where they are known."""
    known = bool(devices.budgets) or devices.assumed or hardware is not None or not gpu_offload
    n_devices = len(devices.budgets) if known and devices.can_offload else 0 if known else None
    check_tensor_split(config, info.architecture if info else None, n_devices)


def _split_mode_loaded(config: LaunchConfig, what_if: bool, gpu_offload: bool) -> str:
    """What-if GPUs on a build that cannot use them: the plan splits by tensor, but Load
    runs on the CPU, where llama.cpp has no device to split across ("needs >= 1 devices")."""
    if config.splitmode == "tensor" and what_if and not gpu_offload:
        return "layer"
    return config.splitmode


def _check_config(config: LaunchConfig, hardware: HardwareReport | None) -> None:
    if config.kvtype != "f16" and config.flashattention == "off":
        raise ConfigError("a quantized KV cache needs flash attention (auto or on)")
    if config.splitmode == "row" and hardware is not None and hardware.gpu_offload:
        gpus = [d for d in hardware.devices if d.kind in ("GPU", "iGPU")]
        if gpus and not all(d.row_split for d in gpus):
            raise ConfigError(
                f"split mode row is not possible here: this llama.cpp's {hardware.backend} "
                "backend has no row-split buffers (every load would fail); use split mode "
                "layer"
            )
