"""The plan for remote GPUs against what two RPC servers allocated on two H100s, one GPU each
(bench/rpc_gpu.py, results in bench/results/rpc_gpu-h100x2.json): the 8B shape in Q4_0, all
layers, split 1:1, n_ctx 8192, flash attention, over RPC from a third process, beside the same
split loaded locally. Per GPU: the plan's buffers against llama.cpp's, its total against the
NVML rise of the server's GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kobold_gui.core.plan.memory_plan import GiB, GpuBudget, MiB, PlanRequest, plan_memory
from kobold_gui.dev.synthetic_gguf import Shape, shape_info

RESULTS = json.loads(
    (Path(__file__).resolve().parents[2] / "bench" / "results" / "rpc_gpu-h100x2.json").read_text()
)
EIGHT_B = shape_info(Shape(layers=32, embd=4096, ffn=14336, heads=32, kv_heads=8, context=131072))
REQUEST = PlanRequest(n_gpu_layers=33, n_ctx=8192, n_ubatch=512, tensor_split=(1.0, 1.0), margin=0)


@pytest.mark.parametrize("remote", [True, False], ids=["over RPC", "local"])
def test_plan_per_gpu_matches_the_recorded_run(remote: bool) -> None:
    run = RESULTS["rpc" if remote else "local"]
    gpus = [GpuBudget(f"GPU {i}", 80 * GiB, 79 * GiB, remote=remote) for i in range(2)]
    plan = plan_memory(EIGHT_B, REQUEST, gpus)
    assert plan.pipeline and run["pipeline_llama"]  # llama.cpp pipelined over both
    buffers = [b for name, b in run["buffers"].items() if name.startswith(("RPC", "CUDA"))]
    buffers = [b for b in buffers if "model" in b]
    assert len(buffers) == 2
    for device, real, rise in zip(plan.devices[:2], buffers, run["nvml_rise"], strict=True):
        assert abs(device.weights / MiB - real["model"]) < 1
        assert abs(device.kv / MiB - real["KV"]) < 1
        assert abs(device.compute / MiB - real["compute"]) <= max(0.05 * real["compute"], 64)
        total = device.total / MiB
        assert abs(total - rise) <= max(0.02 * rise, 64), (device.name, total, rise)


def test_the_run_measured_speed_and_traffic() -> None:
    """What the closing note cites: RPC vs local in one run, and the bytes per token."""
    local, rpc = RESULTS["local"], RESULTS["rpc"]
    assert rpc["gen_tps"] < local["gen_tps"] and rpc["prompt_tps"] < local["prompt_tps"]
    assert rpc["bytes_per_gen_token"] > 100_000 and rpc["bytes_per_prompt_token"] > 10_000
    assert local["bytes_per_gen_token"] == 0  # nothing crossed a socket locally
