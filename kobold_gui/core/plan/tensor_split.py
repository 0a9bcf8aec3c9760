"""The memory plan under llama.cpp's tensor split (LLAMA_SPLIT_MODE_TENSOR): what each device
holds when every offloaded layer's matrices are cut across all of them.

llama.cpp puts the offloaded layers on one "Meta" device over the chosen devices
(src/llama.cpp, llama_prepare_model_devices); layers before i_gpu_start = n_layer + 1 -
n_gpu_layers stay on the CPU as with the layer split, the token embeddings too. Each tensor
on the Meta device is split or mirrored by llama_meta_device_get_split_state
(src/llama-model.cpp):
- split by heads: attn_q / attn_k / attn_v / attn_qkv weights (axis 1) and their biases
  (axis 0), attn_output.weight (axis 0), the KV cache cache_k_l* / cache_v_l* (axis 0, by
  KV heads); split points rounded down to whole heads (granularity_q, _kv, _v);
- split by the FFN's width: ffn_up / ffn_gate (axis 1, fused up+gate as two segments) and
  ffn_down (axis 0), experts' tensors alike, rounded to lcm(block size, 128);
- output.weight by vocabulary rows (axis 1), output.bias (axis 0);
- mirrored (whole on every device): norms, attn_output.bias, ffn_down.bias, the shared
  experts, rope tables, and tied embeddings used as the output (token_embd.weight);
- a layer's rounding is rotated by its index (the device that gets the remainder turns),
  so that indivisible heads even out over the layers.
Shares are the tensor split (cumulative, in float), or an even split when none is given.

The Meta buffer (ggml/src/ggml-backend-meta.cpp) allocates, on every device, the compute
buffer of the whole graph as measured with whole-size tensors (get_alloc_size is the
largest of the devices' for the unsplit tensor; alloc_buffer allocates that size on each),
so each device's compute buffer is the one-device graph's. At the first compute it adds
ceil(log2(n)) buffers of the largest all-reduced node (one hidden state) per device, which
llama.cpp does not log. Checked against llama.cpp's log over two RPC servers (CPU) in
tests/core/test_tensor_split_rpc.py; on CUDA GPUs (NCCL's own buffers, op offload with a
partial offload) not measured yet: bench/tensor_split.py measures it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from kobold_gui.core.models.gguf_info import GGUFInfo, TensorInfo
from kobold_gui.core.plan.compute_buffers import compute_bytes, hidden_bytes, host_compute_bytes
from kobold_gui.core.plan.types import KV_BYTES_PER_ELEMENT, PlanRequest, layer_of

# Where the split-state model is not measured (the rest is, over RPC): said in the plan.
NOT_MEASURED = "tensor split on GPUs: not measured yet (NCCL buffers, op offload)"


@dataclass(frozen=True)
class TensorSplitParts:
    """Per device (the GPUs, then the CPU last): weights, KV cache, compute."""

    weights: list[int]
    kv: list[int]
    compute: list[int]
    layers: tuple[int, ...]  # the layers every device holds a slice of (n_layer: output)


def _f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


def split_counts(
    ne: int, granularity: int, n: int, shares: Sequence[float] | None, rotation: int
) -> list[int]:
    """How many of a tensor's `ne` rows (or columns) each device gets: the loop at the end of
    llama_meta_device_get_split_state (src/llama-model.cpp), split points in float and
    rounded down to the granularity, the remainder on the last device of the rotation."""
    out = [0] * n
    scan: list[float] = []
    for j in range(n):
        share = _f32(shares[(j + rotation) % n]) if shares else 0.0
        scan.append(_f32(share + (scan[-1] if scan else 0.0)))
    low = 0
    for j in range(n - 1):
        if not scan or scan[-1] == 0.0:
            high = ne * (j + 1) // n
        else:
            high = int(_f32(_f32(ne * scan[j]) / scan[-1]))
        high -= high % granularity
        out[(j + rotation) % n] = high - low
        low = high
    out[(n - 1 + rotation) % n] = ne - low
    return out


def _block(type_name: str) -> int:
    try:
        return int(GGML_QUANT_SIZES[GGMLQuantizationType[type_name]][0])
    except KeyError:
        return 1


class _Heads:
    """The attention granularities of get_split_granularity (regular attention layers)."""

    def __init__(self, info: GGUFInfo, n: int, out_block: int) -> None:
        heads = info.head_count or 1
        kv_heads = info.head_count_kv or heads
        embd = info.embedding_length or 0
        self.head_k = info.key_length or embd // heads
        self.head_v = info.value_length or embd // heads
        self.n_gqa = max(1, heads // kv_heads)
        n_embd_q = self.n_gqa * self.head_k
        perf = out_block
        while perf < 128 and perf * n < n_embd_q:
            perf *= 2
        self.q = math.lcm(n_embd_q, perf)
        self.head = self.q // self.head_k  # for tensors with one value per head
        self.kv = self.q // self.n_gqa
        self.v = (self.kv // self.head_k) * self.head_v


def _rule(name: str, t: TensorInfo, info: GGUFInfo, heads: _Heads, ffn: int) -> tuple[int, int]:
    """(axis, granularity) of a layer tensor's split; axis -1: mirrored."""
    part = name.split(".", 2)[2] if name.startswith("blk.") else name
    rules = {
        "attn_q.weight": (1, heads.q),
        "attn_q.bias": (0, heads.q),
        "attn_k.weight": (1, heads.kv),
        "attn_k.bias": (0, heads.kv),
        "attn_v.weight": (1, heads.v),
        "attn_v.bias": (0, heads.v),
        "attn_output.weight": (0, heads.head * heads.head_v),
        "attn_sinks.weight": (0, heads.head),
        "output.weight": (1, 1),
        "output.bias": (0, 1),
    }
    if part in rules:
        return rules[part]
    if part in ("attn_q_norm.weight", "attn_k_norm.weight"):
        return (1, heads.kv) if len(t.shape) > 1 and t.shape[1] > 1 else (-1, 1)
    if part.startswith(("ffn_up", "ffn_gate")) and "shexp" not in part:
        return (1 if part.endswith("weight") else 0), ffn
    if part in ("ffn_down.weight", "ffn_down_exps.weight"):
        return 0, ffn
    if part.startswith(("attn_gate", "ssm_", "attn_qkv")):
        return (1 if part.endswith("weight") and "ssm_a" not in part else 0), 1
    return -1, 1  # everything else is mirrored


def _fractions(
    t: TensorInfo,
    info: GGUFInfo,
    n: int,
    shares: Sequence[float] | None,
    by_name: dict[str, TensorInfo],
) -> list[float]:
    """Each device's fraction of one tensor on the Meta device."""
    layer = layer_of(t.name)
    prefix = f"blk.{layer}." if layer is not None else ""
    out_t = by_name.get(prefix + "attn_output.weight") or t
    down = by_name.get(prefix + "ffn_down.weight") or by_name.get(prefix + "ffn_down_exps.weight")
    heads = _Heads(info, n, _block(out_t.type_name))
    ffn = math.lcm(_block((down or t).type_name), 128)
    axis, granularity = _rule(t.name, t, info, heads, ffn)
    if axis < 0 or len(t.shape) <= axis or t.shape[axis] == 0:
        return [1.0] * n
    ne = t.shape[axis]
    rotation = (layer if layer is not None else info.n_layers) % n
    segments = [(ne, 1)]
    if t.name.endswith(("ffn_up.weight", "ffn_gate_up.weight", "ffn_gate_up_exps.weight")):
        n_ff = info.feed_forward_length or 0
        if ne % 2 == 0 and (ne == 2 * n_ff or "gate_up" in t.name):
            segments = [(ne // 2, 2)]
    counts = [0] * n
    for ne_s, repeat in segments:
        for j, c in enumerate(split_counts(ne_s, max(1, granularity), n, shares, rotation)):
            counts[j] += c * repeat
    return [c / ne for c in counts]


def tensor_split_parts(info: GGUFInfo, req: PlanRequest, n: int) -> TensorSplitParts:
    """Weights, KV cache and compute per device for n devices (then the CPU)."""
    shares = req.tensor_split if req.tensor_split and any(req.tensor_split) else None
    n_layer = info.n_layers
    start = max(n_layer + 1 - req.n_gpu_layers, 0) if req.n_gpu_layers > 0 else n_layer + 1
    on_meta = [il >= start for il in range(n_layer + 1)]
    weights = [0] * (n + 1)
    by_name = {t.name: t for t in info.tensors}
    has_output = "output.weight" in by_name
    for t in info.tensors:
        layer = layer_of(t.name)
        if layer is not None:
            meta = layer < len(on_meta) and on_meta[layer]
        else:
            meta = t.name.startswith(("output", "cls")) and on_meta[n_layer]
        tied = t.name == "token_embd.weight" and not has_output and on_meta[n_layer]
        if not meta:
            weights[n] += t.n_bytes
        if meta or tied:  # tied embeddings: a mirrored copy where the output runs
            fractions = [1.0] * n if tied else _fractions(t, info, n, shares, by_name)
            for j, f in enumerate(fractions):
                weights[j] += round(t.n_bytes * f)
    kv = _kv(info, req, n, shares, on_meta, by_name)
    compute = _compute(info, req, n, on_meta)
    layers = tuple(i for i in range(n_layer + 1) if on_meta[i])
    return TensorSplitParts(weights, kv, compute, layers)


def _kv(
    info: GGUFInfo,
    req: PlanRequest,
    n: int,
    shares: Sequence[float] | None,
    on_meta: list[bool],
    by_name: dict[str, TensorInfo],
) -> list[int]:
    """cache_k_l* / cache_v_l*: split by KV heads on axis 0 (granularity_kv / _v), rotated
    by the layer; with the KV cache kept in RAM (or a CPU layer) whole on the CPU."""
    kv = [0] * (n + 1)
    per_el = KV_BYTES_PER_ELEMENT[req.kv_type]
    heads_kv = info.head_count_kv or info.head_count or 1
    for il in range(info.n_layers):
        out_t = by_name.get(f"blk.{il}.attn_output.weight")
        heads = _Heads(info, n, _block(out_t.type_name) if out_t else 1)
        for width, granularity in ((heads.head_k, heads.kv), (heads.head_v, heads.v)):
            ne = heads_kv * width
            if not (on_meta[il] and req.offload_kqv):
                kv[n] += round(req.n_ctx * ne * per_el)
                continue
            for j, c in enumerate(split_counts(ne, max(1, granularity), n, shares, il % n)):
                kv[j] += round(req.n_ctx * c * per_el)
    return kv


def _compute(info: GGUFInfo, req: PlanRequest, n: int, on_meta: list[bool]) -> list[int]:
    """Every device: the whole graph's compute buffer, plus ceil(log2 n) all-reduce buffers
    of one hidden state; the CPU: the graph inputs, and with CPU layers their activations
    (as measured over RPC: no op offload to the Meta device)."""
    compute = [0] * (n + 1)
    n_layer = info.n_layers
    if not any(on_meta):
        compute[n] = compute_bytes(info, req, True, True) + 4 * info.n_vocab
        return compute
    partial = not all(on_meta)
    has_layers = any(on_meta[:n_layer])
    boundary = 2 * hidden_bytes(info, req) if partial else 0
    # Four hidden states more than the one-device graph: fitted to llama.cpp's Meta() compute
    # buffer over two RPC servers (SmolLM2-135M: 101.51 MiB logged, 97.13 without them).
    extra = 4 * hidden_bytes(info, req)
    per_device = compute_bytes(info, req, has_layers, on_meta[n_layer], False, boundary) + extra
    reduce = math.ceil(math.log2(n)) * hidden_bytes(info, req) if n > 1 else 0
    for j in range(n):
        compute[j] = per_device + reduce
    compute[n] = host_compute_bytes(info, req)
    if partial:
        compute[n] += compute_bytes(info, req, True, False)
    return compute
