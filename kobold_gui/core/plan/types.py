"""The memory plan's values: GPUs as the plan sees them, what is asked, what each device
gets. Plain data, so that the plan's parts (core/plan/compute_buffers.py) and its users share
them without importing the planner."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kobold_gui.core.units import MiB, human_bytes

# The CUDA context, cuBLAS handles and pools that a process adds on each GPU it uses:
# measured 597-600 MiB on an H100 with driver 580 / CUDA 13 (bench/results/gpu_check-*).
CUDA_CONTEXT_BYTES = 600 * MiB
# What a GPU's RPC server adds at the model's first compute beyond the buffers and the pool
# (cuBLAS' handles and workspace, created lazily; the server's CUDA context exists before the
# machine is added, so its free memory already lacks that): measured 74 MiB above buffers and
# pool on two H100s (bench/results/rpc_gpu-h100x2.json).
REMOTE_GPU_FIRST_USE_BYTES = 66 * MiB
# What the Vulkan backend adds on a GPU before any buffer (the driver's context, descriptor
# and staging buffers): VULKAN_CONTEXT_MEASURED says where the figure comes from.
VULKAN_CONTEXT_BYTES = 400 * MiB
VULKAN_CONTEXT_MEASURED = "not measured yet: an estimate"
DEFAULT_MARGIN_BYTES = 512 * MiB
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0}
SPLIT_MODES = ("layer", "tensor", "row", "none")
_LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class GpuBudget:
    """A GPU as the plan sees it: real (from NVML) or assumed (--assume-gpus 24GiB); or a
    remote machine's device (llama.cpp's RPC backend), whose server process already holds
    its CUDA context, so its free memory has it subtracted."""

    name: str
    total: int
    free: int
    remote: bool = False
    cpu: bool = False  # computes on a CPU backend (a remote server without a GPU)
    backend: str = "CUDA"  # the llama.cpp backend that runs it: CUDA, Vulkan, ...

    @property
    def context_bytes(self) -> int:
        """What using it adds before any buffer: a local GPU's CUDA (or Vulkan) context, or
        what a remote GPU's server adds at its first use."""
        if self.cpu:
            return 0
        if self.remote:
            return REMOTE_GPU_FIRST_USE_BYTES
        return VULKAN_CONTEXT_BYTES if self.backend == "Vulkan" else CUDA_CONTEXT_BYTES


@dataclass(frozen=True)
class PlanRequest:
    n_gpu_layers: int  # as llama.cpp gets it (n_layer + 1 = everything)
    n_ctx: int  # as llama.cpp pads it
    n_ubatch: int
    flash_attn: bool = True  # "auto" is on wherever the backend supports it
    split_mode: str = "layer"
    main_gpu: int = 0
    tensor_split: tuple[float, ...] | None = None
    kv_type: str = "f16"
    offload_kqv: bool = True
    margin: int = DEFAULT_MARGIN_BYTES
    use_mmap: bool = True
    # Sequences the context holds (parallel requests): one row of logits each in the output
    # buffer (compute_buffers.output_bytes); KV and compute buffers do not change with it.
    n_seq_max: int = 1


@dataclass(frozen=True)
class DevicePlan:
    name: str
    is_gpu: bool
    weights: int
    kv: int
    compute: int
    overhead: int  # CUDA context for a GPU in use
    free: int | None  # what the device has free now (None: the CPU, not checked)
    layers: tuple[int, ...]  # repeating layers here; n_layer means the output layer
    margin: int = 0
    remote: bool = False  # a device of another machine (RPC)
    backend: str = "CUDA"

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.compute + self.overhead

    @property
    def fits(self) -> bool:
        return self.free is None or self.total == 0 or self.total + self.margin <= self.free

    def describe(self) -> str:
        parts = (
            f"weights {human_bytes(self.weights)}, KV {human_bytes(self.kv)}, "
            f"compute {human_bytes(self.compute)}"
        )
        if self.overhead:
            what = "GPU pool" if self.remote else f"{self.backend} context"
            parts += f", {what} {human_bytes(self.overhead)}"
        budget = f" of {human_bytes(self.free)} free" if self.free is not None else ""
        return f"{self.name}: {human_bytes(self.total)}{budget} ({parts})"


@dataclass(frozen=True)
class MemoryPlan:
    request: PlanRequest
    devices: tuple[DevicePlan, ...]  # GPUs in order, then the CPU
    n_layer: int = 0
    messages: tuple[str, ...] = field(default=())
    pipeline: bool = False  # llama.cpp will pipeline ubatches across the GPUs

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    def to_json(self) -> dict[str, object]:
        return {
            "n_gpu_layers": self.request.n_gpu_layers,
            "tensor_split": list(self.request.tensor_split or ()) or None,
            "split_mode": self.request.split_mode,
            "margin": self.request.margin,
            "fits": self.fits,
            "messages": list(self.messages),
            "pipeline_parallel": self.pipeline,
            "devices": [
                {
                    "name": d.name,
                    "weights": d.weights,
                    "kv": d.kv,
                    "compute": d.compute,
                    "cuda_context": d.overhead,  # the name of old: any backend's context
                    "backend": d.backend,
                    "remote": d.remote,
                    "total": d.total,
                    "free": d.free,
                    "fits": d.fits,
                    "repeating_layers": len([i for i in d.layers if i < self.n_layer]),
                    "output_layer": self.n_layer in d.layers,
                }
                for d in self.devices
            ],
        }


class PlanError(ValueError):
    """The request cannot be planned (a bad split, a main GPU that does not exist)."""


def layer_of(tensor_name: str) -> int | None:
    m = _LAYER.match(tensor_name)
    return int(m.group(1)) if m else None
