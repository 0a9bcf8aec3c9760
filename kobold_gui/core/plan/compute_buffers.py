"""Compute buffers: a model of ggml's graph allocator per device, calibrated against
llama.cpp's own "compute buffer size" lines (CPU loads here, CUDA loads on H100s, one and
two GPUs), with llama.cpp's pipeline parallelism over several GPUs and ggml-cuda's memory
pool. bench/plan_accuracy.py and bench/multi_gpu_plan.py measure it."""

from __future__ import annotations

from collections.abc import Sequence

from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.types import PlanRequest, layer_of
from kobold_gui.core.units import MiB


def pipelines(req: PlanRequest, n_gpus: int, n_layer: int) -> bool:
    """Whether llama.cpp turns on pipeline parallelism (llama-context.cpp): more than one
    device, every layer and the output offloaded, split by layer, the KV cache with its
    layers (and no tensor overrides, which the app never sets; CUDA devices support the
    async compute and events it also needs). The scheduler then keeps 4 copies of every
    graph input (GGML_SCHED_MAX_COPIES) so that ubatches can overlap across the GPUs, and
    the compute buffers grow accordingly."""
    return (
        n_gpus > 1 and req.n_gpu_layers > n_layer and req.split_mode == "layer" and req.offload_kqv
    )


def compute_bytes(
    info: GGUFInfo,
    req: PlanRequest,
    has_layers: bool,
    has_output: bool,
    pipeline: bool = False,
    boundary: int = 0,
) -> int:
    """Peak of ggml's graph allocator on a device that runs layers and/or the output layer.

    Tensors are freed after their last use, so the peak is the larger of two phases:
    - layers: the attention mask (n_ctx x n_ubatch, f16 with flash attention, f32 without)
      lives through them, plus the FFN activations (3 x n_ff x n_ubatch f32) or, without
      flash attention, the KQ matrix (n_ctx x n_ubatch x n_head f32) and 4.5 hidden states;
    - output: the logits (n_vocab x n_ubatch f32) and one hidden state; the mask is gone.
    With pipeline parallelism, the graph inputs' copies are allocated first and kept through
    the graph (ggml-backend.cpp marks them as outputs): three more masks and seven hidden
    states in the layers' phase (five and a half without flash attention), four masks and
    four hidden states more beside the logits. `boundary` is what the GPU that takes over
    from the CPU's layers adds to its layers' phase.
    Measured on H100s (8B and 1B shapes, one GPU: 32 settings, two GPUs: 40) and on CPUs."""
    ub, ctx = req.n_ubatch, req.n_ctx
    embd = info.embedding_length or 0
    hidden, mask = hidden_bytes(info, req), mask_bytes(req)
    phases = [0]
    if has_layers or has_output:  # with op offload the GPU also runs the CPU layers' matmuls
        n_ff = info.feed_forward_length or 4 * embd
        if info.expert_count:
            n_ff *= info.expert_used_count or 2
        layer = 3 * n_ff * ub * 4
        if not req.flash_attn:
            layer = max(layer, ctx * ub * (info.head_count or 1) * 4 + int(4.5 * ub * embd * 4))
        copies = 3 * mask + (7 * hidden if req.flash_attn else 11 * hidden // 2)
        phases.append(mask + layer + boundary + (copies if pipeline else 0))
    if has_output:
        copies = 4 * mask + 4 * hidden
        phases.append(ub * info.n_vocab * 4 + hidden + (copies if pipeline else 0))
    return max(phases)


def cuda_pool_bytes(info: GGUFInfo, req: PlanRequest) -> int:
    """What ggml-cuda's memory pool keeps after the first prompt, outside the buffers that
    llama.cpp logs (temporary conversions for its matrix products): without flash attention
    about the FFN activations of a ubatch, with it little. Measured on two H100s (8B shape,
    n_ubatch 512 and 2048, n_ctx 8192 and 32768): NVML's rise minus the buffers."""
    if req.flash_attn:
        return 2 * MiB + req.n_ubatch * (info.embedding_length or 0) * 13 // 4
    n_ff = info.feed_forward_length or 4 * (info.embedding_length or 0)
    return 34 * MiB + 3 * n_ff * req.n_ubatch * 4


def hidden_bytes(info: GGUFInfo, req: PlanRequest) -> int:
    """One hidden state of a ubatch, f32: what passes from one device to the next."""
    return req.n_ubatch * (info.embedding_length or 0) * 4


def cpu_boundary_bytes(info: GGUFInfo, req: PlanRequest, where: Sequence[int]) -> int:
    """The first GPU after the CPU's layers (flash attention): their hidden state, and the
    largest weight of a CPU layer, which op offload copies in to run its matmul there."""
    largest = max(
        (
            t.n_bytes
            for t in info.tensors
            if (layer := layer_of(t.name)) is not None and layer < len(where) and where[layer] < 0
        ),
        default=0,
    )
    return hidden_bytes(info, req) + (largest if req.n_ubatch >= 32 else 0)


def output_bytes(n_vocab: int, n_seq_max: int = 1) -> int:
    """llama.cpp's output buffer (in RAM): one row of logits (n_vocab f32) per sequence the
    context holds, reserved at start (llama-context.cpp's output_reserve(n_seq_max)); the
    parallel slots never ask for more rows than sequences in one decode. Measured for 1, 4
    and 16 sequences (tests/core/test_parallel_plan.py)."""
    return max(1, n_seq_max) * n_vocab * 4


def mask_bytes(req: PlanRequest) -> int:
    return req.n_ctx * req.n_ubatch * (2 if req.flash_attn else 4)


def host_compute_bytes(info: GGUFInfo, req: PlanRequest, pipeline: bool = False) -> int:
    """The CPU's (pinned) buffer when the GPUs run the graph: the graph inputs (a mask, the
    input embeddings of one ubatch) and the output buffer (a row of logits per sequence);
    with pipeline parallelism four copies of the inputs."""
    hidden, mask = hidden_bytes(info, req), mask_bytes(req)
    if pipeline:
        return (
            4 * mask
            + (5 if req.flash_attn else 7) * hidden
            + output_bytes(info.n_vocab, req.n_seq_max)
        )
    return mask + 2 * hidden + output_bytes(info.n_vocab, req.n_seq_max)
