"""The effective launch configuration: what llama.cpp will really be given, and why.

Computed without loading the model, so the window's labels and `--show-config` show the same
values the engine then passes (and a test reads back from the loaded context)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kobold_gui.core.hardware.report import DeviceChoice, HardwareReport, select_devices
from kobold_gui.core.launch.batching import (
    BLAS_STOPS,
    BatchPlan,
    BatchPolicy,
    CustomPolicy,
    KoboldRule,
    MeasuredChoice,
    MeasuredPolicy,
    SeedFallback,
    effective_batch,
    get_policy,
)
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
from kobold_gui.core.remote.probe import RemoteDevice

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
    # The same list by llama.cpp's names, for the engine's child process (loads over RPC).
    device_names: tuple[str, ...] | None = None
    rpc_servers: tuple[str, ...] = ()  # remote machines, their devices first in the list
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
                "gpus": str(self.config.gpus),
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


@dataclass(frozen=True)
class _Devices:
    choice: DeviceChoice
    main_gpu: int  # the plan's main GPU: the device list's, or an assumed one
    budgets: list[GpuBudget]
    can_offload: bool
    names: tuple[str, ...] | None = None  # the device list by name (loads over RPC)
    assumed: bool = False  # what-if GPUs: planned, not loaded on


def remote_budget(device: RemoteDevice, number: int) -> GpuBudget:
    """A remote device as the plan sees it, named as llama.cpp will name it (RPC<n>)."""
    name = f"RPC{number} {device.endpoint}"
    if device.index or device.kind == "CPU":
        name += f" #{device.index} ({device.kind})" if device.index else f" ({device.kind})"
    return GpuBudget(name, device.memory_total, device.memory_free, remote=True, cpu=device.is_cpu)


def _with_remote(
    devices: _Devices,
    config: LaunchConfig,
    remote: Sequence[RemoteDevice],
    hardware: HardwareReport | None,
) -> _Devices:
    """Put the remote machines' devices before the local GPUs, in config.rpc's order."""
    if not config.rpc:  # the local list by name too, for an engine in a child process
        explicit = devices.choice.handles is not None
        local = _local_names(devices.choice, hardware) if explicit else None
        return replace(devices, names=tuple(local) if local is not None else None)
    ordered: list[RemoteDevice] = []
    for endpoint in map(str, config.rpc):
        found = [d for d in remote if d.endpoint == endpoint]
        if not found:
            raise ConfigError(f"{endpoint} has not answered yet: check it (Machines) first")
        ordered.extend(sorted(found, key=lambda d: d.index))
    budgets = [remote_budget(d, i) for i, d in enumerate(ordered)]
    names = [f"RPC{i}" for i in range(len(ordered))]
    if devices.budgets and not devices.assumed:  # local GPUs: by name, in the list's order
        local = _local_names(devices.choice, hardware)
        if local is None:
            raise ConfigError("the local GPUs cannot be listed by name beside remote devices")
        names += local
    # The main GPU (split mode none or row) stays a local one when there is one.
    main = devices.main_gpu + len(ordered) if devices.budgets else 0
    return _Devices(
        devices.choice,
        main,
        budgets + devices.budgets,
        True,
        tuple(names),
        devices.assumed,
    )


def _local_names(choice: DeviceChoice, hardware: HardwareReport | None) -> list[str] | None:
    if hardware is None:
        return None
    if choice.handles is None:
        return [d.name for d in hardware.devices if d.kind in ("GPU", "iGPU")]
    by_handle = {d.handle: d.name for d in hardware.devices}
    names = [by_handle.get(h) for h in choice.handles]
    return None if None in names else [n for n in names if n]


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
    devices = _with_remote(
        _resolve_devices(config, hardware, assumed_gpus, gpu_offload), config, remote, hardware
    )
    n_gpu_layers, note = resolve_gpu_layers(
        config.gpulayers, info.n_layers if info else None, devices.can_offload
    )
    split = config.tensor_split or None
    plan = None
    if info is not None and devices.budgets and devices.can_offload:
        base = _plan_request(config, n_gpu_layers, n_ctx_effective, batch, devices.main_gpu)
        plan, batch, note = _plan_offload(info, base, devices.budgets, config, batch, measured)
        n_gpu_layers = plan.request.n_gpu_layers
        if config.gpulayers < 0:
            split = plan.request.tensor_split if len(devices.budgets) > 1 else None
    elif info is not None:  # no GPU to plan for: the CPU's share of RAM
        cpu_only = replace(_plan_request(config, 0, n_ctx_effective, batch, 0), tensor_split=None)
        plan = plan_memory(info, cpu_only, [])
    if plan is not None and plan.pipeline:
        batch = _pipeline_reason(batch, len(devices.budgets), measured)
    return ResolvedLaunch(
        model_path=model_path,
        config=config,
        n_ctx=config.contextsize,
        n_ctx_effective=n_ctx_effective,
        batch=batch,
        n_gpu_layers=n_gpu_layers,
        gpu_layers_note=note,
        n_threads=config.resolved_threads(),
        flash_attn_type=FLASH_ATTN[config.flashattention],
        device_handles=devices.choice.handles,
        device_names=devices.names,
        rpc_servers=tuple(map(str, config.rpc)),
        main_gpu=devices.main_gpu,
        split_mode=SPLIT_MODE[config.splitmode],
        tensor_split=split,
        kv_type=KV_TYPES[config.kvtype],
        offload_kqv=config.kvoffload == "on",
        plan=plan,
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


def _resolve_devices(
    config: LaunchConfig,
    hardware: HardwareReport | None,
    assumed_gpus: Sequence[GpuBudget] | None,
    gpu_offload: bool,
) -> _Devices:
    choice = select_devices(config.gpus, config.maingpu, hardware)
    if assumed_gpus is None:
        offload = gpu_offload and not config.gpus.is_none
        return _Devices(choice, choice.main_gpu, _budgets(hardware, config), offload)
    # What-if GPUs (--assume-gpus, simulated ones, or a build that cannot use the real ones):
    # the GPU choice picks among them by index, as it would among real ones.
    wanted = config.gpus.indices
    indices = list(wanted) if wanted is not None else list(range(len(assumed_gpus)))
    last = len(assumed_gpus) - 1
    for index in indices:
        if index > last:
            raise ConfigError(f"GPU {index} does not exist (GPUs: 0 to {last})")
    if config.maingpu > last:
        raise ConfigError(f"main GPU {config.maingpu} does not exist (GPUs: 0 to {last})")
    if config.maingpu >= 0 and config.maingpu not in indices:
        raise ConfigError(f"the main GPU {config.maingpu} is not among the GPUs chosen")
    main_gpu = indices.index(config.maingpu) if config.maingpu >= 0 else 0
    return _Devices(choice, main_gpu, [assumed_gpus[i] for i in indices], True, assumed=True)


def _plan_request(
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
    )


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


def _budgets(hardware: HardwareReport | None, config: LaunchConfig) -> list[GpuBudget]:
    """The GPUs the model may use, in llama.cpp's device order, with their free memory."""
    if hardware is None or not hardware.gpu_offload:
        return []
    gpus = [
        g
        for g in hardware.inventory.gpus
        if not g.lost and config.gpus.allows(g.index) and hardware.device_for_gpu(g.index)
    ]
    # What this process already holds (a loaded model) is freed by the next load.
    return [GpuBudget(g.name, g.memory_total, g.memory_free + g.memory_used_by_us) for g in gpus]
