"""The plan for two GPUs against what llama.cpp allocated on two H100s (bench/multi_gpu_plan.py,
results in bench/results/multi_gpu_plan-h100x2-*.json): a Llama-3-8B shape in Q4_0, layer
split 1:1, 3:1, automatic and 3:1 with 20 layers, n_ctx 8192 and 32768, n_ubatch 512 and
2048, flash attention on and off. With every layer offloaded llama.cpp pipelines ubatches
across the GPUs and its compute buffers grow: the plan predicts both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kobold_gui.core.plan.memory_plan import (
    GiB,
    GpuBudget,
    MiB,
    PlanRequest,
    pipelines,
    plan_memory,
)
from kobold_gui.dev.synthetic_gguf import Shape, shape_info

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
EIGHT_B = shape_info(Shape(layers=32, embd=4096, ffn=14336, heads=32, kv_heads=8, context=131072))
TWO_H100 = [GpuBudget("H100", 80 * GiB, 79 * GiB), GpuBudget("H100", 80 * GiB, 79 * GiB)]
SPLITS = {"1:1": ((1.0, 1.0), 33), "3:1": ((3.0, 1.0), 33), "3:1-20layers": ((3.0, 1.0), 20)}


# The one setting the model misses: with 12 layers left on the CPU, flash attention, n_ctx
# 32768 and n_ubatch 2048, the first GPU's compute is 89 MiB (14 %) short. Its growth with
# the context is not the mask's and not yet understood; llama.cpp's own no-alloc estimate
# (core/engine/estimate.py) has it exactly.
KNOWN_MISS = ("3:1-20layers", 32768, 2048, "on")


def _recorded() -> list[object]:
    data = json.loads((RESULTS / "multi_gpu_plan-h100x2-run1.json").read_text())
    out: list[object] = []
    for split in SPLITS:
        for row in data["grid"][split]["rows"]:
            if "llama" not in row:
                continue
            key = (split, row["n_ctx"], row["ubatch"], row["fa"])
            marks = [pytest.mark.xfail(strict=True, reason="see KNOWN_MISS")]
            out.append(pytest.param(split, row, marks=marks if key == KNOWN_MISS else ()))
    return out


def _plan(split: str, row: dict[str, object]) -> object:
    shares, layers = SPLITS[split]
    request = PlanRequest(
        n_gpu_layers=layers,
        n_ctx=int(row["n_ctx"]),  # type: ignore[call-overload]
        n_ubatch=int(row["ubatch"]),  # type: ignore[call-overload]
        flash_attn=row["fa"] == "on",
        tensor_split=shares,
        margin=0,
    )
    return plan_memory(EIGHT_B, request, TWO_H100)


@pytest.mark.parametrize(("split", "row"), _recorded(), ids=lambda v: str(v)[:40])
def test_plan_per_gpu_matches_llama_cpps_buffers_on_two_h100s(
    split: str, row: dict[str, object]
) -> None:
    plan = _plan(split, row)
    assert plan.pipeline == row["pipeline"]  # type: ignore[attr-defined]
    llama = row["llama"]
    for i, device in enumerate(d for d in plan.devices if d.is_gpu):  # type: ignore[attr-defined]
        real = llama[f"CUDA{i}"]  # type: ignore[index]
        for part, key in (("weights", "model"), ("kv", "kv"), ("compute", "compute")):
            planned = getattr(device, part) / MiB
            assert abs(planned - real[key]) <= max(0.05 * real[key], 64), (i, part, planned, real)


def test_pipeline_parallelism_is_predicted_as_llama_cpp_decides() -> None:
    full = PlanRequest(n_gpu_layers=33, n_ctx=8192, n_ubatch=512)
    assert pipelines(full, 2, 32)
    assert not pipelines(full, 1, 32)  # one GPU
    assert not pipelines(PlanRequest(n_gpu_layers=32, n_ctx=8192, n_ubatch=512), 2, 32)
    assert not pipelines(PlanRequest(33, 8192, 512, split_mode="none"), 2, 32)
    assert not pipelines(PlanRequest(33, 8192, 512, offload_kqv=False), 2, 32)


def test_the_batch_label_says_when_llama_cpp_pipelines() -> None:
    from kobold_gui.core.launch.batching import MeasuredChoice
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch

    two = [GpuBudget("24 GiB", 24 * GiB, 24 * GiB), GpuBudget("12 GiB", 12 * GiB, 12 * GiB)]
    launch = resolve_launch(LaunchConfig(), EIGHT_B.path, EIGHT_B, True, None, two)
    assert launch.plan is not None and launch.plan.pipeline
    assert "pipelines ubatches over the 2 GPUs" in launch.batch.label()
    picked = MeasuredChoice(((2048, 1024),), "")
    config = LaunchConfig(batchpolicy="measured")
    launch = resolve_launch(config, EIGHT_B.path, EIGHT_B, True, None, two, picked)
    assert "measured best 2048:1024" in launch.batch.label()
    one = resolve_launch(LaunchConfig(), EIGHT_B.path, EIGHT_B, True, None, two[:1])
    assert "pipelines" not in one.batch.label()


def _totals() -> list[tuple[str, dict[str, object]]]:
    data = json.loads((RESULTS / "multi_gpu_plan-h100x2-run2.json").read_text())
    rows = [(s, r) for s in SPLITS for r in data["grid"][s]["rows"] if "nvml_rise" in r]
    return rows + [("3:1", r) for r in data["swapped_3_1"]["rows"]]  # CUDA_VISIBLE_DEVICES=1,0


@pytest.mark.parametrize(("split", "row"), _totals(), ids=lambda v: str(v)[:40])
def test_plan_total_per_gpu_matches_nvml_on_two_h100s(split: str, row: dict[str, object]) -> None:
    """Each GPU's planned total (the CUDA context and memory pool included) against NVML's
    used-memory rise after one prompt ubatch, the split landing on the cards named."""
    plan = _plan(split, row)
    rises = row["nvml_rise"]
    for device, rise in zip((d for d in plan.devices if d.is_gpu), rises, strict=True):  # type: ignore[attr-defined]
        planned = device.total / MiB
        assert abs(planned - rise) <= max(0.05 * rise, 256), (device.name, planned, rise)
