"""The memory plan: llama.cpp's layer assignment, and each part against llama.cpp's own
buffer sizes from real CPU loads of GGUF files the suite writes."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from kobold_gui.core.launch.batching import MeasuredChoice
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import GGUFInfo, read_gguf
from kobold_gui.core.plan.memory_plan import (
    GiB,
    GpuBudget,
    MiB,
    PlanError,
    PlanRequest,
    assign_layers,
    auto_gpu_layers,
    parse_size,
    plan_memory,
)
from kobold_gui.dev.synthetic_gguf import Shape, write_model

SHAPES = {
    "dense": Shape(layers=4, embd=256, ffn=1024, heads=8, kv_heads=8),
    "gqa": Shape(layers=3, embd=256, ffn=2048, heads=16, kv_heads=2),
    "moe": Shape(layers=2, embd=128, ffn=4096, heads=4, kv_heads=1, experts=8, experts_used=2),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> GGUFInfo:
    path = tmp_path_factory.mktemp("plan") / f"{request.param}.gguf"
    return read_gguf(write_model(path, SHAPES[request.param], "Q8_0", default_model))


# Expected values follow llama_model::load_tensors (llama-model.cpp): i_gpu_start =
# n_layer + 1 - n_gpu_layers; layer il goes to upper_bound(cumulative splits,
# (il - i_gpu_start) / act_gpu_layers); -1 = CPU; the last entry is the output layer.
@pytest.mark.parametrize(
    ("n_layer", "ngl", "shares", "expected"),
    [
        (4, 5, [1], [0, 0, 0, 0, 0]),
        (4, 2, [1], [-1, -1, -1, 0, 0]),
        (4, 0, [1], [-1, -1, -1, -1, -1]),
        (4, 99, [1], [0, 0, 0, 0, 0]),
        (7, 8, [3, 1], [0, 0, 0, 0, 0, 0, 1, 1]),
        (7, 8, [1, 1], [0, 0, 0, 0, 1, 1, 1, 1]),
        (7, 4, [1, 1], [-1, -1, -1, -1, 0, 0, 1, 1]),
        (8, 9, [2, 1, 1], [0, 0, 0, 0, 0, 1, 1, 2, 2]),
        (8, 9, [0, 1, 1], [1, 1, 1, 1, 1, 2, 2, 2, 2]),
        (32, 33, [24, 12], [0] * 22 + [1] * 11),
    ],
)
def test_layer_assignment_follows_llama_cpp(
    n_layer: int, ngl: int, shares: list[float], expected: list[int]
) -> None:
    assert assign_layers(n_layer, ngl, shares) == expected


def _cpu_load(info: GGUFInfo, n_ctx: int, n_ubatch: int, fa: int) -> dict[str, dict[str, int]]:
    init_backend()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    mark = llama_log_count()
    model = llama_cpp.llama_model_load_from_file(str(info.path).encode(), mp)
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.flash_attn_type = n_ctx, n_ubatch, n_ubatch, fa
    ctx = llama_cpp.llama_init_from_model(model, cp)
    sizes = parse_buffer_sizes(llama_log_since(mark))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return sizes


def _close(plan: int, real: int) -> bool:
    return abs(plan - real) <= max(0.05 * real, 64 * MiB)


@pytest.mark.parametrize(
    ("n_ctx", "n_ubatch", "fa"), [(1024, 256, 1), (4096, 1024, 0), (8192, 512, 1)]
)
def test_plan_matches_llama_cpps_cpu_buffers(
    model: GGUFInfo, n_ctx: int, n_ubatch: int, fa: int
) -> None:
    real = _cpu_load(model, n_ctx, n_ubatch, fa)
    cpu = plan_memory(model, PlanRequest(0, n_ctx, n_ubatch, flash_attn=bool(fa)), []).devices[-1]
    model_bytes = sum(k.get("model", 0) for k in real.values())
    assert abs(cpu.weights - model_bytes) <= 0.006 * MiB
    # Exact (n_ctx x kv heads x head dims x 2 bytes), but the log rounds to 0.01 MiB.
    assert abs(cpu.kv - real["CPU"]["KV"]) <= 0.006 * MiB
    real_compute = real["CPU"]["compute"] + real["CPU"].get("output", 0)
    assert _close(cpu.compute, real_compute), (cpu.compute / MiB, real_compute / MiB)


def test_tied_embeddings_are_mapped_once_on_the_cpu(default_model: Path) -> None:
    """The default model has no output.weight: llama.cpp reuses the token embeddings, so on
    the CPU (mmap) the plan counts them once, as llama.cpp's own buffer log does (92.10 MiB;
    the plan said 120.79). Offloaded, the output layer gets its own copy on the GPU."""
    info = read_gguf(default_model)
    assert not any(t.name == "output.weight" for t in info.tensors)
    real = _cpu_load(info, 1024, 256, 1)
    model_bytes = sum(k.get("model", 0) for k in real.values())
    cpu = plan_memory(info, PlanRequest(0, 1024, 256), []).devices[-1]
    assert abs(cpu.weights - model_bytes) <= 0.006 * MiB, (cpu.weights / MiB, model_bytes / MiB)
    embd = next(t.n_bytes for t in info.tensors if t.name == "token_embd.weight")
    gpu, host = plan_memory(
        info, PlanRequest(info.n_layers + 1, 1024, 256), [GpuBudget("x", GiB, GiB)]
    ).devices
    assert gpu.weights + host.weights == pytest.approx(model_bytes + embd, abs=0.01 * MiB)


def test_kv_quantization_shrinks_the_cache(model: GGUFInfo) -> None:
    sizes = {
        t: plan_memory(model, PlanRequest(0, 8192, 512, kv_type=t), []).devices[-1].kv
        for t in ("f16", "q8_0", "q4_0")
    }
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]
    assert sizes["q8_0"] == pytest.approx(sizes["f16"] * 34 / 64)


def test_two_gpus_share_weights_and_kv_by_the_split(model: GGUFInfo) -> None:
    gpus = [GpuBudget("a", 24 * GiB, 24 * GiB), GpuBudget("b", 12 * GiB, 12 * GiB)]
    n = model.n_layers + 1
    plan = plan_memory(model, PlanRequest(n, 4096, 512, tensor_split=(1, 1)), gpus)
    a, b, cpu = plan.devices
    assert a.layers and b.layers and model.n_layers in b.layers  # output on the last GPU
    assert b.compute > a.compute  # the logits live with the output layer
    assert (
        cpu.kv == 0
        and a.kv + b.kv == plan_memory(model, PlanRequest(0, 4096, 512), []).devices[-1].kv
    )
    assert a.overhead == b.overhead > 0 and plan.fits


def test_split_mode_none_uses_only_the_main_gpu(model: GGUFInfo) -> None:
    gpus = [GpuBudget("a", 24 * GiB, 24 * GiB), GpuBudget("b", 24 * GiB, 24 * GiB)]
    plan = plan_memory(model, PlanRequest(99, 4096, 512, split_mode="none", main_gpu=1), gpus)
    assert plan.devices[0].total == 0 and plan.devices[1].weights > 0


def test_automatic_layers_fill_the_budget_and_no_more(model: GGUFInfo) -> None:
    all_layers = plan_memory(model, PlanRequest(99, 8192, 512), [GpuBudget("x", GiB, GiB)])
    need = all_layers.devices[0].total + all_layers.request.margin
    roomy = [GpuBudget("big", 80 * GiB, 80 * GiB)]
    plan, why = auto_gpu_layers(model, PlanRequest(0, 8192, 512), roomy)
    assert plan.request.n_gpu_layers == model.n_layers + 1 and "all" in why
    tight = [GpuBudget("tight", 4 * GiB, need - 1)]
    plan, why = auto_gpu_layers(model, PlanRequest(0, 8192, 512), tight)
    assert plan.request.n_gpu_layers < model.n_layers + 1 and plan.fits
    more = plan_memory(model, PlanRequest(plan.request.n_gpu_layers + 1, 8192, 512), tight)
    assert not more.fits  # one more layer would not fit
    tiny = [GpuBudget("tiny", GiB, 700 * MiB)]
    plan, why = auto_gpu_layers(model, PlanRequest(0, 8192, 512), tiny)
    assert plan.request.n_gpu_layers == 0 and "no GPU has room" in why


def test_over_budget_says_why_and_what_to_do(model: GGUFInfo) -> None:
    plan = plan_memory(model, PlanRequest(99, 1 << 20, 512), [GpuBudget("small", 2 * GiB, 2 * GiB)])
    assert not plan.fits and not plan.devices[0].fits
    assert "lower the context or quantize the KV cache" in plan.messages[0]
    assert "context 1048576" in plan.messages[0]


@pytest.mark.parametrize(
    ("split", "main", "words"),
    [
        ((1.0,), 0, "has 1 entries for 2 GPU"),
        ((1.0, -1.0), 0, "negative"),
        ((0.0, 0.0), 0, None),
        ((1.0, 1.0), 5, "main GPU 5 does not exist"),
    ],
)
def test_bad_splits_are_refused(
    model: GGUFInfo, split: tuple[float, ...], main: int, words: str | None
) -> None:
    gpus = [GpuBudget("a", GiB, GiB), GpuBudget("b", GiB, GiB)]
    request = PlanRequest(99, 4096, 512, tensor_split=split, main_gpu=main)
    if words is None:  # all zero means "by free memory", as in llama.cpp
        assert plan_memory(model, request, gpus).devices[0].layers
        return
    with pytest.raises(PlanError, match=words):
        plan_memory(model, request, gpus)


def test_launch_options_reach_the_plan(model: GGUFInfo) -> None:
    gpus = [GpuBudget("a", 24 * GiB, 24 * GiB), GpuBudget("b", 12 * GiB, 12 * GiB)]
    config = LaunchConfig(tensor_split=(3.0, 1.0), gpulayers=99, kvtype="q8_0", contextsize=8192)
    launch = resolve_launch(config, model.path, model, False, None, gpus)
    assert launch.plan is not None and launch.plan.request.tensor_split == (3.0, 1.0)
    assert launch.kv_type == 8 and launch.tensor_split == (3.0, 1.0)
    with pytest.raises(ConfigError, match="2 GPU"):
        resolve_launch(
            config.with_values(tensor_split="1,1,1"), model.path, model, False, None, gpus
        )
    with pytest.raises(ConfigError, match="needs flash attention"):
        resolve_launch(
            config.with_values(flashattention="off"), model.path, model, False, None, gpus
        )


@pytest.mark.parametrize(
    ("text", "size"),
    [("24GiB", 24 * GiB), ("12 GB", 12 * GiB), ("8192MiB", 8 * GiB), ("24", 24 * GiB)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_kv_cache_in_ram_when_not_offloaded(model: GGUFInfo) -> None:
    gpus = [GpuBudget("a", 24 * GiB, 24 * GiB)]
    on = plan_memory(model, PlanRequest(99, 8192, 512), gpus)
    off = plan_memory(model, PlanRequest(99, 8192, 512, offload_kqv=False), gpus)
    assert off.devices[0].kv == 0 and off.devices[-1].kv == on.devices[0].kv > 0


def test_custom_policy_sets_ubatch_by_hand(model: GGUFInfo) -> None:
    config = LaunchConfig(blasbatchsize=2048, batchpolicy="custom", ubatch=256)
    launch = resolve_launch(config, model.path, model, False)
    assert (launch.batch.n_batch, launch.batch.n_ubatch) == (2048, 256)


def test_measured_policy_without_a_sweep_keeps_the_seed_rule_and_says_so(
    model: GGUFInfo,
) -> None:
    config = LaunchConfig(batchpolicy="measured", blasbatchsize=2048)
    launch = resolve_launch(config, model.path, model, False)
    assert (launch.batch.n_batch, launch.batch.n_ubatch) == (2048, 1024)
    assert "no benchmark" in launch.batch.label() and "KoboldCPP's rule" in launch.batch.label()
    picked = MeasuredChoice(((4096, 2048),), "picked")
    launch = resolve_launch(config, model.path, model, False, measured=picked)
    assert (launch.batch.n_batch, launch.batch.n_ubatch) == (4096, 2048)
    undecided = MeasuredChoice((), "no measurable difference: ...")
    launch = resolve_launch(config, model.path, model, False, measured=undecided)
    assert (launch.batch.n_batch, launch.batch.n_ubatch) == (2048, 1024)
    assert "no measurable difference" in launch.batch.label()


def _budget_between(model: GGUFInfo, small_ub: int, big_ub: int) -> list[GpuBudget]:
    """One GPU whose free memory fits every layer with n_ubatch small_ub, not big_ub."""

    def need(ub: int) -> int:
        plan = plan_memory(model, PlanRequest(99, 8192, ub), [GpuBudget("x", 80 * GiB, 80 * GiB)])
        return plan.devices[0].total + plan.request.margin

    free = (need(small_ub) + need(big_ub)) // 2
    return [GpuBudget("mid", 80 * GiB, free)]


def test_measured_pair_steps_down_when_it_does_not_fit(model: GGUFInfo) -> None:
    gpus = _budget_between(model, 512, 4096)
    pairs = MeasuredChoice(((4096, 4096), (2048, 2048), (1024, 1024), (512, 512)), "")
    config = LaunchConfig(batchpolicy="measured", contextsize=8192, gpulayers=99)
    launch = resolve_launch(config, model.path, model, False, None, gpus, measured=pairs)
    assert launch.plan is not None and launch.plan.fits
    assert (
        launch.batch.n_ubatch < 4096
        and "stepped down from the measured pair 4096:4096" in launch.gpu_layers_note
    )


def test_seed_rule_is_not_changed_but_names_the_largest_blas_that_fits(model: GGUFInfo) -> None:
    gpus = _budget_between(model, 512, 1024)
    config = LaunchConfig(blasbatchsize=4096, contextsize=8192, gpulayers=99)
    launch = resolve_launch(config, model.path, model, False, None, gpus)
    assert (launch.batch.n_batch, launch.batch.n_ubatch) == (4096, 1024)  # unchanged
    assert launch.plan is not None and not launch.plan.fits
    assert "BLAS 512 would fit every layer" in launch.gpu_layers_note


def test_a_split_for_gpus_does_not_break_the_cpu_only_plan(model: GGUFInfo) -> None:
    """A KoboldCPP file or another machine's settings name a split; on a CPU-only machine
    the launch still resolves (everything in RAM)."""
    config = LaunchConfig(tensor_split=(3.0, 1.0), maingpu=1)
    launch = resolve_launch(config, model.path, model, False)
    assert launch.plan is not None and not any(d.is_gpu for d in launch.plan.devices)
