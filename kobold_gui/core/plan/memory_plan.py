"""Where every part of a model will live, and how much memory each device needs, before
loading. Per device (each GPU, then the CPU): weights, KV cache, compute buffer, and for a
GPU the CUDA context, against its free memory.

Layer assignment follows llama.cpp (llama_model::load_tensors in llama-model.cpp): the
input embeddings stay on the CPU; with n_gpu_layers = N, the last N of the n_layer + 1
"layers" (the output layer counts as one) are offloaded, i_gpu_start = n_layer + 1 - N;
offloaded layer il goes to the first device whose cumulative normalized split exceeds
(il - i_gpu_start) / N (std::upper_bound). With no tensor split, the split is each device's
free memory; with split mode "none" only the main GPU is used.

Compute buffers are a model of ggml's graph allocator, calibrated against llama.cpp's own
"compute buffer size" lines (CPU loads here, CUDA loads on an H100): the attention mask
(n_ctx x n_ubatch, f16 with flash attention, f32 without) lives through the graph, plus the
largest of: the logits (n_vocab x n_ubatch f32, on the device holding the output layer),
the FFN activations (3 x n_ff x n_ubatch f32, n_ff x experts used for MoE), and without flash
attention the KQ matrix (n_ctx x n_ubatch x n_head f32). bench/plan_accuracy.py measures it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import replace

from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.compute_buffers import (
    compute_bytes,
    cpu_boundary_bytes,
    cuda_pool_bytes,
    hidden_bytes,
    host_compute_bytes,
    mask_bytes,
    output_bytes,
    pipelines,
)
from kobold_gui.core.plan.tensor_split import tensor_split_parts
from kobold_gui.core.plan.types import (
    CUDA_CONTEXT_BYTES,
    DEFAULT_MARGIN_BYTES,
    KV_BYTES_PER_ELEMENT,
    SPLIT_MODES,
    DevicePlan,
    GpuBudget,
    MemoryPlan,
    PlanError,
    PlanRequest,
    layer_of,
)
from kobold_gui.core.units import GiB, MiB, human_bytes

__all__ = [
    "CUDA_CONTEXT_BYTES",
    "DEFAULT_MARGIN_BYTES",
    "DevicePlan",
    "GiB",
    "GpuBudget",
    "MemoryPlan",
    "MiB",
    "PlanError",
    "PlanRequest",
    "assign_layers",
    "auto_gpu_layers",
    "parse_size",
    "pipelines",
    "plan_memory",
]


def _f32(x: float) -> float:
    """Round to single precision: llama.cpp computes the split points in float."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def normalized_splits(shares: Sequence[float]) -> list[float]:
    """Cumulative, normalized split points, as llama.cpp computes them (in float)."""
    if any(s < 0 for s in shares):
        raise PlanError("tensor split entries must not be negative")
    if sum(shares) <= 0:
        raise PlanError("a tensor split needs at least one share above zero")
    points, running = [], 0.0
    for s in shares:
        running = _f32(running + _f32(s))
        points.append(running)
    return [_f32(p / running) for p in points]


def assign_layers(n_layer: int, n_gpu_layers: int, shares: Sequence[float]) -> list[int]:
    """Device index for each of the n_layer + 1 layers (-1 = CPU; the last is the output)."""
    import bisect

    points = normalized_splits(shares) if shares else []
    start = max(n_layer + 1 - n_gpu_layers, 0)
    active = min(n_gpu_layers, n_layer + 1) if points else 0
    out = []
    for il in range(n_layer + 1):
        if il < start or il - start >= active:
            out.append(-1)
        else:
            gpu = bisect.bisect_right(points, _f32((il - start) / active))
            out.append(min(gpu, len(points) - 1))
    return out


def plan_memory(info: GGUFInfo, req: PlanRequest, gpus: Sequence[GpuBudget]) -> MemoryPlan:
    _check_request(req, gpus)
    n_layer = info.n_layers
    if req.split_mode == "tensor" and gpus:
        return _tensor_plan(info, req, gpus)
    shares = _shares(req, gpus)
    where = _layer_devices(n_layer, req, shares)
    n_dev = len(gpus)
    weights = _weights(info, req, where, shares, n_dev)
    kv = _kv(info, req, where, n_dev)
    pipeline = pipelines(req, n_dev, n_layer)
    compute = _compute(info, req, gpus, where, pipeline)
    devices = _device_plans(info, req, gpus, where, weights, kv, compute)
    plan = MemoryPlan(req, tuple(devices), n_layer, pipeline=pipeline)
    return MemoryPlan(req, plan.devices, n_layer, tuple(_messages(plan, info)), pipeline)


def _tensor_plan(info: GGUFInfo, req: PlanRequest, gpus: Sequence[GpuBudget]) -> MemoryPlan:
    """Tensor split (core/plan/tensor_split.py): every device holds a slice of every offloaded
    layer; the CPU keeps the first layers and the mapped file as with the layer split."""
    n_dev, n_layer = len(gpus), info.n_layers
    parts = tensor_split_parts(info, req, n_dev)
    where = [0 if i in parts.layers else -1 for i in range(n_layer + 1)]
    parts.weights[n_dev] = _weights(info, req, where, [], n_dev)[n_dev]
    devices = _device_plans(info, req, gpus, where, parts.weights, parts.kv, parts.compute)
    devices = [replace(d, layers=parts.layers) if d.is_gpu else d for d in devices]
    plan = MemoryPlan(req, tuple(devices), n_layer)
    return MemoryPlan(req, plan.devices, n_layer, tuple(_messages(plan, info)))


def _check_request(req: PlanRequest, gpus: Sequence[GpuBudget]) -> None:
    if req.split_mode not in SPLIT_MODES:
        raise PlanError(f"split mode must be one of {', '.join(SPLIT_MODES)}")
    if req.kv_type not in KV_BYTES_PER_ELEMENT:
        raise PlanError(f"KV cache type must be one of {', '.join(KV_BYTES_PER_ELEMENT)}")
    if gpus and not 0 <= req.main_gpu < len(gpus):
        raise PlanError(f"main GPU {req.main_gpu} does not exist (GPUs: 0 to {len(gpus) - 1})")
    if req.tensor_split is not None and len(req.tensor_split) != len(gpus):
        raise PlanError(
            f"the tensor split has {len(req.tensor_split)} entries for {len(gpus)} GPU(s)"
        )


def _shares(req: PlanRequest, gpus: Sequence[GpuBudget]) -> list[float]:
    """Each GPU's share of the offloaded layers (empty: nothing offloaded)."""
    if not gpus or req.n_gpu_layers <= 0:
        return []
    if req.split_mode == "none":
        return [1.0 if i == req.main_gpu else 0.0 for i in range(len(gpus))]
    if req.tensor_split is not None and any(req.tensor_split):
        return list(req.tensor_split)
    return [float(g.free) for g in gpus]


def _layer_devices(n_layer: int, req: PlanRequest, shares: list[float]) -> list[int]:
    """The device of each of the n_layer + 1 layers (-1: the CPU; the last is the output)."""
    where = assign_layers(n_layer, req.n_gpu_layers, shares) if shares else [-1] * (n_layer + 1)
    if req.split_mode == "row" and shares:
        # Row split: matrices of offloaded layers are cut by rows across the GPUs by the
        # split; KV and small tensors sit on the main GPU. Approximate (not measured here).
        where = [req.main_gpu if d >= 0 else -1 for d in where]
    return where


def _slot(device: int, n_dev: int) -> int:
    """The index of a device in the per-device lists, whose last entry (n_dev) is the CPU."""
    return n_dev if device < 0 else device


def _weights(
    info: GGUFInfo, req: PlanRequest, where: list[int], shares: list[float], n_dev: int
) -> list[int]:
    """Weight bytes per device (the CPU last)."""
    weights = [0] * (n_dev + 1)  # index n_dev = CPU
    output_dev = where[info.n_layers]
    has_output = any(t.name == "output.weight" for t in info.tensors)
    mmap = req.use_mmap
    # The CPU's weights are mmapped: llama.cpp maps one range per file (split models).
    cpu_spans: dict[int, tuple[int, int]] = {}
    for t in info.tensors:
        layer = layer_of(t.name)
        if layer is not None:
            dev = where[layer] if layer < len(where) else -1
        elif t.name.startswith(("output", "cls")):
            dev = output_dev
        else:
            dev = -1  # token embeddings and other inputs stay on the CPU
        if req.split_mode == "row" and dev >= 0 and layer is not None and len(t.name) and shares:
            total_share = sum(shares)
            for g, s in enumerate(shares):
                weights[g] += round(t.n_bytes * s / total_share)
            continue
        weights[_slot(dev, n_dev)] += t.n_bytes
        if dev < 0 and req.use_mmap:
            start, end = cpu_spans.get(t.file_index, (t.offset, t.offset + t.n_bytes))
            cpu_spans[t.file_index] = (min(start, t.offset), max(end, t.offset + t.n_bytes))
        if t.name == "token_embd.weight" and not has_output and (output_dev >= 0 or not mmap):
            # Tied embeddings: llama.cpp reuses the token embeddings as the output matrix.
            # A copy is loaded where the output layer lives; on the CPU with mmap it points
            # into the same mapped pages (the default model maps 92.10 MiB, not 120.79).
            weights[_slot(output_dev, n_dev)] += t.n_bytes
    if req.use_mmap and cpu_spans:
        # The mapped range spans GPU tensors stored between CPU ones; those pages are
        # mapped but never read, so this is address space more than RAM.
        mapped = sum(end - start for start, end in cpu_spans.values())
        weights[n_dev] = max(weights[n_dev], mapped)
    return weights


def _kv(info: GGUFInfo, req: PlanRequest, where: list[int], n_dev: int) -> list[int]:
    """KV cache bytes per device (the CPU last): every layer keeps its K and V on its own
    device (or the CPU, unoffloaded)."""
    kv = [0] * (n_dev + 1)
    per_layer_kv = _kv_bytes_per_layer(info, req)
    for layer in range(info.n_layers):
        dev = where[layer] if req.offload_kqv else -1
        kv[_slot(dev, n_dev)] += per_layer_kv
    return kv


def _compute(
    info: GGUFInfo, req: PlanRequest, gpus: Sequence[GpuBudget], where: list[int], pipeline: bool
) -> list[int]:
    """Compute buffer bytes per device (the CPU last).

    The output layer is offloaded first (llama.cpp offloads the last layers), so with any
    GPU layers the GPU holding it runs the logits, and llama.cpp's op offload runs the CPU
    layers' big matmuls there too: the CPU keeps a small buffer."""
    n_dev, n_layer = len(gpus), info.n_layers
    compute = [0] * (n_dev + 1)
    gpu_used = any(d >= 0 for d in where)
    partial = any(d < 0 for d in where)
    first_gpu = next((d for d in where if d >= 0), None)  # gets the CPU layers' output
    # Op offload (the CPU layers' matmuls run on a GPU) needs a local GPU backend: the RPC
    # backend offers none, so over remote devices only the CPU runs its layers.
    op_offload = any(not gpus[d].remote for d in set(where) if d >= 0)
    for dev in range(n_dev):
        layers_here = any(where[i] == dev for i in range(n_layer))
        if layers_here or where[n_layer] == dev:
            boundary = 0
            if partial and req.flash_attn and dev == first_gpu:
                boundary = (
                    cpu_boundary_bytes(info, req, where)
                    if op_offload
                    else 2 * hidden_bytes(info, req)  # measured over two CPU RPC servers
                )
            compute[dev] = compute_bytes(
                info, req, layers_here, where[n_layer] == dev, pipeline, boundary
            )
            if partial and not req.flash_attn:  # hidden states and a mask from the CPU
                compute[dev] += hidden_bytes(info, req) + mask_bytes(req)
    if gpu_used:
        compute[n_dev] = host_compute_bytes(info, req, pipeline)
        if partial and not op_offload:
            compute[n_dev] += compute_bytes(info, req, True, False)
    else:
        compute[n_dev] = compute_bytes(info, req, True, True) + output_bytes(
            info.n_vocab, req.n_seq_max
        )
    return compute


def _device_plans(
    info: GGUFInfo,
    req: PlanRequest,
    gpus: Sequence[GpuBudget],
    where: list[int],
    weights: list[int],
    kv: list[int],
    compute: list[int],
) -> list[DevicePlan]:
    """One plan per GPU (local ones numbered as CUDA does), then the CPU's."""
    n_dev, n_layer = len(gpus), info.n_layers
    devices = []
    local = 0
    for g, gpu in enumerate(gpus):
        used = weights[g] or kv[g] or compute[g]
        pool = cuda_pool_bytes(info, req) if gpu.backend == "CUDA" and not gpu.cpu else 0
        devices.append(
            DevicePlan(
                name=gpu.name if gpu.remote else f"GPU {local} ({gpu.name})",
                is_gpu=True,
                weights=weights[g],
                kv=kv[g],
                compute=compute[g],
                overhead=gpu.context_bytes + pool if used else 0,
                free=gpu.free,
                layers=tuple(i for i in range(n_layer + 1) if where[i] == g),
                margin=req.margin,
                remote=gpu.remote,
                backend=gpu.backend,
            )
        )
        local += not gpu.remote
    devices.append(
        DevicePlan(
            name="CPU (RAM)",
            is_gpu=False,
            weights=weights[n_dev],
            kv=kv[n_dev],
            compute=compute[n_dev],
            overhead=0,
            free=None,
            layers=tuple(i for i in range(n_layer + 1) if where[i] < 0),
        )
    )
    return devices


def _kv_bytes_per_layer(info: GGUFInfo, req: PlanRequest) -> int:
    heads = info.head_count or 1
    kv_heads = info.head_count_kv or heads
    head_k = info.key_length or (info.embedding_length or 0) // heads
    head_v = info.value_length or (info.embedding_length or 0) // heads
    per_el = KV_BYTES_PER_ELEMENT[req.kv_type]
    return round(req.n_ctx * kv_heads * (head_k + head_v) * per_el)


def _messages(plan: MemoryPlan, info: GGUFInfo) -> list[str]:
    out = []
    for d in plan.devices:
        if not d.fits and d.free is not None:
            need = d.total + d.margin
            hint = (
                "lower the context or quantize the KV cache"
                if d.kv > d.weights / 4
                else ("offload fewer layers or move more of the split to another GPU")
            )
            out.append(
                f"needs {human_bytes(need)} on {d.name} (with the {human_bytes(d.margin)} "
                f"margin) for context {plan.request.n_ctx}, {human_bytes(d.free)} free: {hint}"
            )
    return out


def auto_gpu_layers(
    info: GGUFInfo, base: PlanRequest, gpus: Sequence[GpuBudget]
) -> tuple[MemoryPlan, str]:
    """The most layers (and a split proportional to free VRAM) that fit every GPU with the
    margin, like KoboldCPP's auto layers and llama.cpp's --fit. Returns the plan and why."""
    total_layers = info.n_layers + 1
    if not gpus:
        return plan_memory(info, _with(base, 0, None), gpus), "no GPU: everything on the CPU"
    split = base.tensor_split
    if (split is None or not any(split)) and base.split_mode != "tensor":  # tensor: even
        # By free memory, as llama.cpp does, but without the GPUs that cannot even hold a
        # CUDA context and the margin: a layer sent there could never fit.
        usable = [max(0, g.free - g.context_bytes - base.margin) for g in gpus]
        total_free = sum(usable)
        if total_free == 0:
            plan = plan_memory(info, _with(base, 0, None), gpus)
            return plan, "no GPU has room beyond the CUDA context and the margin"
        split = tuple(round(u / total_free, 4) for u in usable)
    best = plan_memory(info, _with(base, 0, split), gpus)
    lo, hi = 0, total_layers
    while lo < hi:  # more layers never needs less memory on the GPUs: binary search
        mid = (lo + hi + 1) // 2
        plan = plan_memory(info, _with(base, mid, split), gpus)
        if plan.fits:
            lo, best = mid, plan
        else:
            hi = mid - 1
    if lo == total_layers:
        return best, f"all {total_layers} layers fit"
    if lo == 0:
        first = plan_memory(info, _with(base, 1, split), gpus)
        why = "; ".join(first.messages) or "not even one layer fits"
        return best, f"no layer fits on the GPU: {why}"
    return best, f"{lo} of {total_layers} layers fit; the rest run on the CPU"


def _with(base: PlanRequest, n_gpu_layers: int, split: tuple[float, ...] | None) -> PlanRequest:
    return replace(base, n_gpu_layers=n_gpu_layers, tensor_split=split)


def parse_size(text: str) -> int:
    """'24GiB', '12 GB', '8192MiB', '24' (GiB) -> bytes."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B?)?\s*", text, re.IGNORECASE)
    if not m:
        raise PlanError(f"not a size: {text!r} (try 24GiB)")
    value = float(m.group(1))
    unit = (m.group(2) or "GiB").upper().replace("IB", "").replace("B", "")
    factor = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}[unit[0]]
    return int(value * factor)
