"""The device step of a launch: which devices the model may go on, as llama.cpp's device list
(handles, and names for an engine in a child process) and as the memory plan's budgets.

The local GPUs come from the user's choice (config.gpus) among this machine's GPUs, or among
what-if GPUs for planning only; the remote machines' devices (config.rpc) come first, in the
order of config.rpc, as llama.cpp puts RPC devices first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kobold_gui.core.hardware.report import HardwareReport
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.values import GpuSelection
from kobold_gui.core.plan.memory_plan import GpuBudget
from kobold_gui.core.remote.probe import RemoteDevice


@dataclass(frozen=True)
class DeviceChoice:
    handles: tuple[int, ...] | None  # ggml devices for llama_model_params.devices; None = all
    main_gpu: int  # position in that list (llama_model_params.main_gpu)
    note: str


def select_devices(gpus: GpuSelection, maingpu: int, report: HardwareReport | None) -> DeviceChoice:
    """Turn the user's GPU choice (NVML indices) into llama.cpp's device list.

    The list is passed explicitly, in NVML's order (the window's), whenever llama.cpp's GPUs
    are all matched to NVML's: CUDA numbers its devices fastest first, so "all devices" in
    CUDA's order would put a split, the main GPU and the plan's shares on other cards. The
    choice reaches llama.cpp through the model params, not CUDA_VISIBLE_DEVICES (CUDA reads
    that once, at start). Raises ConfigError for GPUs that don't exist."""
    wanted = gpus.indices
    if report is None or not report.gpu_offload:
        return DeviceChoice(None, 0, "")
    present = [g.index for g in report.inventory.gpus if not g.lost]
    for index in (*(wanted or ()), *((maingpu,) if maingpu >= 0 else ())):
        if index not in present:
            have = ", ".join(map(str, present)) or "none"
            raise ConfigError(f"GPU {index} does not exist or is lost (GPUs here: {have})")
    chosen = list(wanted) if wanted is not None else present
    if maingpu >= 0 and maingpu not in chosen:
        raise ConfigError(f"the main GPU {maingpu} is not among the GPUs chosen ({gpus})")
    devices = [report.device_for_gpu(i) for i in chosen]
    if wanted is None and maingpu < 0 and (not chosen or not report.all_gpus_matched):
        return DeviceChoice(None, 0, "all GPUs")  # llama.cpp's own list: nothing to reorder
    if any(d is None for d in devices):
        raise ConfigError("llama.cpp has no device for one of the chosen GPUs")
    main = chosen.index(maingpu) if maingpu >= 0 else 0
    names = ", ".join(f"GPU {i}" for i in chosen)
    return DeviceChoice(tuple(d.handle for d in devices if d), main, names)


@dataclass(frozen=True)
class LaunchDevices:
    choice: DeviceChoice
    main_gpu: int  # the plan's main GPU: the device list's, or an assumed one
    budgets: list[GpuBudget]
    can_offload: bool
    names: tuple[str, ...] | None = None  # the device list by name (loads over RPC)
    assumed: bool = False  # what-if GPUs: planned, not loaded on


def resolve_devices(
    config: LaunchConfig,
    hardware: HardwareReport | None,
    assumed_gpus: Sequence[GpuBudget] | None,
    gpu_offload: bool,
    remote: Sequence[RemoteDevice],
) -> LaunchDevices:
    """The local devices chosen, with the remote machines' devices before them. Raises
    ConfigError for a GPU that does not exist or a machine not checked yet."""
    local = _local_devices(config, hardware, assumed_gpus, gpu_offload)
    return _with_remote(local, config, remote, hardware)


def remote_budget(device: RemoteDevice, number: int) -> GpuBudget:
    """A remote device as the plan sees it, named as llama.cpp will name it (RPC<n>)."""
    name = f"RPC{number} {device.endpoint}"
    if device.index or device.kind == "CPU":
        name += f" #{device.index} ({device.kind})" if device.index else f" ({device.kind})"
    return GpuBudget(name, device.memory_total, device.memory_free, remote=True, cpu=device.is_cpu)


def _local_devices(
    config: LaunchConfig,
    hardware: HardwareReport | None,
    assumed_gpus: Sequence[GpuBudget] | None,
    gpu_offload: bool,
) -> LaunchDevices:
    choice = select_devices(config.gpus, config.maingpu, hardware)
    if assumed_gpus is None:
        offload = gpu_offload and not config.gpus.is_none
        return LaunchDevices(choice, choice.main_gpu, _budgets(hardware, config), offload)
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
    budgets = [assumed_gpus[i] for i in indices]
    return LaunchDevices(choice, main_gpu, budgets, True, assumed=True)


def _with_remote(
    devices: LaunchDevices,
    config: LaunchConfig,
    remote: Sequence[RemoteDevice],
    hardware: HardwareReport | None,
) -> LaunchDevices:
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
    return LaunchDevices(
        devices.choice, main, budgets + devices.budgets, True, tuple(names), devices.assumed
    )


def _local_names(choice: DeviceChoice, hardware: HardwareReport | None) -> list[str] | None:
    if hardware is None:
        return None
    if choice.handles is None:
        return [d.name for d in hardware.devices if d.kind in ("GPU", "iGPU")]
    by_handle = {d.handle: d.name for d in hardware.devices}
    names = [by_handle.get(h) for h in choice.handles]
    return None if None in names else [n for n in names if n]


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
    return [
        GpuBudget(
            g.name,
            g.memory_total,
            g.memory_free + g.memory_used_by_us,
            backend=_backend_of(hardware, g.index),
        )
        for g in gpus
    ]


def _backend_of(hardware: HardwareReport, gpu: int) -> str:
    """The backend of the llama.cpp device that runs a GPU (CUDA, Vulkan, ...)."""
    device = hardware.device_for_gpu(gpu)
    return device.backend if device is not None and device.backend else "CUDA"
